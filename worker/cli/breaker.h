// hookqctl breaker list|reset: the per-destination circuit breakers the workers share in Redis.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "worker/config.h"

#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

// One object per breaker: destination, state, open_until, recent_failures, changed_at.
nlohmann::json breaker_states(RedisConn& redis, const Config& cfg);
int breaker_list(RedisConn& redis, const Config& cfg, bool json);
// Closes the breaker of `destination` (as scheme://host:port, what `breaker list` shows).
int breaker_reset(RedisConn& redis, Pg& pg, const std::string& destination, bool json);

}  // namespace hookq::ctl
