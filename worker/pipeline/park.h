// Parked deliveries: what an open or half-open breaker holds back. They wait in one sorted set per
// destination and queue, hookq:{Q}:parked:<destination>, scored by when the breaker may next need
// them (its open_until while open, an open period ahead while half-open), so that a parked
// delivery costs one claim and one write per open period, not one per second. Whoever sees the
// breaker close moves them all back to the consuming end of their queue at once; a successful probe
// that does not close it yet brings back one (the next probe); move_due returns any whose score has
// passed, so nothing waits forever if the close was missed. hookq:{Q}:parked_destinations lists the
// destinations with parked entries in Q, so that move_due and status need no SCAN.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/pipeline/messages.h"
#include "worker/store/redis_conn.h"

namespace hookq {
struct Shared;
}

namespace hookq::park {

namespace scripts {
// The ack of a job that writes records. KEYS[1] inflight, KEYS[2] retry set, KEYS[3] parked
// destinations, KEYS[4] queue, then per parked record (in ARGV order) its parked set and its
// parked_released marker, per entity handed on its holder, waiting and merged keys (ordering.h);
// ARGV[1] the inflight element, ARGV[2] where its envelope starts (0: it is an envelope; else the
// length of its HQR1 header), then 5 per record: 'r'|'p', score, HQR1 header, destination,
// decided ms; or 'q', -, a split event's whole retry record, -, -; or 'o', coalesce window us,
// the holder's id, -, -.
// -> 1, or 0 when the element was no longer in inflight (then nothing is written).
extern const std::string_view kAck;
// The move of an element to the poison list, handing on the entities it holds or waits for
// (ordering.h step 4). KEYS[1] inflight, KEYS[2] poison list, KEYS[3] queue, then per entity its
// holder, waiting and merged keys; ARGV[1] the element, then per entity its coalesce window us and
// the element's id. -> {LREM count, then per entity: the id of its next holder, '-' when it held
// the entity and none waited, 'w' when it was taken out of the waiting list, '' when neither};
// {0} alone when the element was no longer in inflight (then nothing is written).
extern const std::string_view kPoison;
// KEYS[1] parked set, KEYS[2] queue, KEYS[3] parked destinations, KEYS[4] parked_released marker;
// ARGV[1] max score ('+inf': any), ARGV[2] limit, ARGV[3] destination, ARGV[4] release time for
// the marker ('' leaves it), ARGV[5] its TTL ms -> number moved to the queue's consuming end.
extern const std::string_view kMove;
}  // namespace scripts

// Whether `j`'s outcome for the route of `h` is that route's last word (delivered or dead): its
// ack hands the entity on (ordering.h step 3).
bool final_for(const Job& j, const OrderHold& h);
// Whether acking `j` writes retry or parked records (then append_ack does it in one script).
bool needs_records(const Job& j);
// Pipelines the ack of `j` (which needs_records): one script that takes the element out of inflight
// and puts every retry/parked record built from it in place, atomically.
void append_ack(RedisConn& redis, const Shared& s, const Job& j);
// The ack pipelines EVALSHA: after Redis lost its script cache the reply is NOSCRIPT; this makes
// the ack's retry send the script itself. true if `r` was such a reply.
bool note_ack_error(const Reply& r);

// For a job PostgreSQL refused (Recorder::poison, before its outcomes go): adds to its holds the
// entities it waits for, so that append_poison takes it out of their line as well. A waiting
// entry left behind would deliver it when its turn comes, to be refused and poisoned once more.
void add_waiting_places(const Shared& s, Job& j);
// Pipelines the move of `j` (undecodable, or PostgreSQL refused its rows: Recorder::poison) from
// inflight to the poison list: one script that also hands each entity it holds on, and takes it
// out of the line of those it waits for (kPoison).
void append_poison(RedisConn& redis, const Shared& s, const Job& j);
// Logs, per entity, what kPoison's reply `r` says became of it.
void log_poison_hand_on(const Shared& s, const Job& j, const redisReply* r);

// Moves the parked entries of `dest` in `queue` scored <= max_score back to the queue, earliest
// first, at most `limit`; with `released_at`, also marks when (see kAck). -1 on a Redis error.
long long move(RedisConn& redis, std::string_view queue, std::string_view dest,
               std::string_view max_score, size_t limit, std::string_view released_at);
// Every parked entry of `dest` in each of `queues`, because its breaker closed at about `now_ms`
// (Redis ms): parks decided before that and acked later go to the queue too. -1 on a Redis error.
long long release_all(RedisConn& redis, const std::vector<std::string>& queues,
                      std::string_view dest, uint64_t now_ms);
// The earliest parked entry of `dest` from the first of `queues` that has one: the next probe.
bool release_one(RedisConn& redis, const std::vector<std::string>& queues, std::string_view dest);
// Parked entries of every destination in `queue` whose score is <= now_ms. -1 on a Redis error.
long long move_due(RedisConn& redis, std::string_view queue, uint64_t now_ms);
// Parked entries in `queue`, all destinations.
long long count(RedisConn& redis, std::string_view queue);

}  // namespace hookq::park
