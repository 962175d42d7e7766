#include "worker/pipeline/park.h"

#include "worker/log.h"
#include "worker/pipeline/context.h"
#include "worker/pipeline/ordering.h"
#include "worker/pipeline/router.h"

namespace hookq::park {

namespace scripts {

// Shared by kAck and kPoison (ordering.h step 3): the entity goes to the next in its waiting list,
// or to the newest of those received within `window` ms of it (the others' ids listed in
// `merged`, which it then stands for), and that one's record goes to the consuming end of `queue`.
// Returns the new holder's id, or nil when nobody waits (the entity is free).
constexpr char kHandOn[] = R"lua(
local function hand_on(holder, waiting, merged, window, queue)
  local w = redis.call('LRANGE', waiting, 0, -1)
  if #w == 0 then
    redis.call('DEL', holder)
    return nil
  end
  -- An entry is "<request id, 36>|<received ms>|<record>".
  local function at(e)
    local bar = string.find(e, '|', 38, true)
    return tonumber(string.sub(e, 38, bar - 1)), bar
  end
  local take = 1
  if window > 0 then
    local t0 = at(w[1])
    while take < #w and at(w[take + 1]) - t0 <= window do take = take + 1 end
  end
  for x = 1, take - 1 do
    local _, bar = at(w[x])
    redis.call('RPUSH', merged, string.sub(w[x], 1, bar - 1))
  end
  redis.call('LTRIM', waiting, take, -1)
  local _, bar = at(w[take])
  local next_holder = string.sub(w[take], 1, 36)
  redis.call('SET', holder, next_holder)
  redis.call('RPUSH', queue, string.sub(w[take], bar + 1))
  return next_holder
end
)lua";

// The element is named once: the records are built here from it, so the envelope crosses the
// network once per ack instead of twice. It leaves inflight in the same step as its records are
// written. An element no longer in inflight was reaped and queued again, but its records are
// written all the same: the outcome just committed says "retrying" for this route, and a reaped
// copy that finished before that commit would leave the row saying so forever with nothing in
// Redis to settle it. A second delivery is what at-least-once allows; a stuck row is not. The
// reply is what LREM removed, so the caller can count acks that removed nothing. A park decided
// before the destination's parked deliveries were last sent back (the breaker closed while this
// ack was on its way) goes to the queue instead: nobody would bring it back before its score.
// A split's events ('q') join the queue's far end, in order. An entity's holder that is done
// ('o', ordering.h step 3) hands it to the next in line, or to the newest of those received within
// the coalesce window (the others listed as merged into it), whose record goes to the consuming
// end; a holder that is no longer the holder (its entity moved on without it) changes nothing.
constexpr char kAckText[] = R"lua(
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
local env = ARGV[1]
local off = tonumber(ARGV[2])
if off > 0 then env = string.sub(env, off + 1) end
local k = 5
for i = 3, #ARGV, 5 do
  local t = ARGV[i]
  if t == 'p' then
    local rec = ARGV[i + 2] .. env
    local released = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    if tonumber(ARGV[i + 4]) <= released then
      redis.call('RPUSH', KEYS[4], rec)
    else
      redis.call('ZADD', KEYS[k], ARGV[i + 1], rec)
      redis.call('SADD', KEYS[3], ARGV[i + 3])
    end
    k = k + 2
  elseif t == 'r' then
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i + 2] .. env)
  elseif t == 'q' then
    redis.call('LPUSH', KEYS[4], ARGV[i + 2])
  elseif t == 'o' then
    if redis.call('GET', KEYS[k]) == ARGV[i + 2] then
      redis.call('DEL', KEYS[k + 2])
      hand_on(KEYS[k], KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[i + 1]), KEYS[4])
    end
    k = k + 3
  end
end
return removed
)lua";
constexpr auto kAckJoined = hookq::scripts::detail::join(kHandOn, kAckText, "");
const std::string_view kAck{kAckJoined.data(), kAckJoined.size() - 1};

