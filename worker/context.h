// State shared by the stages of one worker process.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <variant>

#include "shared/redis_keys.h"
#include "worker/channel.h"
#include "worker/clock.h"
#include "worker/config.h"
#include "worker/messages.h"
#include "worker/router.h"

namespace hookq {

inline uint64_t now_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}
inline uint64_t now_ms() {
    return now_us() / 1000;
}
inline uint64_t mono_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

struct BreakerReport {
    std::string destination;
    bool ok = true;
    bool probe = false;
};

using RouteMsg = std::variant<JobPtr, BreakerReport>;
using RecordMsg = std::variant<JobPtr, Transition>;

struct Shared {
    explicit Shared(const Config& c) : cfg(c), router(c) {}

    const Config& cfg;
    Router router;
    // Redis's clock, for every time that another worker compares: breaker and retry deadlines.
    RedisClock clock;

    // Claimed and not yet acked. Claiming stops at cfg.max_inflight: this is the one bound that
    // keeps memory flat however deep the queue is and however long PostgreSQL is away.
    std::atomic<int64_t> in_process{0};
    std::mutex cap_mu;
    std::condition_variable cap_cv;
    void release(int64_t n) {
        in_process.fetch_sub(n);
        cap_cv.notify_all();
    }

    std::atomic<bool> stop_claiming{false};

    // Liveness for the systemd watchdog: each stage stamps its loop.
    std::atomic<uint64_t> tick_claim{0}, tick_route{0}, tick_dispatch{0}, tick_record{0},
        tick_heartbeat{0};

    Channel<RouteMsg> to_route;
    Channel<RecordMsg> to_record;
};

}  // namespace hookq
