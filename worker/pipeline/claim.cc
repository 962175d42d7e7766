#include "worker/pipeline/claim.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/pipeline/park.h"

namespace hookq {

namespace claim_scripts {

// The sequence number fences a claim whose reply was lost: once kRecover has given up on it, it
// does nothing even if Redis only reads it now. What it moves is recorded with it, so kRecover
// can find it at the head of the inflight list (nothing is claimed until that is settled, and
// acks never touch it: the worker does not hold it).
const std::string_view kClaim = R"lua(
local seq = tonumber(ARGV[2])
if seq <= tonumber(redis.call('HGET', KEYS[4], 'seq') or '0') then return {} end
local items = redis.call('LRANGE', KEYS[3], 0, -1)
if #items > 0 then redis.call('DEL', KEYS[3]) end
local want = tonumber(ARGV[1]) - #items
local room = tonumber(ARGV[3])
local bytes = 0
for i = 1, #items do bytes = bytes + #items[i] end
while want > 0 and bytes < room do
  local v = redis.call('RPOP', KEYS[1])
  if not v then break end
  items[#items + 1] = v
  bytes = bytes + #v
  want = want - 1
end
for i = 1, #items, 500 do
  redis.call('LPUSH', KEYS[2], unpack(items, i, math.min(i + 499, #items)))
end
redis.call('HSET', KEYS[4], 'seq', ARGV[2], 'n', #items)
return items
)lua";

// Settles claim ARGV[1]: if it ran, returns what it moved; if not, fences it off.
const std::string_view kRecover = R"lua(
local last = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local seq = tonumber(ARGV[1])
if last == seq then
  local n = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
  if n == 0 then return {} end
  return redis.call('LRANGE', KEYS[1], 0, n - 1)
end
if last < seq then redis.call('HSET', KEYS[2], 'seq', ARGV[1], 'n', 0) end
return {}
)lua";

// Due retries go to the consuming end of the queue: a retry whose time has come should not wait
// behind the whole backlog a second time. Earliest due is consumed first.
const std::string_view kMoveDue = R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(due))
for i = #due, 1, -1 do redis.call('RPUSH', KEYS[2], due[i]) end
return #due
)lua";

// Newest inflight element first onto the consuming end, so the oldest ends up consumed first.
// What they moved is no longer at the head of inflight: the claim record must not point there.
const std::string_view kRequeue = R"lua(
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
local n = 0
for _, key in ipairs({KEYS[1], KEYS[4]}) do
  while true do
    local v = redis.call('LMOVE', key, KEYS[2], 'LEFT', 'RIGHT')
    if not v then break end
    n = n + 1
  end
end
if ARGV[1] ~= '' then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[5])
elseif redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], 'n', 0)
end
return n
)lua";

}  // namespace claim_scripts

bool Heartbeat::sync_clock() {
    int64_t sent = RedisClock::mono_us();
    Reply r = redis_.command({"TIME"});
    int64_t recv = RedisClock::mono_us();
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return false;
    }
    uint64_t secs = std::strtoull(r->element[0]->str ? r->element[0]->str : "0", nullptr, 10);
    uint64_t usec = std::strtoull(r->element[1]->str ? r->element[1]->str : "0", nullptr, 10);
    s_.clock.sync(secs * 1000000 + usec, sent, recv);
    return true;
}

