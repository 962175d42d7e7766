#include "worker/ops/slo.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using Json = nlohmann::ordered_json;

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

Json opt(const std::optional<double>& v) {
    return v ? Json(*v) : Json(nullptr);
}

}  // namespace

const char* slo_level_name(SloLevel l) {
    return l == SloLevel::healthy ? "healthy" : l == SloLevel::degraded ? "degraded" : "unhealthy";
}

std::string window_text(uint64_t ms) {
    if (ms % 3600000 == 0) {
        return std::to_string(ms / 3600000) + "h";
    }
    if (ms % 60000 == 0) {
        return std::to_string(ms / 60000) + "m";
    }
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

SloVerdict classify(const SloInput& in, const SloThresholds& t) {
    SloVerdict v;
    auto raise = [&](bool unhealthy, std::string why) {
        v.level = std::max(v.level, unhealthy ? SloLevel::unhealthy : SloLevel::degraded);
        v.reasons.push_back(std::move(why));
    };
    std::string over = " over " + window_text(t.window_ms);
    if (in.deliveries > 0) {
        double rate = static_cast<double>(in.failures) / static_cast<double>(in.deliveries);
        v.error_rate = rate;
        if (rate >= t.error_rate_degraded) {
            raise(rate >= t.error_rate_unhealthy, "error rate " + fixed(rate * 100.0, 1) + "%" +
                                                      over + " (" + std::to_string(in.failures) +
                                                      " of " + std::to_string(in.deliveries) +
                                                      " attempts failed)");
        }
    }
    if (in.failures >= t.failures_degraded) {
        raise(in.failures >= t.failures_unhealthy,
              std::to_string(in.failures) + " failed attempts" + over);
    }
    auto lag = [&](double s, const std::string& what) {
        double ms = s * 1000.0;
        if (ms >= static_cast<double>(t.lag_degraded_ms)) {
            raise(ms >= static_cast<double>(t.lag_unhealthy_ms), what + fixed(s, 0) + " s");
        }
    };
    if (in.lag_s) {
        lag(*in.lag_s, "end-to-end p95" + over + " is ");
    }
    if (in.queue_age_s) {
        lag(*in.queue_age_s, "oldest queued webhook waits ");
    }
    return v;
}

Json thresholds_json(const SloThresholds& t) {
    Json j;
    j["error_rate_degraded"] = t.error_rate_degraded;
    j["error_rate_unhealthy"] = t.error_rate_unhealthy;
    j["lag_degraded_seconds"] = static_cast<double>(t.lag_degraded_ms) / 1000.0;
    j["lag_unhealthy_seconds"] = static_cast<double>(t.lag_unhealthy_ms) / 1000.0;
    j["failures_degraded"] = t.failures_degraded;
    j["failures_unhealthy"] = t.failures_unhealthy;
    j["window_seconds"] = static_cast<double>(t.window_ms) / 1000.0;
    return j;
}

Json slo(RedisConn& redis, Pg& pg, const Config& cfg, const Scope& scope) {
    std::set<std::string> sources;
    for (const auto& q : cfg.queues) {
        if (scope.allows(q)) {
            sources.insert(q);
        }
    }
    for (const auto& r : cfg.routes) {
        if (scope.allows(r.source)) {
            sources.insert(r.source);
        }
    }

    // The queue's tail is claimed next, so it is the oldest (as health reads it).
    std::map<std::string, double> queue_age;
    uint64_t now_ms = ctl::redis_now_ms(redis);
    for (const auto& name : sources) {
        auto depth = ctl::must(redis, {"LLEN", keys::queue(name)});
        if (depth->type == REDIS_REPLY_INTEGER && depth->integer > 0) {
            double age = tail_age_s(redis, keys::queue(name), now_ms);
            if (age >= 0) {
                queue_age[name] = std::round(age * 1000.0) / 1000.0;
            }
        }
    }

    uint64_t max_window = cfg.slo.global.window_ms;
    for (const auto* m : {&cfg.slo.sources, &cfg.slo.routes}) {
        for (const auto& [name, t] : *m) {
            max_window = std::max(max_window, t.window_ms);
        }
    }
    if (!pg.ok()) {
        throw std::runtime_error("PostgreSQL unavailable: " + pg.error());
    }
    RecentRollups recent =
        recent_rollups(pg, scope.sql_array(), max_window, [&](bool route, const std::string& n) {
            return route ? cfg.slo.for_route(n).window_ms : cfg.slo.for_source(n).window_ms;
        });

    auto entry = [&](const std::string& name, const RollupTotals* totals, std::optional<double> age,
                     const SloThresholds& t) {
        SloInput in;
        if (totals) {
            in.deliveries = totals->attempts;
            in.failures = totals->failures();
            if (auto p = percentile_ms(totals->e2e, 0.95)) {
                in.lag_s = std::round(*p) / 1000.0;
            }
        }
        in.queue_age_s = age;
        SloVerdict v = classify(in, t);
        Json j;
        j["name"] = name;
        j["status"] = slo_level_name(v.level);
        j["reasons"] = v.reasons;
        j["error_rate"] = opt(v.error_rate);
        j["lag_seconds"] = opt(in.lag_s);
        j["queue_age_seconds"] = opt(in.queue_age_s);
        j["failures"] = in.failures;
        j["deliveries"] = in.deliveries;
        j["thresholds"] = thresholds_json(t);
        return j;
    };

    Json out_sources = Json::array();
    for (const auto& name : sources) {
        auto it = recent.sources.find(name);
        auto age = queue_age.find(name);
        out_sources.push_back(
            entry(name, it == recent.sources.end() ? nullptr : &it->second,
                  age == queue_age.end() ? std::nullopt : std::optional(age->second),
                  cfg.slo.for_source(name)));
    }
    Json out_routes = Json::array();
    for (const auto& r : cfg.routes) {
        if (!scope.allows(r.source)) {
            continue;
        }
        auto it = recent.routes.find(r.name);
        out_routes.push_back(entry(r.name, it == recent.routes.end() ? nullptr : &it->second,
                                   std::nullopt, cfg.slo.for_route(r.name)));
    }

    Json j;
    j["generated_at"] = rfc3339(static_cast<int64_t>(now_us()), 6);
    j["thresholds"] = thresholds_json(cfg.slo.global);
    j["sources"] = std::move(out_sources);
    j["routes"] = std::move(out_routes);
    return j;
}

}  // namespace hookq::ops
