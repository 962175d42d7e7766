// hookqctl routes: the configured routes, their 410 flags and breakers (ops/routes.h).
#pragma once

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int routes_list(Pg& pg, RedisConn& redis, const Config& cfg, bool json);

}  // namespace hookq::ctl
