#include "worker/pipeline/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "worker/log.h"
#include "worker/pipeline/context.h"

namespace hookq {
namespace {

// KEYS[1] the route's bucket; ARGV: tokens per millisecond, burst, tokens wanted.
// Returns {granted, ms until the next token when fewer than wanted were granted}.
constexpr std::string_view kTakeTokens = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
local n = math.min(want, math.floor(tokens))
tokens = tokens - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 60000)
local wait = 0
if n < want then wait = math.ceil((1 - tokens) / rate) end
return {n, wait}
)lua";

constexpr uint64_t kGrantLifeMs = 1000;
constexpr uint64_t kRetryOnErrorMs = 500;

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace

RateLimiter::RateLimiter(const Config& cfg, std::function<void()> wake)
    : cfg_(cfg), wake_(std::move(wake)), redis_(cfg, "rate limits"), slots_(cfg.routes.size()) {}

void RateLimiter::start() {
    bool any = std::any_of(cfg_.routes.begin(), cfg_.routes.end(),
                           [](const Route& r) { return r.rate_limit.has_value(); });
    if (any && !thread_.joinable()) {
        thread_ = std::thread([this] { run(); });
    }
}

void RateLimiter::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void RateLimiter::want(size_t route, size_t waiting) {
    bool short_of_tokens;
    {
        std::lock_guard lock(mu_);
        Slot& s = slots_[route];
        short_of_tokens = waiting > s.tokens;
        s.waiting = waiting;
    }
    if (short_of_tokens) {
        cv_.notify_one();
    }
}

bool RateLimiter::take(size_t route, uint64_t now_ms) {
    std::lock_guard lock(mu_);
    Slot& s = slots_[route];
    if (s.tokens > 0 && now_ms >= s.lapse_ms) {
        s.tokens = 0;
    }
    if (s.tokens == 0) {
        return false;
    }
    --s.tokens;
    return true;
}

// Called without mu_ held: the round trip must not hold up take().
void RateLimiter::ask(const Route& r, size_t n, uint64_t now) {
    const double per_ms = r.rate_limit->per_second / 1000.0;
    std::string key = "hookq:ratelimit:{" + r.name + "}";
    std::string rate = number(per_ms), burst = number(r.rate_limit->burst),
                want = std::to_string(n);
    Reply reply = redis_.ensure() ? redis_.eval(kTakeTokens, {key}, {rate, burst, want}) : nullptr;
    uint64_t granted = 0, wait = kRetryOnErrorMs;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_INTEGER) {
        granted = static_cast<uint64_t>(std::max<long long>(0, reply->element[0]->integer));
        wait = static_cast<uint64_t>(std::max<long long>(1, reply->element[1]->integer));
    } else {
        log::warn("rate limit: no tokens from Redis; deliveries of the route wait",
                  {{"route", r.name},
                   {"error", reply ? std::string(reply->str ? reply->str : "unexpected reply")
                                   : redis_.last_error()}});
    }
    {
        std::lock_guard lock(mu_);
        Slot& s = slots_[r.index];
        if (granted > 0) {
            s.tokens += static_cast<uint32_t>(granted);
            s.lapse_ms = now + kGrantLifeMs;
        }
        s.retry_ms = granted < n ? now + wait : 0;
    }
    if (granted > 0) {
        wake_();
    }
}

void RateLimiter::run() {
    std::vector<std::pair<const Route*, size_t>> asks;
    std::unique_lock lock(mu_);
    while (!stopping_) {
        uint64_t now = mono_ms();
        uint64_t next = now + 1000;
        asks.clear();
        for (const Route& r : cfg_.routes) {
            Slot& s = slots_[r.index];
            if (!r.rate_limit || s.waiting <= s.tokens) {
                continue;
            }
            if (s.retry_ms > now) {
                next = std::min(next, s.retry_ms);
                continue;
            }
            // A tenth of a second's worth at most: the grants stay small against the limit, so
            // the workers share it evenly and little lapses unspent.
            size_t chunk =
                static_cast<size_t>(std::max(1.0, std::ceil(r.rate_limit->per_second / 10)));
            asks.emplace_back(&r, std::min(s.waiting - s.tokens, chunk));
        }
        if (asks.empty()) {
            cv_.wait_for(lock, std::chrono::milliseconds(next - now));
            continue;
        }
        lock.unlock();
        for (auto [r, n] : asks) {
            ask(*r, n, now);
        }
        lock.lock();
    }
}

}  // namespace hookq
