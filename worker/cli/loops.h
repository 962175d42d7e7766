// hookqctl loops [list]|release|clear: the entities the edge found repeating more than
// hookq_loop_limit allows, and the envelopes `hookq_loop_action hold` set aside.
#pragma once

#include <string>
#include <vector>

#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int loops_list(RedisConn& redis, const std::vector<std::string>& queues, bool json);
// Held envelopes back onto the queue (audited "loops.release").
int loops_release(RedisConn& redis, Pg& pg, const std::string& queue,
                  const std::vector<std::string>& queues, bool json);
// Forgets the queue's loop counters (audited "loops.clear").
int loops_clear(RedisConn& redis, Pg& pg, const std::string& queue,
                const std::vector<std::string>& queues, bool json);

}  // namespace hookq::ctl
