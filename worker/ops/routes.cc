#include "worker/ops/routes.h"

#include <map>

#include "worker/cli/common.h"
#include "worker/ops/breakers.h"

namespace hookq::ops {

namespace {
using Json = nlohmann::ordered_json;
}

std::string display_url(const std::string& url) {
    std::string u = url.substr(0, url.find('#'));
    size_t scheme = u.find("://");
    size_t host = scheme == std::string::npos ? 0 : scheme + 3;
    size_t path = u.find_first_of("/?", host);
    size_t at = u.rfind('@', path == std::string::npos ? std::string::npos : path);
    if (at != std::string::npos && at >= host) {
        u.erase(host, at + 1 - host);
    }
    size_t q = u.find('?');
    if (q == std::string::npos) {
        return u;
    }
    std::string out = u.substr(0, q + 1);
    size_t i = q + 1;
    while (i <= u.size()) {
        size_t amp = u.find('&', i);
        std::string part = u.substr(i, amp == std::string::npos ? std::string::npos : amp - i);
        size_t eq = part.find('=');
        out += eq == std::string::npos ? part : part.substr(0, eq) + "=REDACTED";
        if (amp == std::string::npos) {
            break;
        }
        out += '&';
        i = amp + 1;
    }
    return out;
}

Json list_routes(Pg& pg, RedisConn& redis, const Config& cfg, const Scope& scope) {
    auto f = ctl::must_query(
        pg,
        "SELECT route, reason, event_id, to_char(flagged_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM route_flags WHERE cleared_at IS NULL");
    std::map<std::string, Json> flags;
    for (int i = 0; i < PQntuples(f.get()); ++i) {
        Json fl;
        fl["reason"] = ctl::cell(f, i, 1);
        fl["event_id"] = ctl::is_null(f, i, 2) ? Json() : Json(ctl::cell(f, i, 2));
        fl["flagged_at"] = ctl::cell(f, i, 3);
        flags[ctl::cell(f, i, 0)] = std::move(fl);
    }
    std::map<std::string, std::string> breakers;
    for (const auto& b : list_breakers(redis, known_destinations(cfg))) {
        breakers[b["destination"].get<std::string>()] = b["state"].get<std::string>();
    }
    Json out = Json::array();
    for (const auto& r : cfg.routes) {
        if (!scope.allows(r.source)) {
            continue;
        }
        Json j;
        j["name"] = r.name;
        j["source"] = r.source;
        j["events"] = r.events;
        j["destination"] = r.destination;
        j["url"] = display_url(r.url);
        j["fallback_url"] = r.fallback_url.empty() ? Json() : Json(display_url(r.fallback_url));
        j["timeout_ms"] = r.timeout_ms;
        j["max_attempts"] = r.retry.max_attempts;
        j["signed"] = !r.signing_key.empty();
        auto fl = flags.find(r.name);
        j["flag"] = fl == flags.end() ? Json() : fl->second;
        auto b = breakers.find(r.destination);
        // No hash in Redis: the breaker has never seen a failure, which is closed.
        j["breaker"] = b == breakers.end() ? "closed" : b->second;
        out.push_back(std::move(j));
    }
    return out;
}

}  // namespace hookq::ops
