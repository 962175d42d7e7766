// Redis key names and the ingest script. Every key of one queue carries the hash tag {Q}, so each
// script touches one slot and the layout runs unchanged on Redis Cluster.
#pragma once

#include <string>
#include <string_view>

namespace hookq::keys {

inline std::string queue(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:queue";
}
inline std::string retry(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:retry";
}
inline std::string dedup_prefix(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:dedup:";
}
inline std::string inflight(std::string_view q, std::string_view worker) {
    return "hookq:{" + std::string(q) + "}:inflight:" + std::string(worker);
}
inline std::string inflight_pattern(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:inflight:*";
}
// Ids of the workers consuming a queue, so the reaper can find the inflight list of a dead one.
inline std::string workers(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:workers";
}
// Elements that could not be decoded: set aside, never dropped, never blocking the queue.
inline std::string poison(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:poison";
}
// Deliveries held back by the breaker of one destination, scored by when to look at them again.
inline std::string parked(std::string_view q, std::string_view destination) {
    return "hookq:{" + std::string(q) + "}:parked:" + std::string(destination);
}
// When the destination's parked deliveries were last sent back (its breaker closed): a park decided
// before that is stale, and its ack sends the delivery back to the queue instead.
inline std::string parked_released(std::string_view q, std::string_view destination) {
    return "hookq:{" + std::string(q) + "}:parked_released:" + std::string(destination);
}
// Operator pauses: fields "route:<name>" / "source:<name>" -> {"by","at_ms","reason"}. Deliveries
// of a paused route park under the pseudo-destination paused_destination(route) until resumed.
inline std::string paused() {
    return "hookq:paused";
}
inline std::string paused_destination(std::string_view route) {
    return "paused:" + std::string(route);
}
// The destinations that have a parked set in this queue.
inline std::string parked_destinations(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:parked_destinations";
}
// The claim protocol (worker only).
// Where the idle path's BLMOVE puts what it takes from the queue; the next claim script moves it
// on into inflight and returns it. A BLMOVE whose reply is lost therefore leaves its element where
// the next claim picks it up, instead of in inflight where nobody would deliver it.
inline std::string claiming(std::string_view q, std::string_view worker) {
    return "hookq:{" + std::string(q) + "}:claiming:" + std::string(worker);
}
// Sequence number and size of the last claim script that ran, so that a claim whose reply was lost
// can be recovered (it ran) or fenced off (it has not run yet, and now never will).
inline std::string claim_seq(std::string_view q, std::string_view worker) {
    return "hookq:{" + std::string(q) + "}:claimseq:" + std::string(worker);
}
// The heartbeat again, once per queue the worker consumes, so that the reaper's script can check
// it in the same atomic step as the requeue: hookq:worker:<id> carries no hash tag and on Redis
// Cluster lives in another slot than the queue's keys.
inline std::string queue_heartbeat(std::string_view q, std::string_view worker) {
    return "hookq:{" + std::string(q) + "}:heartbeat:" + std::string(worker);
}
inline std::string worker_heartbeat(std::string_view worker) {
    return "hookq:worker:" + std::string(worker);
}
// Held by the worker that sweeps the keyspace for the queue's lists of unregistered workers this
// period.
inline std::string sweep_lease(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:sweep_lease";
}
inline std::string breaker(std::string_view destination) {
    return "hookq:breaker:" + std::string(destination);
}
// A route's destination health check (worker/jobs/health_checks.h): a hash of the last probe's
// result, and the lease that lets one worker of the fleet probe it per interval. Both carry the
// route as hash tag, so they share a slot.
inline std::string health_check(std::string_view route) {
    return "hookq:hc:{" + std::string(route) + "}";
}
inline std::string health_check_lease(std::string_view route) {
    return "hookq:hc:{" + std::string(route) + "}:lease";
}
// Held (SET NX PX, renewed every round) by the one worker that evaluates alerts and notifies.
inline std::string alerts_lease() {
    return "hookq:alerts:lease";
}

// Dedup keys longer than this are replaced by their SHA-256 (hex) so a hostile header cannot make
// Redis keys arbitrarily large.
inline constexpr size_t kMaxDedupKeyLength = 128;

}  // namespace hookq::keys

namespace hookq::scripts {

// KEYS[1] queue, KEYS[2] dedup key; ARGV[1] depth limit (0: none), ARGV[2] dedup TTL in seconds,
// ARGV[3] request id (text), ARGV[4] envelope.
// Returns {-1} queue full, {-2, type} queue key is not a list, {0, original request id} duplicate,
// {1, new queue length} accepted.
// Every check comes before the first write, so that nothing (not even a dedup key) is written for a
// request that is refused: the provider's retry must be treated as new, not as a duplicate of a
// lost request. Redis keeps a script's earlier writes when a later command fails, so a LPUSH that
// could fail (WRONGTYPE: someone SET the queue key as a string) is ruled out by TYPE up front.
inline constexpr std::string_view kIngest = R"lua(
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'list' and kind ~= 'none' then
  return {-2, kind}
end
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('LLEN', KEYS[1]) >= limit then
  return {-1}
end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2]) then
  return {0, redis.call('GET', KEYS[2])}
end
return {1, redis.call('LPUSH', KEYS[1], ARGV[4])}
)lua";

}  // namespace hookq::scripts
