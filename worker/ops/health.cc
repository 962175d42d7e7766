#include "worker/ops/health.h"

#include <cmath>
#include <map>
#include <set>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/ops/breakers.h"
#include "worker/ops/pauses.h"
#include "worker/ops/slo.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must;
using ctl::must_query;
using Json = nlohmann::ordered_json;

enum Level { healthy = 0, degraded = 1, unhealthy = 2 };
const char* level_name(Level l) {
    return l == healthy ? "healthy" : l == degraded ? "degraded" : "unhealthy";
}

struct Source {
    Level level = healthy;
    Json reasons = Json::array();
    Json last_received_at = nullptr;
    Json queue_depth = nullptr;
    Json oldest_age = nullptr;
    uint64_t attempts = 0, delivered = 0;
    Histogram e2e = Histogram(kStatsBuckets);
    std::set<std::string> destinations;
    double queue_age = -1;

    void flag(Level l, std::string why) {
        level = std::max(level, l);
        reasons.push_back(std::move(why));
    }
};

// Sources in scope, each with the destinations its routes deliver to.
std::map<std::string, Source> scoped_sources(const Config& cfg, const Scope& scope) {
    std::map<std::string, Source> sources;
    for (const auto& q : cfg.queues) {
        if (scope.allows(q)) {
            sources[q];
        }
    }
    for (const auto& r : cfg.routes) {
        if (scope.allows(r.source)) {
            sources[r.source].destinations.insert(r.destination);
        }
    }
    return sources;
}

// The queues' backlog: the tail is claimed next, so it is the oldest.
void read_backlog(RedisConn& redis, std::map<std::string, Source>& sources) {
    uint64_t now_ms = ctl::redis_now_ms(redis);  // the clock the queue's ages are read by
    for (auto& [name, s] : sources) {
        auto depth = must(redis, {"LLEN", keys::queue(name)});
        long long n = depth->type == REDIS_REPLY_INTEGER ? depth->integer : 0;
        s.queue_depth = n;
        double age = n > 0 ? tail_age_s(redis, keys::queue(name), now_ms) : -1;
        if (age >= 0) {
            s.oldest_age = std::round(age * 1000.0) / 1000.0;
            s.queue_age = age;  // judged with the rollups, in judge()
        }
    }
}

void read_breakers(RedisConn& redis, std::map<std::string, Source>& sources) {
    std::set<std::string> all;
    for (const auto& [name, s] : sources) {
        all.insert(s.destinations.begin(), s.destinations.end());
    }
    for (const auto& b : list_breakers(redis, all)) {
        std::string state = b.value("state", "closed");
        if (state == "closed") {
            continue;
        }
        std::string dest = b.value("destination", "");
        for (auto& [name, s] : sources) {
            if (s.destinations.count(dest)) {
                s.flag(degraded, "breaker " + state + " for " + dest);
            }
        }
    }
}

// Pauses are the operator's will, not ill health: named in the reasons, the level kept.
void read_pauses(RedisConn& redis, const Config& cfg, const Scope& scope,
                 std::map<std::string, Source>& sources) {
    const auto pauses = list_pauses(redis, cfg, scope);  // outlives the loop over its member
    for (const auto& p : pauses["pauses"]) {
        std::string kind = p["kind"], name = p["name"];
        std::string why = (kind == "route" ? "route " + name + " " : std::string()) + "paused by " +
                          p["by"].get<std::string>();
        if (!p["reason"].get<std::string>().empty()) {
            why += ": " + p["reason"].get<std::string>();
        }
        for (const auto& r : cfg.routes) {
            if ((kind == "route" && r.name == name) || (kind == "source" && r.source == name)) {
                if (auto it = sources.find(r.source); it != sources.end()) {
                    it->second.reasons.push_back(why);
                }
                if (kind == "source") {
                    break;
                }
            }
        }
    }
}