// The element is kept whole in the poison list (nothing lost; `hookqctl poison retry` sends it
// back as a new arrival), and it leaves the waiting list of each entity it waited for. An element
// no longer in inflight was reaped and queued again: its copy will be refused and poisoned in
// turn, entities and all, so this one changes nothing (pushing it too would list it twice). Each
// entity it held goes on as in kAck's 'o' step, so that one refused row does not hold up every
// later update of the entity, with two differences: the updates that were merged into the poisoned
// holder are not dropped but stay in the merged list, so that the next holder (whose state is
// newer still) stands for them; and when nobody waits, that list stays behind a free entity for
// the next to take it (ordering.h kEnter adopts it).
constexpr char kPoisonText[] = R"lua(
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed == 0 then return {0} end
redis.call('LPUSH', KEYS[2], ARGV[1])
local out = {removed}
local k = 4
for i = 2, #ARGV, 2 do
  local nh = ''
  if redis.call('GET', KEYS[k]) == ARGV[i + 1] then
    nh = hand_on(KEYS[k], KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[i]), KEYS[3]) or '-'
  else
    for _, e in ipairs(redis.call('LRANGE', KEYS[k + 1], 0, -1)) do
      if string.sub(e, 1, 36) == ARGV[i + 1] then
        redis.call('LREM', KEYS[k + 1], 1, e)
        nh = 'w'
        break
      end
    end
  end
  table.insert(out, nh)
  k = k + 3
end
return out
)lua";
constexpr auto kPoisonJoined = hookq::scripts::detail::join(kHandOn, kPoisonText, "");
const std::string_view kPoison{kPoisonJoined.data(), kPoisonJoined.size() - 1};

// Earliest first onto the consuming end (the queue is consumed from the right), as kMoveDue does.
const std::string_view kMove = R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  for i = #due, 1, -1 do redis.call('RPUSH', KEYS[2], due[i]) end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5]) end
return #due
)lua";

}  // namespace scripts

namespace {
constexpr size_t kBatch = 1000;  // per script call, so no single call blocks Redis for long
// How long a release marker outlives the release: longer than any ack stays on its way, short of
// PostgreSQL outages (a park acked after that waits for its score, at most an open period).
constexpr std::string_view kReleasedTtlMs = "3600000";
// The first ack sends the script itself (so Redis has it cached), the others its SHA-1.
thread_local bool g_ack_needs_eval = true;
}  // namespace

bool final_for(const Job& j, const OrderHold& h) {
    for (const auto& o : j.outcomes) {
        if (o.route == h.route) {
            return o.kind == OutcomeKind::delivered || o.kind == OutcomeKind::dead;
        }
    }
    return false;
}

bool needs_records(const Job& j) {
    for (const auto& o : j.outcomes) {
        if (o.kind == OutcomeKind::parked || o.kind == OutcomeKind::retry ||
            o.kind == OutcomeKind::split) {
            return true;
        }
    }
    for (const auto& h : j.holds) {
        if (final_for(j, h)) {
            return true;
        }
    }
    return false;
}

