// Per-source health: is each source's traffic arriving, being delivered, and keeping up? What
// GET /api/v1/health returns and `hookqctl health --json` prints.
#pragma once

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// Each source is judged as ops::slo judges it, with its [slo] thresholds (error rate, failed
// attempts and end-to-end p95 over the window, the queue's oldest webhook against the lag
// thresholds); besides, an open breaker on a route of the source degrades it and Redis or
// PostgreSQL unreachable makes it unhealthy. The *_5m fields cover the source's [slo] window
// (5 minutes unless configured otherwise).

// The sources are those the configuration queues or routes (a queue is named after its source),
// as far as `scope` sees them. A backend that fails is reported, not thrown: `pg` may be
// disconnected (the caller could not connect), and then every source is unhealthy.
nlohmann::ordered_json health(RedisConn& redis, Pg& pg, const Config& cfg, const Scope& scope = {});

}  // namespace hookq::ops