// The newest webhook of each source (index on (source, received_at); bounded to the hour
// rollups' 35 days so a source silent for longer costs nothing), and the minute rollups of each
// source's [slo] window (a row per minute, route and worker).
void read_postgres(Pg& pg, const Config& cfg, std::map<std::string, Source>& sources) {
    if (!pg.ok()) {
        throw std::runtime_error(pg.error());
    }
    std::vector<std::string> names;
    for (const auto& [name, s] : sources) {
        names.push_back(name);
    }
    std::string arr = pg_text_array(names);
    auto last = must_query(
        pg,
        "SELECT s, to_char((SELECT max(received_at) FROM webhook_events WHERE source = s AND "
        "received_at > now() - interval '35 days') AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM unnest($1::text[]) s",
        {arr});
    for (int i = 0; i < PQntuples(last.get()); ++i) {
        if (!is_null(last, i, 1)) {
            sources[cell(last, i, 0)].last_received_at = cell(last, i, 1);
        }
    }
    uint64_t max_window = cfg.slo.global.window_ms;
    for (const auto& [name, t] : cfg.slo.sources) {
        max_window = std::max(max_window, t.window_ms);
    }
    RecentRollups recent = recent_rollups(pg, arr, max_window, [&](bool, const std::string& n) {
        return cfg.slo.for_source(n).window_ms;
    });
    for (auto& [name, totals] : recent.sources) {
        if (auto it = sources.find(name); it != sources.end()) {
            it->second.attempts = totals.attempts;
            it->second.delivered = totals.delivered;
            it->second.e2e = totals.e2e;
        }
    }
}

// The source's [slo] verdict on what was read, folded into its level, and its row.
Json judge(const std::string& name, Source& s, const Config& cfg) {
    auto lag = percentile_ms(s.e2e, 0.95);
    SloInput in;
    in.deliveries = s.attempts;
    in.failures = s.attempts - s.delivered;
    if (lag) {
        in.lag_s = std::round(*lag) / 1000.0;
    }
    if (s.queue_age >= 0) {
        in.queue_age_s = s.queue_age;
    }
    SloVerdict v = classify(in, cfg.slo.for_source(name));
    for (auto& why : v.reasons) {
        s.flag(static_cast<Level>(v.level), std::move(why));
    }
    Json j;
    j["source"] = name;
    j["status"] = level_name(s.level);
    j["reasons"] = s.reasons;
    j["last_received_at"] = s.last_received_at;
    j["queue_depth"] = s.queue_depth;
    j["oldest_age_seconds"] = s.oldest_age;
    j["lag_seconds"] = lag ? Json(std::round(*lag) / 1000.0) : Json(nullptr);
    j["deliveries_5m"] = s.attempts;
    j["error_rate_5m"] = v.error_rate ? Json(*v.error_rate) : Json(nullptr);
    return j;
}

}  // namespace

// Each backend is read on its own: one that is down flags every source unhealthy and leaves what
// the other one tells.
Json health(RedisConn& redis, Pg& pg, const Config& cfg, const Scope& scope) {
    std::map<std::string, Source> sources = scoped_sources(cfg, scope);
    bool redis_down = false, pg_down = false;
    try {
        read_backlog(redis, sources);
        read_breakers(redis, sources);
        read_pauses(redis, cfg, scope, sources);
    } catch (const std::runtime_error&) {
        redis_down = true;
        for (auto& [name, s] : sources) {
            s.flag(unhealthy, "Redis unreachable");
        }
    }
    try {
        read_postgres(pg, cfg, sources);
    } catch (const std::runtime_error&) {
        pg_down = true;
        for (auto& [name, s] : sources) {
            s.flag(unhealthy, "PostgreSQL unreachable");
        }
    }

    // A backend down is ill health with no source to pin it on too: a monitor of a worker whose
    // configuration names none must not read healthy then.
    Level worst = redis_down || pg_down ? unhealthy : healthy;
    Json out_sources = Json::array();
    for (auto& [name, s] : sources) {
        out_sources.push_back(judge(name, s, cfg));
        worst = std::max(worst, s.level);
    }
    Json j;
    j["status"] = level_name(worst);
    j["generated_at"] = rfc3339(static_cast<int64_t>(now_us()), 6);
    j["sources"] = std::move(out_sources);
    return j;
}

}  // namespace hookq::ops
