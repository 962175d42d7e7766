#include "worker/ops/health_checks.h"

#include <charconv>
#include <map>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/ops/routes.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using Json = nlohmann::ordered_json;

Json rfc3339_ms(const std::string& ms_text) {
    uint64_t ms = 0;
    auto [p, ec] = std::from_chars(ms_text.data(), ms_text.data() + ms_text.size(), ms);
    if (ec != std::errc() || ms == 0) {
        return nullptr;
    }
    return rfc3339(static_cast<int64_t>(ms * 1000), 3);
}

Json number(const std::map<std::string, std::string>& h, const char* field, bool integer) {
    auto it = h.find(field);
    if (it == h.end() || it->second.empty()) {
        return nullptr;
    }
    try {
        if (integer) {
            return std::stoll(it->second);
        }
        return std::stod(it->second);
    } catch (const std::exception&) {
        return nullptr;
    }
}

}  // namespace

Json health_checks(RedisConn& redis, const Config& cfg, const Scope& scope) {
    std::vector<const Route*> routes;
    for (const auto& r : cfg.routes) {
        if (!r.health_url.empty() && scope.allows(r.source)) {
            routes.push_back(&r);
        }
    }
    Json out = Json::array();
    for (const Route* r : routes) {
        Reply rep = ctl::must(redis, {"HGETALL", keys::health_check(r->name)});
        std::map<std::string, std::string> h;
        if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i + 1 < rep->elements; i += 2) {
                h[std::string(rep->element[i]->str, rep->element[i]->len)] =
                    std::string(rep->element[i + 1]->str, rep->element[i + 1]->len);
            }
        }
        auto get = [&](const char* f) {
            auto it = h.find(f);
            return it == h.end() ? std::string() : it->second;
        };
        std::string status = get("status");
        bool known = status == "ok" || status == "failing";
        Json j;
        j["route"] = r->name;
        j["url"] = display_url(r->health_url);
        j["status"] = known ? status : "unknown";
        Json http = number(h, "http_status", true);
        j["http_status"] = known && http.is_number() && http.get<long long>() != 0 ? http : Json();
        j["duration_ms"] = known ? number(h, "duration_ms", false) : Json();
        j["checked_at"] = known ? rfc3339_ms(get("checked_at_ms")) : Json();
        Json fails = number(h, "consecutive_failures", true);
        j["consecutive_failures"] = fails.is_number() ? fails : Json(0);
        std::string err = get("last_error");
        j["last_error"] = known && !err.empty() ? Json(err) : Json();
        j["last_ok_at"] = rfc3339_ms(get("last_ok_at_ms"));
        j["interval_seconds"] = static_cast<double>(r->health_interval_ms) / 1000.0;
        out.push_back(std::move(j));
    }
    Json j;
    j["routes"] = std::move(out);
    return j;
}

}  // namespace hookq::ops
