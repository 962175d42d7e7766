// The destination health checks' last results (worker/jobs/health_checks.h writes them to Redis),
// for the routes that have a health_url: GET /api/v1/destinations/health,
// `hookqctl health-checks --json` and the hookq_destination_health_* gauges.
#pragma once

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// {"routes": [{"route", "url" (display form), "status" (ok|failing|unknown), "http_status",
//  "duration_ms", "checked_at", "consecutive_failures", "last_error", "last_ok_at",
//  "interval_seconds"}]} in configuration order, the scope's sources only. "unknown": not probed
// yet (http_status, duration_ms, checked_at, last_error and last_ok_at null then). Throws
// std::runtime_error when Redis fails.
nlohmann::ordered_json health_checks(RedisConn& redis, const Config& cfg, const Scope& scope = {});

}  // namespace hookq::ops
