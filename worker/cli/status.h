// hookqctl status: one look at the whole pipeline, from the Redis queues to what PostgreSQL has
// recorded, for the operator who has just been paged.
#pragma once

#include <string>
#include <vector>

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

// Prints ops::status (worker/ops/status.h): `queues` are those to report on (the configuration's,
// unless the operator named some).
int status(RedisConn& redis, Pg& pg, const Config& cfg, const std::vector<std::string>& queues,
           bool json);

}  // namespace hookq::ctl
