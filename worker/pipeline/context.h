// State shared by the stages of one worker process.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

#include "shared/redis_keys.h"
#include "worker/pipeline/channel.h"
#include "worker/clock.h"
#include "worker/pipeline/clock.h"
#include "worker/config.h"
#include "worker/pipeline/messages.h"
#include "worker/pipeline/router.h"

namespace hookq {

struct BreakerReport {
    std::string destination;
    bool ok = true;
    uint64_t probe = 0;  // Delivery::probe: non-zero when this was the half-open probe
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

    // Bytes of the claimed elements not yet acked, bounded by cfg.max_inflight_bytes at the claim
    // stage (plus at most one element, so that one larger than the budget still gets through).
    // Counted by the Job itself: released when its last reference goes, which is after its ack.
    std::atomic<int64_t> in_process_bytes{0};
    std::atomic<int64_t> peak_in_process_bytes{0};
    JobPtr new_job(size_t queue, std::string_view raw, uint64_t claimed_us) {
        auto n = static_cast<int64_t>(raw.size());
        int64_t now = in_process_bytes.fetch_add(n) + n;
        int64_t peak = peak_in_process_bytes.load();
        while (now > peak && !peak_in_process_bytes.compare_exchange_weak(peak, now)) {
        }
        JobPtr job(new Job, [this, n](Job* j) {
            delete j;
            in_process_bytes.fetch_sub(n);
            cap_cv.notify_all();
        });
        job->queue = queue;
        job->raw.assign(raw);
        job->claimed_us = claimed_us;
        return job;
    }

    std::atomic<bool> stop_claiming{false};

    // Liveness for the systemd watchdog: each stage stamps its loop.
    std::atomic<uint64_t> tick_claim{0}, tick_route{0}, tick_dispatch{0}, tick_record{0},
        tick_heartbeat{0};

    Channel<RouteMsg> to_route;
    Channel<RecordMsg> to_record;
};

}  // namespace hookq
