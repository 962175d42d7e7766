#include "worker/claim.h"

#include <thread>

#include "worker/log.h"
#include "worker/park.h"

namespace hookq {

namespace claim_scripts {

const std::string_view kClaim = R"lua(
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
for i = 1, #items, 500 do
  redis.call('LPUSH', KEYS[2], unpack(items, i, math.min(i + 499, #items)))
end
return items
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
const std::string_view kRequeue = R"lua(
local n = 0
while true do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not v then break end
  n = n + 1
end
if ARGV[1] ~= '' then redis.call('SREM', KEYS[3], ARGV[1]) end
return n
)lua";

}  // namespace claim_scripts

bool ClaimStage::sync_clock() {
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

bool ClaimStage::heartbeat() {
    const auto& c = s_.cfg;
    if (!sync_clock()) {
        return false;
    }
    std::string ttl = std::to_string(c.heartbeat_ttl_ms);
    Reply r = redis_.command(
        {"SET", keys::worker_heartbeat(c.worker_id), std::to_string(s_.clock.now_ms()), "PX", ttl});
    if (is_error(r)) {
        return false;
    }
    for (const auto& q : c.queues) {
        if (is_error(redis_.command({"SADD", keys::workers(q), c.worker_id}))) {
            return false;
        }
    }
    return true;
}

bool ClaimStage::startup() {
    if (!heartbeat()) {
        return false;
    }
    for (const auto& q : s_.cfg.queues) {
        Reply r = redis_.eval(
            claim_scripts::kRequeue,
            {keys::inflight(q, s_.cfg.worker_id), keys::queue(q), keys::workers(q)}, {""});
        if (is_error(r)) {
            return false;
        }
        if (r->integer > 0) {
            log::info("returned leftover inflight to queue",
                      {{"queue", q}, {"count", r->integer}, {"worker", s_.cfg.worker_id}});
        }
    }
    return true;
}

void ClaimStage::deregister() {
    const auto& c = s_.cfg;
    for (const auto& q : c.queues) {
        Reply n = redis_.command({"LLEN", keys::inflight(q, c.worker_id)});
        if (is_error(n) || n->integer != 0) {
            return;  // something is left: keep the registration so the reaper can find it
        }
    }
    for (const auto& q : c.queues) {
        redis_.command({"SREM", keys::workers(q), c.worker_id});
    }
    redis_.command({"DEL", keys::worker_heartbeat(c.worker_id)});
}

void ClaimStage::move_due() {
    std::string now = std::to_string(s_.clock.now_ms());
    for (const auto& q : s_.cfg.queues) {
        Reply r =
            redis_.eval(claim_scripts::kMoveDue, {keys::retry(q), keys::queue(q)}, {now, "1000"});
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
            log::debug("due retries moved to queue", {{"queue", q}, {"count", r->integer}});
        }
        park::move_due(redis_, q, s_.clock.now_ms());  // in case a breaker's close was missed
    }
}

void ClaimStage::reap() {
    const auto& c = s_.cfg;
    for (const auto& q : c.queues) {
        Reply members = redis_.command({"SMEMBERS", keys::workers(q)});
        if (is_error(members) || members->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        for (size_t i = 0; i < members->elements; ++i) {
            std::string id(members->element[i]->str, members->element[i]->len);
            if (id == c.worker_id) {
                continue;
            }
            Reply alive = redis_.command({"EXISTS", keys::worker_heartbeat(id)});
            if (is_error(alive) || alive->integer != 0) {
                continue;
            }
            Reply r = redis_.eval(claim_scripts::kRequeue,
                                  {keys::inflight(q, id), keys::queue(q), keys::workers(q)}, {id});
            if (!is_error(r)) {
                log::warn("reaped inflight of dead worker",
                          {{"queue", q}, {"dead_worker", id}, {"count", r->integer}});
            }
        }
    }
}

size_t ClaimStage::claim_batch(size_t qi, size_t n) {
    const std::string& q = s_.cfg.queues[qi];
    Reply r =
        redis_.eval(claim_scripts::kClaim, {keys::queue(q), keys::inflight(q, s_.cfg.worker_id)},
                    {std::to_string(n)});
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY) {
        if (r) {
            log::error("claim script failed",
                       {{"queue", q}, {"error", std::string(r->str, r->len)}});
        }
        return 0;
    }
    uint64_t t = now_us();
    s_.in_process.fetch_add(static_cast<int64_t>(r->elements));
    for (size_t i = 0; i < r->elements; ++i) {
        auto job = std::make_shared<Job>();
        job->queue = qi;
        job->raw.assign(r->element[i]->str, r->element[i]->len);
        job->claimed_us = t;
        s_.to_route.push(std::move(job));
    }
    return r->elements;
}

void ClaimStage::run() {
    const auto& c = s_.cfg;
    uint64_t next_hb = 0, next_due = 0, next_reap = mono_ms() + c.reaper_interval_ms;
    const size_t nq = c.queues.size();
    while (!s_.stop_claiming.load()) {
        uint64_t now = mono_ms();
        s_.tick_claim.store(now);
        if (!redis_.ensure()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        if (now >= next_hb) {
            // A third of the TTL: two heartbeats can be lost before anyone reaps us.
            next_hb = heartbeat() ? now + c.heartbeat_ttl_ms / 3 : now + 200;
        }
        if (now >= next_due) {
            move_due();
            next_due = now + c.retry_poll_ms;
        }
        if (now >= next_reap) {
            reap();
            next_reap = now + c.reaper_interval_ms;
        }

        int64_t room = static_cast<int64_t>(c.max_inflight) - s_.in_process.load();
        if (room <= 0) {
            std::unique_lock lock(s_.cap_mu);
            s_.cap_cv.wait_for(lock, std::chrono::milliseconds(50), [&] {
                return s_.in_process.load() < static_cast<int64_t>(c.max_inflight) ||
                       s_.stop_claiming.load();
            });
            continue;
        }
        size_t got = 0;
        for (size_t k = 0; k < nq && room > 0; ++k) {
            size_t qi = (rr_ + k) % nq;
            size_t n = claim_batch(qi, std::min<size_t>(c.claim_batch, static_cast<size_t>(room)));
            got += n;
            room -= static_cast<int64_t>(n);
        }
        rr_ = (rr_ + 1) % nq;
        if (got > 0) {
            continue;
        }
        // Idle: block on the queue instead of polling it, but not longer than the next
        // heartbeat/retry duty. With several queues a short sleep keeps them all served.
        if (nq == 1) {
            const std::string& q = c.queues[0];
            double secs = std::max<double>(
                0.05, std::min<double>(0.5, static_cast<double>(c.retry_poll_ms) / 1000.0));
            std::string timeout = std::to_string(secs);
            Reply r = redis_.command({"BLMOVE", keys::queue(q), keys::inflight(q, c.worker_id),
                                      "RIGHT", "LEFT", timeout});
            if (r && r->type == REDIS_REPLY_STRING) {
                s_.in_process.fetch_add(1);
                auto job = std::make_shared<Job>();
                job->queue = 0;
                job->raw.assign(r->str, r->len);
                job->claimed_us = now_us();
                s_.to_route.push(std::move(job));
            }
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
}

}  // namespace hookq
