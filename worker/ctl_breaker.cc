#include "worker/ctl_breaker.h"

#include <cstdio>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "shared/redis_keys.h"
#include "worker/context.h"
#include "worker/ctl_common.h"
#include "worker/park.h"
#include "worker/sql.h"

namespace hookq::ctl {

namespace {

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
        return format_timestamp_us(std::stoull(ms) * 1000).substr(0, 19) + "Z";
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
    for (const auto& key : scan_keys(redis, "hookq:{*" + glob_escape(suffix))) {
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

}  // namespace

nlohmann::json breaker_states(RedisConn& redis) {
    auto j = nlohmann::json::array();
    for (const auto& key : scan_keys(redis, std::string(kPrefix) + "*")) {
        auto reply = must(redis, {"HGETALL", key});
        std::map<std::string, std::string> h;
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            h[std::string(reply->element[i]->str, reply->element[i]->len)] =
                std::string(reply->element[i + 1]->str, reply->element[i + 1]->len);
        }
        std::string state = h.count("state") ? h["state"] : "closed";
        j.push_back({{"destination", key.substr(kPrefix.size())},
                     {"state", state},
                     {"open_until", state == "open" ? format_ms(h["open_until"]) : ""},
                     {"recent_failures", count_fails(h["fails"])},
                     {"changed_at", format_ms(h["changed_at"])}});
    }
    return j;
}

int breaker_list(RedisConn& redis, bool json) {
    auto j = breaker_states(redis);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    if (j.empty()) {
        std::printf("no breakers\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"DESTINATION", "STATE", "OPEN_UNTIL", "RECENT_FAILURES", "CHANGED_AT"}};
    for (const auto& b : j) {
        rows.push_back({b["destination"], b["state"], b["open_until"],
                        std::to_string(b["recent_failures"].get<size_t>()), b["changed_at"]});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int breaker_reset(RedisConn& redis, Pg& pg, const std::string& destination, bool json) {
    std::string key = keys::breaker(destination);
    auto state = must(redis, {"HGET", key, "state"});
    if (state->type != REDIS_REPLY_STRING) {
        std::fprintf(stderr, "hookqctl: no breaker for %s (see `hookqctl breaker list`)\n",
                     destination.c_str());
        return 1;
    }
    std::string from(state->str, state->len);
    uint64_t now = redis_now_ms(redis);
    // The rows go in first and are committed only once Redis has changed: a reset is never done
    // unaudited, nor audited when it did not happen.
    must_query(pg, "BEGIN");
    try {
        audit(pg, "breaker.reset", destination, {{"from_state", from}});
        if (from != "closed") {
            must_query(pg,
                       "INSERT INTO breaker_transitions (at, destination, from_state, to_state, "
                       "worker_id, reason) VALUES ($1::timestamptz, $2, $3, 'closed', NULL, $4)",
                       {format_timestamp_us(now * 1000), destination, from,
                        "reset by " + actor() + " (hookqctl)"});
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
    long long released = release_parked(redis, destination, redis_now_ms(redis));
    if (json) {
        nlohmann::json j{{"destination", destination},
                         {"from_state", from},
                         {"state", "closed"},
                         {"parked_released", released}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s: %s -> closed; %lld parked deliveries back in their queues\n",
                    destination.c_str(), from.c_str(), released);
    }
    return 0;
}

}  // namespace hookq::ctl