void append_ack(RedisConn& redis, const Shared& s, const Job& j) {
    static const std::string sha = sha1_of_script(scripts::kAck);
    const std::string& q = s.cfg.queues[j.queue];
    // Everything the argv points at lives until append() returns (it copies into its buffer).
    std::vector<std::string> own;
    own.reserve(5 + 7 * j.outcomes.size());
    own.push_back(keys::inflight(q, s.cfg.worker_id));
    own.push_back(keys::retry(q));
    own.push_back(keys::parked_destinations(q));
    own.push_back(keys::queue(q));
    size_t env_offset = j.retry ? j.raw.size() - j.retry->envelope.size() : 0;
    own.push_back(std::to_string(env_offset));
    size_t offset_arg = own.size() - 1;
    // Indexes into `own` of the records' keys and of their five arguments each, in script order.
    std::vector<size_t> rec_keys, args;
    auto key = [&](std::string k) {
        own.push_back(std::move(k));
        rec_keys.push_back(own.size() - 1);
    };
    auto record = [&](std::string_view type, std::string score, std::string rec, std::string dest,
                      std::string decided) {
        for (std::string* v : {static_cast<std::string*>(nullptr), &score, &rec, &dest, &decided}) {
            own.push_back(v ? std::move(*v) : std::string(type));
            args.push_back(own.size() - 1);
        }
    };
    for (const auto& o : j.outcomes) {
        if (o.kind == OutcomeKind::split) {
            for (const std::string& child : o.children) {
                record("q", "0", child, "", "");
            }
            continue;
        }
        if (o.kind != OutcomeKind::retry && o.kind != OutcomeKind::parked) {
            continue;
        }
        RetryRecord header;  // the envelope is appended by the script
        header.route = o.route;
        header.attempt = o.next_attempt;
        header.first_attempt_us = j.first_attempt_us;
        std::string dest;
        if (o.kind == OutcomeKind::parked) {
            if (!o.park_dest.empty()) {
                dest = o.park_dest;
            } else {
                const Route* r = s.router.by_name(o.route);
                dest = r ? r->destination : o.route;
            }
            key(keys::parked(q, dest));
            key(keys::parked_released(q, dest));
        }
        record(o.kind == OutcomeKind::parked ? "p" : "r", std::to_string(o.due_ms), header.encode(),
               std::move(dest), std::to_string(o.decided_ms));
    }
    for (const OrderHold& h : j.holds) {
        if (!final_for(j, h)) {
            continue;  // retrying or parked: it keeps the entity
        }
        const Route* r = s.router.by_name(h.route);
        std::string k = keys::order(q, h.route, h.entity);
        key(k);
        key(k + ":w");
        key(k + ":m");
        record("o", std::to_string(r ? r->coalesce_window_us : 0), j.env.request_id.str(), "", "");
    }
    std::string nkeys = std::to_string(4 + rec_keys.size());
    std::vector<std::string_view> argv{"EVALSHA", sha, nkeys, own[0], own[1], own[2], own[3]};
    if (g_ack_needs_eval) {
        argv[0] = "EVAL";
        argv[1] = scripts::kAck;
        g_ack_needs_eval = false;
    }
    for (size_t i : rec_keys) {
        argv.push_back(own[i]);
    }
    argv.push_back(j.raw);
    argv.push_back(own[offset_arg]);
    for (size_t i : args) {
        argv.push_back(own[i]);
    }
    redis.append(argv);
}

void add_waiting_places(const Shared& s, Job& j) {
    for (const auto& o : j.outcomes) {
        const Route* r = o.kind == OutcomeKind::waiting ? s.router.by_name(o.route) : nullptr;
        if (!r || r->order_key.empty()) {
            continue;
        }
        // The value route_stage entered it under: the same body, the same path.
        std::string value = json_field(j.env.body, r->order_key);
        if (!value.empty()) {
            j.holds.push_back(OrderHold{o.route, ordering::entity(value), {}});
        }
    }
}

void append_poison(RedisConn& redis, const Shared& s, const Job& j) {
    const std::string& q = s.cfg.queues[j.queue];
    std::vector<std::string> ks{keys::inflight(q, s.cfg.worker_id), keys::poison(q),
                                keys::queue(q)};
    std::vector<std::string> args;
    std::string id = j.env.request_id.str();
    for (const OrderHold& h : j.holds) {
        const Route* r = s.router.by_name(h.route);
        std::string k = keys::order(q, h.route, h.entity);
        ks.push_back(k);
        ks.push_back(k + ":w");
        ks.push_back(k + ":m");
        args.push_back(std::to_string(r ? r->coalesce_window_us : 0));
        args.push_back(id);
    }
    // EVAL, not EVALSHA: this path is rare, and so never meets a flushed script cache.
    std::string nkeys = std::to_string(ks.size());
    std::vector<std::string_view> argv{"EVAL", scripts::kPoison, nkeys};
    argv.insert(argv.end(), ks.begin(), ks.end());
    argv.push_back(j.raw);
    argv.insert(argv.end(), args.begin(), args.end());
    redis.append(argv);
}

