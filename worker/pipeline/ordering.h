// Entity ordering and coalescing: a route with `order_key = "events[].meta.href"` never has two
// deliveries of one entity in flight, and sends them in arrival order; with `coalesce_window`, the
// updates that queued up behind one go out as one delivery. All state is in Redis, per queue,
// route and entity (keys::order), so every worker sees it and a crash loses nothing:
//
//   1. Enter (the route stage, before any breaker or pause): the first delivery of an idle entity
//      becomes its holder and goes on. Any other waits: its retry record is appended to the
//      entity's waiting list, and its claim is acked as "waiting".
//   2. The holder may be retried, parked or paused: it stays the holder, and entering again with
//      its id (a retry, a redelivery after a crash) lets it on.
//   3. Leave (in the ack of the holder's final outcome, delivered or dead, park::kAck): the next
//      in line becomes the holder and its record goes to the consuming end of the queue. With a
//      coalesce window, the waiting updates received within the window of the oldest of them
//      go together: the newest is sent (the application gets the latest state) and the others are
//      recorded as "coalesced" into it, their ids listed in X-Hookq-Coalesced-Ids.
//   4. Poisoned (PostgreSQL refused its rows, Recorder::poison): in the same step as it goes to
//      the poison list (park::kPoison), an entity it holds goes on as in step 3, whatever its
//      outcome was (the updates merged into it stay in the merged list, for the next holder to
//      stand for), and it leaves the waiting list of an entity it waits for. `hookqctl poison
//      retry` sends it back as a new arrival: step 1 again.
//
// Without an order_key value in the body (absent, not JSON), a delivery is not ordered.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/pipeline/messages.h"
#include "worker/store/redis_conn.h"

namespace hookq::ordering {

namespace scripts {
// KEYS[1] holder, KEYS[2] waiting, KEYS[3] merged; ARGV[1] id, ARGV[2] waiting entry
// -> {1, merged entries...} (go) or {0, holder id} (wait).
extern const std::string_view kEnter;
}  // namespace scripts

// The entity part of keys::order for an order_key value.
std::string entity(std::string_view value);

// "<id>|<received_at_us>|<retry record>": what the waiting list holds. The leave step reads the
// id and time without decoding the record.
std::string waiting_entry(std::string_view id, uint64_t received_us, std::string_view record);

enum class Entered { go, wait, error };
// Step 1 for the delivery `id` of `route` in `queue`. On go, `merged` gets the updates merged
// into it; on wait, `holder` the id it waits behind.
Entered enter(RedisConn& redis, std::string_view queue, std::string_view route,
              std::string_view entity, std::string_view id, const std::string& entry,
              std::vector<MergedUpdate>& merged, std::string& holder);

}  // namespace hookq::ordering
