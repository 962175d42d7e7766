// Redis key names and the ingest script. Every key of one queue carries the hash tag {Q}, so each
// script touches one slot and the layout runs unchanged on Redis Cluster.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace hookq::keys {

inline std::string queue(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:queue";
}
// Exists only inside the edge's ingest transaction (scripts::kIngestGuarded): the queue under
// another name while envelopes are pushed onto it. Never seen outside a MULTI/EXEC.
inline std::string stage(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:stage";
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
// A webhook's route pushed by a replay job and not decided yet (worker/jobs/replay_runner.h): holds
// the job's id, so that no other replay job pushes it again meanwhile; the worker's ack of the
// pushed copy's final outcome deletes it (worker/pipeline/recorder.cc).
inline std::string replay_pending(std::string_view q, std::string_view request_id,
                                  std::string_view route) {
    return "hookq:{" + std::string(q) + "}:replay_pending:" + std::string(request_id) + "/" +
           std::string(route);
}
// Held (SET NX PX, renewed every round) by the one worker that evaluates alerts and notifies.
inline std::string alerts_lease() {
    return "hookq:alerts:lease";
}

// Loop and storm detection (hookq_loop_limit): the per-entity counter of the current window, the
// entities over the limit (zset fingerprint -> count in the window when last seen), their readable
// keys (hash fingerprint -> key, trimmed with the zset), and the envelopes held by
// `hookq_loop_action hold` until an operator releases them.
inline std::string loop_prefix(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:loop:";
}
inline std::string loops(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:loops";
}
inline std::string loop_keys(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:loop_keys";
}
inline std::string held(std::string_view q) {
    return "hookq:{" + std::string(q) + "}:held";
}
// Entity ordering (worker/pipeline/ordering.h), per queue, route and entity (the first 128 bits
// of the SHA-256 of its order_key value, hex): the id of the delivery that holds the entity, the
// updates waiting behind it (":w"), and the ids merged into the holder (":m").
inline std::string order(std::string_view q, std::string_view route, std::string_view entity) {
    return "hookq:{" + std::string(q) + "}:order:" + std::string(route) + ":" + std::string(entity);
}

// How many entities the loops zset (and the loop_keys hash) keeps: the top ones by count.
inline constexpr int kMaxLoopEntries = 100;

// Dedup keys longer than this are replaced by their SHA-256 (hex) so a hostile header cannot make
// Redis keys arbitrarily large.
inline constexpr size_t kMaxDedupKeyLength = 128;

}  // namespace hookq::keys

namespace hookq::scripts {

// KEYS[1] queue, KEYS[2] dedup key; ARGV[1] depth limit (0: none), ARGV[2] dedup TTL in seconds,
// ARGV[3] request id (text), ARGV[4] envelope.
// Loop part, only when the location has hookq_loop_limit (other locations send two keys and pay
// nothing): KEYS[3] the entity's counter, KEYS[4] loops zset, KEYS[5] loop_keys hash, KEYS[6]
// held list; ARGV[5] window in ms, ARGV[6] limit, ARGV[7] "1" to hold, ARGV[8] fingerprint,
// ARGV[9] readable loop key.
// Returns {-1} queue full, {-2, type[, n]} the queue key (or the loop part's KEYS[n]) is of the
// wrong type, {0, original request id} duplicate, {1, new list length, loop} accepted, where loop
// is 0 (under the limit), 1 (over it, counted and queued) or 2 (over it, held). Every check comes
// before the first write, so that nothing (not even a dedup key) is written for a request that is
// refused: the provider's retry must be treated as new, not as a duplicate of a lost request. Redis
// keeps a script's earlier writes when a later command fails, so a LPUSH that could fail
// (WRONGTYPE: someone SET the queue key as a string) is ruled out by TYPE up front; the same for
// every key the loop part writes.
// The text is shared with the batch script below, which runs the very same text per envelope.
inline constexpr char kIngestText[] = R"lua(
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'list' and kind ~= 'none' then
  return {-2, kind}
end
local looped = #KEYS >= 6
if looped then
  for i, want in ipairs({'string', 'zset', 'hash', 'list'}) do
    local k = redis.call('TYPE', KEYS[i + 2])['ok']
    if k ~= want and k ~= 'none' then
      return {-2, k, i + 2}
    end
  end
end
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('LLEN', KEYS[1]) >= limit then
  return {-1}
end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2]) then
  return {0, redis.call('GET', KEYS[2])}
end
if not looped then
  return {1, redis.call('LPUSH', KEYS[1], ARGV[4]), 0}
