// Per-source health: is each source's traffic arriving, being delivered, and keeping up? What
// GET /api/v1/health returns and `hookqctl health --json` prints.
#pragma once

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// Thresholds (CONTRACT.md): degraded at an error rate of 5% over the last 5 minutes, a queue whose
// oldest webhook waits 60 s, or an open breaker on a route of the source; unhealthy at 50%, 600 s,
// or Redis/PostgreSQL unreachable.
inline constexpr double kDegradedErrorRate = 0.05, kUnhealthyErrorRate = 0.5;
inline constexpr double kDegradedAgeS = 60, kUnhealthyAgeS = 600;

// The sources are those the configuration queues or routes (a queue is named after its source),
// as far as `scope` sees them. A backend that fails is reported, not thrown: `pg` may be
// disconnected (the caller could not connect), and then every source is unhealthy.
nlohmann::ordered_json health(RedisConn& redis, Pg& pg, const Config& cfg, const Scope& scope = {});

}  // namespace hookq::ops
