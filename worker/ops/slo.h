// SLO status per source and per route: healthy, degraded or unhealthy against the [slo] thresholds
// (config.h SloThresholds), from the minute rollups over the window (error rate, failed attempts,
// end-to-end p95) and, for a source, the age of the oldest webhook in its queue. What
// GET /api/v1/slo returns, `hookqctl slo --json` prints and hookq_slo_status exports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

enum class SloLevel { healthy = 0, degraded = 1, unhealthy = 2 };
const char* slo_level_name(SloLevel l);

struct SloInput {
    uint64_t deliveries = 0;            // attempts over the window
    uint64_t failures = 0;              // of those, not delivered
    std::optional<double> lag_s;        // end-to-end p95 over the window; nullopt: no sample
    std::optional<double> queue_age_s;  // the oldest queued webhook; nullopt: none (or a route)
};

struct SloVerdict {
    SloLevel level = SloLevel::healthy;
    std::vector<std::string> reasons;  // one per threshold reached, with the value
    std::optional<double> error_rate;  // nullopt without deliveries
};

// Each value at or above its threshold raises the level; the worst wins.
SloVerdict classify(const SloInput& in, const SloThresholds& t);

// "5m", "90s", "1h": a window as the configuration writes it.
std::string window_text(uint64_t ms);

// {"error_rate_degraded", "error_rate_unhealthy", "lag_degraded_seconds", "lag_unhealthy_seconds",
//  "failures_degraded", "failures_unhealthy", "window_seconds"}
nlohmann::ordered_json thresholds_json(const SloThresholds& t);

// {"generated_at", "thresholds", "sources": [...], "routes": [...]}, as far as `scope` sees.
// Throws std::runtime_error when Redis or PostgreSQL fails (the API answers 503).
nlohmann::ordered_json slo(RedisConn& redis, Pg& pg, const Config& cfg, const Scope& scope = {});

}  // namespace hookq::ops
