// Time as Redis sees it. Breaker deadlines, probe leases and retry due times are written by one
// worker and compared by another, so they must come from one clock: Redis's `TIME`, not each
// host's wall clock (a worker whose clock runs a minute fast would half-open every breaker early
// and pull every retry forward). The claim stage samples TIME with each heartbeat; between samples
// the offset is applied to the local monotonic clock, so a wall-clock step on this host changes
// nothing either.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace hookq {

class RedisClock {
  public:
    RedisClock() {
        // Until the first sample: this host's wall clock, which is what we would have used anyway.
        int64_t wall = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
        offset_us_.store(wall - mono_us());
    }

    uint64_t now_us() const { return static_cast<uint64_t>(mono_us() + offset_us_.load()); }
    uint64_t now_ms() const { return now_us() / 1000; }

    // `redis_us` is TIME's answer to a request sent at local `sent_mono_us` and answered at
    // `recv_mono_us`; Redis read its clock somewhere in between, so the midpoint is the estimate.
    void sync(uint64_t redis_us, int64_t sent_mono_us, int64_t recv_mono_us) {
        offset_us_.store(static_cast<int64_t>(redis_us) - (sent_mono_us + recv_mono_us) / 2);
        synced_.store(true);
    }
    bool synced() const { return synced_.load(); }

    static int64_t mono_us() {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

  private:
    std::atomic<int64_t> offset_us_{0};
    std::atomic<bool> synced_{false};
};

}  // namespace hookq