bool Heartbeat::beat() {
    const auto& c = s_.cfg;
    uint64_t sent = mono_ms();
    if (!sync_clock()) {
        return false;
    }
    std::string ttl = std::to_string(c.heartbeat_ttl_ms);
    Reply r = redis_.command(
        {"SET", keys::worker_heartbeat(c.worker_id), std::to_string(s_.clock.now_ms()), "PX", ttl});
    // On Redis Cluster these keys live on several masters: one of them failing over must not let
    // the heartbeats on the others lapse, so every queue is beaten even after a failure. (On a
    // single Redis that is down, each further command fails at once, without a round trip.)
    bool ok = !is_error(r);
    for (const auto& q : c.queues) {
        if (!ok && !redis_.cluster()) {
            return false;
        }
        if (is_error(
                redis_.command({"SET", keys::queue_heartbeat(q, c.worker_id), "1", "PX", ttl})) ||
            is_error(redis_.command({"SADD", keys::workers(q), c.worker_id}))) {
            ok = false;
        }
    }
    if (!ok) {
        return false;
    }
    lease_until_ms_.store(sent + c.heartbeat_ttl_ms);
    return true;
}

void Heartbeat::run() {
    const auto& c = s_.cfg;
    uint64_t next = mono_ms() + c.heartbeat_ttl_ms / 3;
    std::unique_lock lock(mu_);
    while (!stopping_) {
        s_.tick_heartbeat.store(mono_ms());
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        if (stopping_ || mono_ms() < next) {
            continue;
        }
        lock.unlock();
        // A third of the TTL: two heartbeats can be lost before anyone reaps us.
        bool ok = beat();
        next = mono_ms() + (ok ? c.heartbeat_ttl_ms / 3 : 200);
        lock.lock();
    }
}

void Heartbeat::start() {
    s_.tick_heartbeat.store(mono_ms());
    thread_ = std::thread([this] { run(); });
}

void Heartbeat::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Heartbeat::remove() {
    const auto& c = s_.cfg;
    for (const auto& q : c.queues) {
        redis_.command({"DEL", keys::queue_heartbeat(q, c.worker_id)});
    }
    redis_.command({"DEL", keys::worker_heartbeat(c.worker_id)});
}

bool ClaimStage::startup() {
    const std::string& id = s_.cfg.worker_id;
    for (const auto& q : s_.cfg.queues) {
        std::string seq_key = keys::claim_seq(q, id);
        Reply r = redis_.eval(claim_scripts::kRequeue,
                              {keys::inflight(q, id), keys::queue(q), keys::workers(q),
                               keys::claiming(q, id), seq_key, keys::queue_heartbeat(q, id)},
                              {""});
        if (is_error(r)) {
            return false;
        }
        // Claim numbers go on from the previous run's, so that a claim it sent just before dying
        // can never pass for one of ours.
        Reply seq = redis_.command({"HGET", seq_key, "seq"});
        if (is_error(seq)) {
            return false;
        }
        if (seq->type == REDIS_REPLY_STRING) {
            seq_ = std::max<uint64_t>(seq_, std::strtoull(seq->str, nullptr, 10));
        }
        if (r->integer > 0) {
            log::info("returned leftover inflight to queue",
                      {{"queue", q}, {"count", r->integer}, {"worker", s_.cfg.worker_id}});
        }
    }
    return true;
}

int64_t ClaimStage::left_inflight() {
    const auto& c = s_.cfg;
    int64_t left = 0;
    for (const auto& q : c.queues) {
        for (const std::string& key :
             {keys::inflight(q, c.worker_id), keys::claiming(q, c.worker_id)}) {
            Reply n = redis_.command({"LLEN", key});
            if (is_error(n) || n->type != REDIS_REPLY_INTEGER) {
                return -1;
            }
            left += n->integer;
        }
    }
    return left;
}

bool ClaimStage::deregister() {
    const auto& c = s_.cfg;
    if (left_inflight() != 0) {
        return false;  // something is left (or Redis cannot tell): stay registered for the reaper
    }
    for (const auto& q : c.queues) {
        redis_.command({"SREM", keys::workers(q), c.worker_id});
        redis_.command({"DEL", keys::claim_seq(q, c.worker_id)});
    }
    return true;
}