end
local n = tonumber(redis.call('INCR', KEYS[3])) or 0
if n == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
if n <= tonumber(ARGV[6]) then
  return {1, redis.call('LPUSH', KEYS[1], ARGV[4]), 0}
end
redis.call('ZADD', KEYS[4], n, ARGV[8])
redis.call('HSET', KEYS[5], ARGV[8], ARGV[9])
local extra = redis.call('ZCARD', KEYS[4]) - 100 -- keys::kMaxLoopEntries
if extra > 0 then
  local gone = redis.call('ZRANGE', KEYS[4], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1)
  redis.call('HDEL', KEYS[5], unpack(gone))
end
if ARGV[7] == '1' then
  return {1, redis.call('LPUSH', KEYS[6], ARGV[4]), 2}
end
return {1, redis.call('LPUSH', KEYS[1], ARGV[4]), 1}
)lua";

inline constexpr std::string_view kIngest{kIngestText, sizeof kIngestText - 1};

namespace detail {
// a + b + c, as one NUL-terminated array, at compile time.
template <size_t A, size_t B, size_t C>
constexpr std::array<char, A + B + C - 2> join(const char (&a)[A], const char (&b)[B],
                                               const char (&c)[C]) {
    std::array<char, A + B + C - 2> out{};
    size_t n = 0;
    for (size_t i = 0; i + 1 < A; i++)
        out[n++] = a[i];
    for (size_t i = 0; i + 1 < B; i++)
        out[n++] = b[i];
    for (size_t i = 0; i < C; i++)
        out[n++] = c[i];
    return out;
}
inline constexpr char kBatchHead[] = "local function ingest(KEYS, ARGV, redis)";
inline constexpr char kBatchTail[] = R"lua(end

local real = redis
local kinds, lens, pushes, pushed = {}, {}, {}, {}
local function push_now(key)
  local values = pushes[key]
  if values then
    pushes[key] = nil
    real.call('LPUSH', key, unpack(values))
  end
end
local batched = {call = function(cmd, key, ...)
  if cmd == 'SET' and not pushes[key] then
    kinds[key], lens[key] = nil, nil
    return real.call(cmd, key, ...)
  end
  if cmd == 'TYPE' then
    local kind = kinds[key]
    if not kind then
      kind = real.call('TYPE', key)['ok']
      kinds[key] = kind
    end
    return {ok = kind}
  end
  if cmd == 'LLEN' or cmd == 'LPUSH' then
    local n = lens[key]
    if not n then
      n = real.call('LLEN', key)
    end
    if cmd == 'LPUSH' then
      local values = pushes[key]
      if not values then
        values = {}
        pushes[key] = values
        pushed[#pushed + 1] = key
      end
      values[#values + 1] = ...
      n = n + 1
      kinds[key] = 'list'
    end
    lens[key] = n
    return n
  end
  push_now(key)
  kinds[key], lens[key] = nil, nil
  return real.call(cmd, key, ...)
end}

local out = {}

-- kIngest without its loop part, for n envelopes of one queue with one limit and ttl: the same
-- checks in the same order, through the same caches and held-back pushes as `batched`, inline.
-- Running kIngest's text per envelope costs Redis a KEYS and an ARGV table, a pcall and a dozen
-- stand-in calls each, and the arguments that repeat (queue, limit, ttl, counts) are sent once
-- per group instead of once per envelope. tests/integration/test_ingest_batch_equivalence.py
-- runs both on the same inputs and compares every reply and the data left.
local function group(queue, n, limit, ttl, k, a)
  local kind = kinds[queue]
  if not kind then
    kind = real.call('TYPE', queue)['ok']
    kinds[queue] = kind
  end
  if kind ~= 'list' and kind ~= 'none' then
    for _ = 1, n do
      out[#out + 1] = {-2, kind}
    end
    return
  end
  local len = lens[queue] or real.call('LLEN', queue)
  local values = pushes[queue]
  for i = 0, n - 1 do
    local dedup = KEYS[k + i]
    if limit > 0 and len >= limit then
      out[#out + 1] = {-1}
    else
      local set = real.pcall('SET', dedup, ARGV[a + 2 * i], 'NX', 'EX', ttl)
      if type(set) == 'table' and set.err then
        out[#out + 1] = {-3, set.err}
      elseif not set then
        out[#out + 1] = {0, real.call('GET', dedup)}
      else
        if not values then
          values = {}
          pushes[queue] = values
          pushed[#pushed + 1] = queue
        end
        values[#values + 1] = ARGV[a + 2 * i + 1]
        len = len + 1
        kinds[queue] = 'list'
        out[#out + 1] = {1, len, 0}
      end
    end
  end
  lens[queue] = len
end

-- ARGV is a list of records: "L" and an envelope with the loop part (6 KEYS, 9 ARGV: kIngest's
-- own), or a group: its size n, limit, ttl, then n request ids and envelopes (KEYS: the queue,
-- then n dedup keys).
local k, a, nargv = 1, 1, #ARGV
while a <= nargv do
  if ARGV[a] == 'L' then
    -- Table constructors, sized at once: filling empty tables would grow them step by step.
    local keys = {KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]}
    local args = {ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6],
                  ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]}
    k = k + 6
    a = a + 10
    local ok, res = pcall(ingest, keys, args, batched)
    if not ok then
      if type(res) == 'table' then res = res.err end
      res = {-3, tostring(res)}
    end
    out[#out + 1] = res
  else
    local n = tonumber(ARGV[a])
    group(KEYS[k], n, tonumber(ARGV[a + 1]), ARGV[a + 2], k + 1, a + 3)
    k = k + 1 + n
    a = a + 3 + 2 * n
  end
end
for _, key in ipairs(pushed) do
  push_now(key)
end
return out
)lua";
inline constexpr auto kIngestBatchText = join(kBatchHead, kIngestText, kBatchTail);
}  // namespace detail

// Group commit: the ingest of every envelope one nginx worker produced in one turn of its event
// loop, in one script call, so that Redis pays its per-call cost (command dispatch, script setup,
// reply) once per batch instead of once per webhook. Envelopes are taken in arrival order: dedup,
// depth limit and loop detection behave exactly as for a lone call, and a later envelope of the
// batch sees the earlier ones' writes (the second of two requests with one dedup key is the
// duplicate). An envelope with the loop part runs kIngest's own text, with its own KEYS and ARGV;
// the others (most) go by groups of one queue through `group`, kIngest's simple path written
// inline, which costs Redis 15-25% less per webhook (bench/edge/README.md) and is held to the
// same replies and writes as kIngest by tests/integration/test_ingest_batch_equivalence.py.
//
// What a batch saves on top of the call itself: kIngest's `redis` is, in the batch, a stand-in that
// answers TYPE and LLEN of a key from what it already saw (one real call per key and batch) and
// holds LPUSHes back to push each list's values in one LPUSH at the end, in the same order (LPUSH
// k a b = LPUSH k a, LPUSH k b); every other command first pushes what is held for its key and
// forgets what was known of it, so even a key used in two roles reads what a lone call would. The
// list lengths it returns are the real ones.
//
// Each envelope runs under pcall (a group's SET under redis.pcall): an error fails that envelope
// alone, as a lone call would, rather than the whole batch after earlier envelopes were written and
// would be answered 503. (Redis checks maxmemory before a script's first write only: once an
// envelope of the batch is written, the rest are too, so a batch can take Redis past maxmemory by
// up to its size, which the edge bounds.)
//
// Records, in arrival order. A group: KEYS its queue, then each envelope's dedup key; ARGV its size
// n, the depth limit, the dedup ttl, then each envelope's request id and envelope. An envelope with
// the loop part: KEYS its six keys; ARGV "L", then its nine arguments. Returns one reply per
// envelope, in order: kIngest's reply, or {-3, message} when it raised an error.
//
// On Redis Cluster one call must stay within one hash slot: the edge batches per {Q} slot there.
inline constexpr std::string_view kIngestBatch{detail::kIngestBatchText.data(),
                                               detail::kIngestBatchText.size() - 1};

// The ingest of a batch whose envelopes never enter Lua. Redis's Lua hashes every byte of every
// string a script is handed (about 1.7 ns per byte: a 16 KB envelope costs more to hand over than
// the rest of its ingest), so here the envelopes go in by a plain LPUSHX, in one MULTI/EXEC with
// two calls of this script around it (bench/edge/README.md, "Envelope size"):
//
//   MULTI
//   EVALSHA kIngestGuarded '<' ...   each queue (a list) is renamed to its stage key; a queue
//                                    that does not exist yet gets a stage holding one marker ''
//   LPUSHX stage env...              per group, in arrival order: a no-op when '<' did not run
//   EVALSHA kIngestGuarded '>' ...   kIngest's checks per envelope, in order; a refused one is
//                                    overwritten with '' where it lies and all of those are taken
//                                    out; each stage is renamed back to its queue
//   EXEC
//
// Both calls are one script: after a SCRIPT FLUSH neither runs (NOSCRIPT, twice), the stage does
// not exist, LPUSHX pushes nothing, and the edge sends the transaction again with EVAL. The second
// call has nothing that can fail before its renames (no OOM either: EXEC ran, so Redis was under
// maxmemory when it began, and a script is checked against it only then); should a stage be left
// all the same, the next transaction takes it as the queue, never deletes it. Nothing
// else runs inside a transaction, so no one sees a queue renamed. The checks and replies are
// kIngest's without its loop part (an envelope with one goes by kIngestBatch), held to them by
// tests/integration/test_ingest_batch_equivalence.py: a queue of the wrong type gets {-2, type}
// for each of its envelopes and nothing pushed;
// the depth limit counts the queue as it was before this transaction plus the envelopes accepted
// before; a failing SET or GET is {-3, message} for that envelope alone.
//
// KEYS per group: its queue, its stage, then each envelope's dedup key. ARGV[1] '<' or '>', then
// per group: its size n, the depth limit, the dedup ttl, then each envelope's request id.
// '<' returns 0; '>' returns one kIngest reply per envelope, in order.
inline constexpr char kIngestGuardedText[] = R"lua(
local nargv = #ARGV
if ARGV[1] == '<' then
  local k, a, done = 1, 2, {}
  while a <= nargv do
    local q, stage, n = KEYS[k], KEYS[k + 1], tonumber(ARGV[a])
    if not done[q] then
      done[q] = true
      local kind = redis.call('TYPE', q)['ok']
      if kind == 'list' then
        redis.call('RENAME', q, stage)
      elseif kind == 'none' then
        -- A list already there is a queue whose transaction did not end (it cannot happen: the
        -- second call has no way to fail before its renames): it goes on as the queue.
        local was = redis.call('TYPE', stage)['ok']
        if was ~= 'list' then
          if was ~= 'none' then redis.call('DEL', stage) end
          redis.call('LPUSH', stage, '')
        end
      end
    end
    k, a = k + 2 + n, a + 3 + n
  end
  return 0
end
local total, k, a = {}, 1, 2
while a <= nargv do
  local n = tonumber(ARGV[a])
  total[KEYS[k]] = (total[KEYS[k]] or 0) + n
  k, a = k + 2 + n, a + 3 + n
end
local out, lens, pushed, dead, stages, wrong = {}, {}, {}, {}, {}, {}
local function refused(reply)
  if type(reply) == 'table' and reply.err then return {-3, reply.err} end
  return nil
end
k, a = 1, 2
while a <= nargv do
  local q, stage, n, limit, ttl = KEYS[k], KEYS[k + 1], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  local len = lens[q]
  if not len then
    local kind = redis.call('TYPE', q)['ok']
    if kind == 'none' then -- renamed to its stage by the first call
      stages[q], dead[q] = stage, 0
      len = redis.call('LLEN', stage) - total[q]
      if redis.call('LPOS', stage, '', 'RANK', -1, 'MAXLEN', 1) then
        redis.call('RPOP', stage)
        len = len - 1
      end
    else
      -- Of the wrong type: left as it is. LPUSHX found no stage, or one the first call left alone,
      -- whose head it then took: that is given back.
      wrong[q], len = kind, -1
      if redis.call('EXISTS', stage) == 1 then redis.call('LTRIM', stage, total[q], -1) end
    end
  end
  if len < 0 then
    for _ = 1, n do out[#out + 1] = {-2, wrong[q]} end
  else
    local at = pushed[q] or 0
    for i = 1, n do
      at = at + 1
      local reply
      if limit > 0 and len >= limit then
        reply = {-1}
      else
        local dedup = KEYS[k + 1 + i]
        local set = redis.pcall('SET', dedup, ARGV[a + 2 + i], 'NX', 'EX', ttl)
        reply = refused(set)
        if not reply and not set then
          local id = redis.pcall('GET', dedup)
          reply = refused(id) or {0, id}
        end
      end
      if reply then
        redis.call('LSET', stage, total[q] - at, '')
        dead[q] = dead[q] + 1
      else
        len = len + 1
        reply = {1, len, 0}
      end
      out[#out + 1] = reply
    end
    pushed[q] = at
  end
  lens[q] = len
  k, a = k + 2 + n, a + 3 + n
end
for q, stage in pairs(stages) do
  if dead[q] > 0 then redis.call('LREM', stage, dead[q], '') end
  if redis.call('EXISTS', stage) == 1 then redis.call('RENAME', stage, q) end
end
return out
)lua";
inline constexpr std::string_view kIngestGuarded{kIngestGuardedText, sizeof kIngestGuardedText - 1};

}  // namespace hookq::scripts
