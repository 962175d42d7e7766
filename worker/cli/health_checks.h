// hookqctl health-checks and hookqctl slo: the destination health checks (ops/health_checks.h)
// and the SLO status (ops/slo.h), as the API answers them with --json. Both exit 1 when something
// is not well (a check failing; a source or route not healthy), so they serve as monitoring checks.
#pragma once

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int health_checks(RedisConn& redis, const Config& cfg, bool json);
int slo(RedisConn& redis, Pg& pg, const Config& cfg, bool json);

}  // namespace hookq::ctl
