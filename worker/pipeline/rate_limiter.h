// Rate limits shared by every worker: a route's tokens come from one bucket in Redis, handed out
// in small grants on this class's own thread and connection, so "100/min" holds however many
// workers run and the delivery loop never waits on Redis.
//
// 1. The dispatcher queues a rate-limited delivery and says how many wait (want()).
// 2. This thread asks Redis for up to a tenth of a second's worth of tokens (the bucket script
//    refills by Redis's clock and grants what it holds), and wakes the dispatcher.
// 3. The dispatcher spends them (take()). A grant unspent after 1 s lapses, so a worker cannot
//    save tokens up and spend them on top of the others' later: over any window, what all
//    workers send stays within rate x (window + 1 s) + burst.
// 4. Redis unreachable: no grants, the deliveries wait (they are in inflight, nothing is lost).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "worker/config.h"
#include "worker/store/redis_conn.h"

namespace hookq {

class RateLimiter {
  public:
    RateLimiter(const Config& cfg, std::function<void()> wake);
    ~RateLimiter() { stop(); }
    RateLimiter(const RateLimiter&) = delete;
    RateLimiter& operator=(const RateLimiter&) = delete;

    void start();  // no thread when no route has a rate limit
    void stop();

    // Dispatcher thread. `waiting`: deliveries of the route queued for a token.
    void want(size_t route, size_t waiting);
    bool take(size_t route, uint64_t now_ms);

  private:
    struct Slot {
        size_t waiting = 0;
        uint32_t tokens = 0;
        uint64_t lapse_ms = 0;  // the grant's end
        uint64_t retry_ms = 0;  // the bucket is empty until then
    };
    void run();
    void ask(const Route& r, size_t ask, uint64_t now);

    const Config& cfg_;
    std::function<void()> wake_;
    RedisConn redis_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::vector<Slot> slots_;
    std::thread thread_;
};

}  // namespace hookq
