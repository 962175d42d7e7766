// Loop and storm detection, the reading side: the entities the edge found repeating more than
// hookq_loop_limit allows (hookq:{Q}:loops, loop_keys, the per-entity window counters), and the
// envelopes `hookq_loop_action hold` set aside in hookq:{Q}:held. The one implementation behind
// `hookqctl loops ...` and /api/v1/loops.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// [{"queue", "held", "loops": [{"fingerprint", "key", "count", "last_count"}]}], one per queue
// that has loops or held envelopes, in the order of `queues`. "count": the entity's count in its
// current window (0 once the window has passed); "last_count": its count when last seen over the
// limit. At most `top` entities per queue, highest last_count first.
nlohmann::ordered_json list_loops(RedisConn& redis, const std::vector<std::string>& queues,
                                  int top = 20);

// Moves every held envelope of `queue` to its consuming end, oldest first to be delivered, in
// atomic batches. Audited "loops.release". {"queue", "released"}. Error::not_found for a queue
// not in `queues` (the configuration's).
nlohmann::ordered_json release_loops(RedisConn& redis, Pg& pg, const std::string& queue,
                                     const Actor& actor, const std::vector<std::string>& queues);

// Forgets the queue's loops and window counters (not its held envelopes: those are only ever
// released). Audited "loops.clear". {"queue", "cleared"}.
nlohmann::ordered_json clear_loops(RedisConn& redis, Pg& pg, const std::string& queue,
                                   const Actor& actor, const std::vector<std::string>& queues);

}  // namespace hookq::ops
