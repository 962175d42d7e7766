// hookqctl pause|resume route|source NAME, hookqctl pauses: operator pauses of deliveries.
#pragma once

#include <string>

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int pauses_list(RedisConn& redis, const Config& cfg, bool json);
int pause_set(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
              const std::string& name, const std::string& reason, bool json);
int pause_lift(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
               const std::string& name, bool json);

}  // namespace hookq::ctl