void ClaimStage::move_due() {
    std::string now = std::to_string(s_.clock.now_ms());
    const uint64_t mono = mono_ms();
    for (size_t qi = 0; qi < s_.cfg.queues.size(); ++qi) {
        const std::string& q = s_.cfg.queues[qi];
        if (!reachable(qi, mono)) {
            continue;
        }
        Reply r =
            redis_.eval(claim_scripts::kMoveDue, {keys::retry(q), keys::queue(q)}, {now, "1000"});
        if (!r) {
            unanswered(qi, mono);
            continue;
        }
        if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
            log::debug("due retries moved to queue", {{"queue", q}, {"count", r->integer}});
        }
        park::move_due(redis_, q, s_.clock.now_ms());  // in case a breaker's close was missed
    }
}

bool ClaimStage::reachable(size_t qi, uint64_t now) const {
    return backoff_.empty() || now >= backoff_[qi].until_ms;
}

void ClaimStage::answered(size_t qi) {
    if (!backoff_.empty()) {
        backoff_[qi] = {};
    }
}

void ClaimStage::unanswered(size_t qi, uint64_t now) {
    if (backoff_.empty()) {
        return;  // a single Redis: every queue is down together, and run() waits for it
    }
    Backoff& b = backoff_[qi];
    b.ms = b.ms ? std::min<uint64_t>(b.ms * 2, 5000) : 250;
    b.until_ms = now + b.ms;
    // A call that timed out is progress, not a wedged loop: several queues on one lost master
    // may each take [redis] timeout in one turn, which must not read as a hang to the watchdog.
    s_.tick_claim.store(mono_ms());
}

void ClaimStage::reap() {
    const auto& c = s_.cfg;
    // Now and then, also every inflight or landing list whose owner is not registered: whatever
    // path left one behind (a registration lost between a reap and a kill), work must never sit
    // where no reaper looks. SCAN finds what SMEMBERS cannot, but it walks the whole keyspace — a
    // dedup key per webhook of the last days, a million at a few thousand a second — on the one
    // thread the edge and every worker wait on. So one worker per queue and period sweeps (a
    // lease), in one pass for all the queues it won: the cost does not grow with the number of
    // workers or queues.
    uint64_t now = mono_ms();
    std::map<std::string, std::set<std::string>> swept;  // queue won -> owners of lists found
    if (now >= next_sweep_ms_) {
        uint64_t every = std::max<uint64_t>(60000, c.reaper_interval_ms * 12);
        next_sweep_ms_ = now + every;
        for (const auto& q : c.queues) {
            Reply lease = redis_.command(
                {"SET", keys::sweep_lease(q), c.worker_id, "NX", "PX", std::to_string(every)});
            if (!is_error(lease) && lease->type == REDIS_REPLY_STATUS) {
                swept[q];
            }
        }
        if (!swept.empty()) {
            for (const std::string& key : scan_keys("hookq:{*}:[ic][nl]*")) {
                for (std::string_view kind : {"}:inflight:", "}:claiming:"}) {
                    size_t at = key.find(kind);
                    if (!key.starts_with("hookq:{") || at == std::string::npos) {
                        continue;
                    }
                    if (auto it = swept.find(key.substr(7, at - 7)); it != swept.end()) {
                        it->second.insert(key.substr(at + kind.size()));
                    }
                }
            }
        }
    }
    for (size_t qi = 0; qi < c.queues.size(); ++qi) {
        const std::string& q = c.queues[qi];
        if (!reachable(qi, now)) {
            continue;
        }
        Reply members = redis_.command({"SMEMBERS", keys::workers(q)});
        if (!members) {
            unanswered(qi, now);
            continue;
        }
        if (is_error(members) || members->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        std::set<std::string> ids;
        for (size_t i = 0; i < members->elements; ++i) {
            ids.emplace(members->element[i]->str, members->element[i]->len);
        }
        if (auto it = swept.find(q); it != swept.end()) {
            size_t registered = ids.size();
            ids.insert(it->second.begin(), it->second.end());
            if (ids.size() > registered) {
                log::debug("sweep found lists of unregistered workers",
                           {{"queue", q}, {"count", ids.size() - registered}});
            }
        }
        for (const std::string& id : ids) {
            if (id == c.worker_id) {
                continue;
            }
            // Decided inside the script, against the queue's copy of the heartbeat: a check made
            // before it could be stale by the time the requeue runs. The global key is still
            // looked at first for workers that do not write the per-queue copy.
            Reply alive = redis_.command({"EXISTS", keys::worker_heartbeat(id)});
            if (is_error(alive) || alive->integer != 0) {
                continue;
            }
            Reply r = redis_.eval(
                claim_scripts::kRequeue,
                {keys::inflight(q, id), keys::queue(q), keys::workers(q), keys::claiming(q, id),
                 keys::claim_seq(q, id), keys::queue_heartbeat(q, id)},
                {id});
            if (!is_error(r) && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
                log::warn("reaped inflight of dead worker",
                          {{"queue", q}, {"dead_worker", id}, {"count", r->integer}});
            }
        }
    }
}

std::vector<std::string> ClaimStage::scan_keys(const std::string& pattern) {
    std::vector<std::string> out;
    std::string cursor = "0";
    do {
        Reply r = redis_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            return out;
        }
        cursor.assign(r->element[0]->str, r->element[0]->len);
        const redisReply* keys = r->element[1];
        for (size_t i = 0; i < keys->elements; ++i) {
            out.emplace_back(keys->element[i]->str, keys->element[i]->len);
        }
    } while (cursor != "0");
    return out;
}

