// hookqctl health: per-source health (ops/health.h). Exits 0 when every source is healthy, 1
// otherwise, so that it can serve as a monitoring check.
#pragma once

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int health(RedisConn& redis, Pg& pg, const Config& cfg, bool json);

}  // namespace hookq::ctl
