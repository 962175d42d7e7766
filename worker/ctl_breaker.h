// hookqctl breaker list|reset: the per-destination circuit breakers the workers share in Redis.
#pragma once

#include <string>

#include "worker/pg.h"
#include "worker/redis_conn.h"

namespace hookq::ctl {

int breaker_list(RedisConn& redis, bool json);
// Closes the breaker of `destination` (as scheme://host:port, what `breaker list` shows).
int breaker_reset(RedisConn& redis, Pg& pg, const std::string& destination, bool json);

}  // namespace hookq::ctl