size_t ClaimStage::accept(size_t qi, const redisReply& items) {
    uint64_t t = now_us();
    s_.in_process.fetch_add(static_cast<int64_t>(items.elements));
    metrics::global().claimed(qi, items.elements);
    claimed_.reserve(items.elements);
    for (size_t i = 0; i < items.elements; ++i) {
        claimed_.push_back(
            s_.new_job(qi, std::string_view(items.element[i]->str, items.element[i]->len), t));
    }
    s_.to_route.push_many(claimed_);
    return items.elements;
}

size_t ClaimStage::claim_batch(size_t qi, size_t n, int64_t room_bytes) {
    const std::string& q = s_.cfg.queues[qi];
    const std::string& id = s_.cfg.worker_id;
    uint64_t seq = ++seq_;
    Reply r = redis_.eval(
        claim_scripts::kClaim,
        {keys::queue(q), keys::inflight(q, id), keys::claiming(q, id), keys::claim_seq(q, id)},
        {std::to_string(n), std::to_string(seq), std::to_string(room_bytes)});
    if (!r) {
        unknown_[qi] = seq;
        unanswered(qi, mono_ms());
        log::warn("claim sent without an answer; settling it before claiming more on its queue",
                  {{"queue", q}, {"claim", seq}, {"error", redis_.last_error()}});
        return 0;
    }
    answered(qi);
    if (r->type != REDIS_REPLY_ARRAY) {
        std::string err = r->str ? std::string(r->str, r->len) : std::string();
        // A restarted Redis refuses every command until its dataset is read back: expected, and
        // over by itself. Nothing was claimed, so waiting is all there is to do.
        if (r->type == REDIS_REPLY_ERROR && err.starts_with("LOADING")) {
            if (!loading_) {
                log::warn("Redis is loading its dataset; waiting", {{"queue", q}});
                loading_ = true;
            }
            return 0;
        }
        log::error("claim script failed", {{"queue", q}, {"error", err}});
        return 0;
    }
    if (loading_) {
        log::info("Redis has loaded its dataset; claiming again", {{"queue", q}});
        loading_ = false;
    }
    return accept(qi, *r);
}

