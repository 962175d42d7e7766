#include "worker/ops/breakers.h"

#include <map>
#include <stdexcept>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/pipeline/park.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using ctl::must;
using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr std::string_view kPrefix = "hookq:breaker:";

// Writes the hash exactly as kReport leaves a breaker that has just closed, rather than deleting
// it, so that the fields the workers read keep their meaning. Atomic, so a worker reporting at the
// same moment sees either the old breaker or the closed one.
constexpr std::string_view kReset = R"lua(
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return '' end
redis.call('HSET', KEYS[1], 'state', 'closed', 'fails', '', 'successes', '0', 'probe_until', '0',
           'probe_owner', '', 'open_until', '0', 'changed_at', ARGV[1])
return st
)lua";

std::string format_ms(const std::string& ms) {
    if (ms.empty() || ms == "0") {
        return "";
    }
    try {
        return rfc3339(static_cast<int64_t>(std::stoull(ms) * 1000));
    } catch (const std::exception&) {
        return ms;
    }
}

std::string glob_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out;
}

// Every queue's parked deliveries for `destination`, back to the consuming end of their queue: the
// workers would otherwise keep them until the open period they were parked for has passed. The
// queues are found in Redis rather than in a configuration hookqctl may not have.
long long release_parked(RedisConn& redis, const std::string& destination, uint64_t now_ms) {
    const std::string suffix = "}:parked:" + destination;
    long long total = 0;
    for (const auto& key : ctl::scan_keys(redis, "hookq:{*" + glob_escape(suffix))) {
        constexpr std::string_view kHead = "hookq:{";
        if (key.size() < kHead.size() + suffix.size() || !key.ends_with(suffix)) {
            continue;
        }
        std::string q = key.substr(kHead.size(), key.size() - kHead.size() - suffix.size());
        long long n = park::release_all(redis, {q}, destination, now_ms);
        if (n < 0) {
            throw std::runtime_error("Redis: cannot move parked deliveries of " + destination +
                                     " back to queue " + q + ": " + redis.last_error());
        }
        total += n;
    }
    return total;
}

size_t count_fails(const std::string& fails) {
    size_t n = 0;
    bool in = false;
    for (char c : fails) {
        bool digit = c >= '0' && c <= '9';
        n += digit && !in;
        in = digit;
    }
    return n;
}

// nullopt when there is no breaker for the key.
std::optional<Json> breaker_json(RedisConn& redis, const std::string& key) {
    auto reply = must(redis, {"HGETALL", key});
    if (reply->elements == 0) {
        return std::nullopt;
    }
    std::map<std::string, std::string> h;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        h[std::string(reply->element[i]->str, reply->element[i]->len)] =
            std::string(reply->element[i + 1]->str, reply->element[i + 1]->len);
    }
    std::string state = h.count("state") ? h["state"] : "closed";
    Json j;
    j["destination"] = key.substr(kPrefix.size());
    j["state"] = state;
    j["open_until"] = state == "open" ? format_ms(h["open_until"]) : "";
    j["recent_failures"] = count_fails(h["fails"]);
    j["changed_at"] = format_ms(h["changed_at"]);
    return j;
}

void check_visible(const std::string& destination, const Destinations& only) {
    if (destination.empty() || destination.size() > 1024) {
        throw Error(Error::bad_request, "a destination is scheme://host:port, as listed");
    }
    if (only && !only->count(destination)) {
        throw Error(Error::not_found, "no breaker for " + destination);
    }
}

}  // namespace

Destinations scope_destinations(const Config& cfg, const Scope& scope) {
    if (!scope.sources) {
        return std::nullopt;
    }
    std::set<std::string> out;
    for (const auto& r : cfg.routes) {
        if (scope.allows(r.source)) {
            out.insert(r.destination);
            if (!r.fallback_url.empty()) {
                out.insert(url_destination(r.fallback_url).value_or(""));
            }
        }
    }
    return out;
}

Destinations known_destinations(const Config& cfg, const Scope& scope) {
    if (scope.sources) {
        return scope_destinations(cfg, scope);
    }
    if (cfg.routes.empty()) {
        return std::nullopt;
    }
    std::set<std::string> out;
    for (const auto& r : cfg.routes) {
        out.insert(r.destination);
        if (!r.fallback_url.empty()) {
            out.insert(url_destination(r.fallback_url).value_or(""));
        }
    }
    out.erase("");
    return out;
}

Json list_breakers(RedisConn& redis, const Destinations& only) {
    std::map<std::string, Json> sorted;
    std::vector<std::string> names;
    if (only) {
        for (const auto& dest : *only) {
            names.push_back(keys::breaker(dest));
        }
    } else {
        names = ctl::scan_keys(redis, std::string(kPrefix) + "*");
    }
    for (const auto& key : names) {
        if (auto j = breaker_json(redis, key)) {
            sorted.emplace(key.substr(kPrefix.size()), std::move(*j));
        }
    }
    Json out = Json::array();
    for (auto& [d, j] : sorted) {
        out.push_back(std::move(j));
    }
    return out;
}

Json get_breaker(RedisConn& redis, const std::string& destination, const Destinations& only) {
    check_visible(destination, only);
    auto j = breaker_json(redis, keys::breaker(destination));
    if (!j) {
        throw Error(Error::not_found, "no breaker for " + destination);
    }
    return *j;
}

Json reset_breaker(RedisConn& redis, Pg& pg, const std::string& destination, const Actor& actor,
                   const Destinations& only) {
    check_visible(destination, only);
    std::string key = keys::breaker(destination);
    auto state = must(redis, {"HGET", key, "state"});
    if (state->type != REDIS_REPLY_STRING) {
        throw Error(Error::not_found, "no breaker for " + destination +
                                          " (see `hookqctl breaker list` or GET /api/v1/breakers)");
    }
    std::string from(state->str, state->len);
    uint64_t now = ctl::redis_now_ms(redis);
    // The rows go in first and are committed only once Redis has changed: a reset is never done
    // unaudited, nor audited when it did not happen.
    must_query(pg, "BEGIN");
    try {
        audit(pg, actor, "breaker.reset", destination, {{"from_state", from}});
        if (from != "closed") {
            must_query(pg,
                       "INSERT INTO breaker_transitions (at, destination, from_state, to_state, "
                       "worker_id, reason) VALUES ($1::timestamptz, $2, $3, 'closed', NULL, $4)",
                       {format_timestamp_us(now * 1000), destination, from,
                        "reset by " + actor.name + " (" + actor.via + ")"});
        }
        auto reply = redis.eval(kReset, {key}, {std::to_string(now)});
        if (!reply || is_error(reply)) {
            throw std::runtime_error(
                "Redis: breaker reset failed: " +
                (reply ? std::string(reply->str, reply->len) : redis.last_error()));
        }
        must_query(pg, "COMMIT");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    long long released = release_parked(redis, destination, ctl::redis_now_ms(redis));
    Json j;
    j["destination"] = destination;
    j["from_state"] = from;
    j["state"] = "closed";
    j["parked_released"] = released;
    return j;
}

}  // namespace hookq::ops