void log_poison_hand_on(const Shared& s, const Job& j, const redisReply* r) {
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        return;
    }
    std::string id = j.env.request_id.str();
    for (size_t i = 0; i < j.holds.size() && i + 1 < r->elements; ++i) {
        const redisReply* e = r->element[i + 1];
        std::string_view next =
            e->type == REDIS_REPLY_STRING ? std::string_view(e->str, e->len) : std::string_view();
        if (next.empty()) {
            continue;  // neither its holder nor in its line (any more): nothing changed
        }
        if (next == "w") {
            log::info("taken out of its entity's waiting list: moved to the poison list",
                      {{"request_id", id},
                       {"queue", s.cfg.queues[j.queue]},
                       {"route", j.holds[i].route},
                       {"entity", j.holds[i].entity}});
            continue;
        }
        log::warn("entity handed on: its holder was moved to the poison list",
                  {{"request_id", id},
                   {"queue", s.cfg.queues[j.queue]},
                   {"route", j.holds[i].route},
                   {"entity", j.holds[i].entity},
                   {"next", next == "-" ? std::string("none waiting") : std::string(next)}});
    }
}

bool note_ack_error(const Reply& r) {
    if (!r || r->type != REDIS_REPLY_ERROR ||
        !std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
        return false;
    }
    g_ack_needs_eval = true;  // Redis restarted or flushed its scripts: send it again
    return true;
}

long long move(RedisConn& redis, std::string_view queue, std::string_view dest,
               std::string_view max_score, size_t limit, std::string_view released_at) {
    Reply r = redis.eval(scripts::kMove,
                         {keys::parked(queue, dest), keys::queue(queue),
                          keys::parked_destinations(queue), keys::parked_released(queue, dest)},
                         {max_score, std::to_string(limit), dest, released_at, kReleasedTtlMs});
    if (is_error(r) || r->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    return r->integer;
}

long long release_all(RedisConn& redis, const std::vector<std::string>& queues,
                      std::string_view dest, uint64_t now_ms) {
    std::string released_at = std::to_string(now_ms);
    long long total = 0;
    for (const auto& q : queues) {
        long long n;
        do {
            n = move(redis, q, dest, "+inf", kBatch, released_at);
            if (n < 0) {
                return -1;
            }
            total += n;
        } while (n == static_cast<long long>(kBatch));
    }
    return total;
}

bool release_one(RedisConn& redis, const std::vector<std::string>& queues, std::string_view dest) {
    for (const auto& q : queues) {
        if (move(redis, q, dest, "+inf", 1, "") > 0) {
            return true;
        }
    }
    return false;
}

long long move_due(RedisConn& redis, std::string_view queue, uint64_t now_ms) {
    Reply dests = redis.command({"SMEMBERS", keys::parked_destinations(queue)});
    if (is_error(dests) || dests->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    std::string now = std::to_string(now_ms);
    long long total = 0;
    for (size_t i = 0; i < dests->elements; ++i) {
        std::string_view dest(dests->element[i]->str, dests->element[i]->len);
        long long n = move(redis, queue, dest, now, kBatch, "");
        if (n < 0) {
            return -1;
        }
        total += n;
    }
    return total;
}

long long count(RedisConn& redis, std::string_view queue) {
    Reply dests = redis.command({"SMEMBERS", keys::parked_destinations(queue)});
    if (is_error(dests) || dests->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    long long total = 0;
    for (size_t i = 0; i < dests->elements; ++i) {
        std::string_view dest(dests->element[i]->str, dests->element[i]->len);
        Reply n = redis.command({"ZCARD", keys::parked(queue, dest)});
        if (!is_error(n) && n->type == REDIS_REPLY_INTEGER) {
            total += n->integer;
        }
    }
    return total;
}

}  // namespace hookq::park