bool ClaimStage::recover(size_t qi) {
    const std::string& q = s_.cfg.queues[qi];
    const std::string& id = s_.cfg.worker_id;
    const uint64_t seq = *unknown_[qi];
    Reply r = redis_.eval(claim_scripts::kRecover, {keys::inflight(q, id), keys::claim_seq(q, id)},
                          {std::to_string(seq)});
    if (!r) {
        unanswered(qi, mono_ms());
    }
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY) {
        return false;  // still unknown: asked again next turn
    }
    answered(qi);
    size_t n = accept(qi, *r);
    log::warn("claim without an answer settled", {{"queue", q}, {"claim", seq}, {"recovered", n}});
    unknown_[qi].reset();
    return true;
}

void ClaimStage::run() {
    const auto& c = s_.cfg;
    uint64_t next_due = 0, next_reap = mono_ms() + c.reaper_interval_ms;
    const size_t nq = c.queues.size();
    unknown_.assign(nq, std::nullopt);
    backoff_.assign(redis_.cluster() ? nq : 0, Backoff{});
    while (!s_.stop_claiming.load()) {
        uint64_t now = mono_ms();
        s_.tick_claim.store(now);
        if (!redis_.ensure()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        if (now >= next_due) {
            move_due();
            next_due = now + c.retry_poll_ms;
        }
        if (now >= next_reap) {
            reap();
            next_reap = now + c.reaper_interval_ms;
        }
        size_t settling = 0;  // queues with a claim still unknown
        for (size_t qi = 0; qi < nq; ++qi) {
            if (!unknown_[qi] || (reachable(qi, now) && recover(qi))) {
                continue;
            }
            ++settling;
            if (!redis_.cluster()) {
                settling = nq;  // a single Redis that does not answer does so for every queue
                break;
            }
        }
        if (settling == nq) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }

        const auto max_bytes = static_cast<int64_t>(c.max_inflight_bytes);
        int64_t room = static_cast<int64_t>(c.max_inflight) - s_.in_process.load();
        int64_t room_bytes = max_bytes - s_.in_process_bytes.load();
        if (room <= 0 || room_bytes <= 0) {
            std::unique_lock lock(s_.cap_mu);
            s_.cap_cv.wait_for(lock, std::chrono::milliseconds(50), [&] {
                return (s_.in_process.load() < static_cast<int64_t>(c.max_inflight) &&
                        s_.in_process_bytes.load() < max_bytes) ||
                       s_.stop_claiming.load();
            });
            continue;
        }
        size_t got = 0;
        bool lost = false;  // a claim went unanswered this turn: settle it at once
        for (size_t k = 0; k < nq && room > 0 && room_bytes > 0 && !(lost && !redis_.cluster());
             ++k) {
            size_t qi = (rr_ + k) % nq;
            if (unknown_[qi] || !reachable(qi, mono_ms())) {
                continue;
            }
            size_t n = claim_batch(qi, std::min<size_t>(c.claim_batch, static_cast<size_t>(room)),
                                   room_bytes);
            lost |= unknown_[qi].has_value();
            got += n;
            room -= static_cast<int64_t>(n);
            room_bytes = max_bytes - s_.in_process_bytes.load();
        }
        rr_ = (rr_ + 1) % nq;
        if (got > 0 || lost) {
            continue;
        }
        if (loading_) {
            // BLMOVE would be refused at once too: a short pause instead of a busy loop.
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        // Idle: block on the queue instead of polling it, but not longer than the next
        // heartbeat/retry duty, nor so long that the read times out. What BLMOVE takes waits in
        // the landing list for the claim script of the next turn. With several queues a short
        // sleep keeps them all served.
        if (nq == 1) {
            const std::string& q = c.queues[0];
            double secs = std::max<double>(
                0.01, std::min({0.5, static_cast<double>(c.retry_poll_ms) / 1000.0,
                                static_cast<double>(c.redis_timeout_ms) / 2000.0}));
            std::string timeout = std::to_string(secs);
            redis_.command({"BLMOVE", keys::queue(q), keys::claiming(q, c.worker_id), "RIGHT",
                            "LEFT", timeout});
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
}

}  // namespace hookq
