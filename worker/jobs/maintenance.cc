#include "worker/jobs/maintenance.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "worker/clock.h"
#include "worker/log.h"
#include "worker/ops/retention.h"

namespace hookq {

namespace {

constexpr uint64_t kPartitionEveryMs = 3600 * 1000;
// The first cleanup waits a little after start: a fleet restarted together does not line up at
// the advisory lock, and start-up is not slowed by a large first cleanup.
constexpr uint64_t kFirstCleanupMs = 60 * 1000;
constexpr uint64_t kRetryMs = 60 * 1000;

}  // namespace

void Maintenance::start() {
    thread_ = std::thread([this] { run(); });
}

void Maintenance::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

bool Maintenance::connected() {
    if (pg_.ok()) {
        return true;
    }
    if (!pg_.connect()) {
        if (!down_logged_) {
            log::warn("maintenance: cannot connect to postgresql; retrying",
                      {{"error", pg_.error()}});
            down_logged_ = true;
        }
        return false;
    }
    down_logged_ = false;
    return true;
}

void Maintenance::hourly() {
    if (!pg_.exec("SELECT hookq_ensure_partitions(2)")) {
        log::warn("cannot ensure partitions", {{"error", pg_.error()}});
    }
    // Statistics rollups: minute rows past 48 h and hour rows past 35 days deleted (a few
    // thousand rows an hour at most, so a DELETE is fine), settled hours merged across workers.
    if (!pg_.exec("SELECT hookq_stats_retention(35)")) {
        log::warn("cannot maintain the statistics rollups", {{"error", pg_.error()}});
    }
}

void Maintenance::retention() {
    ops::Actor actor{"worker:" + cfg_.worker_id, "system", "", "", "worker"};
    try {
        auto j = ops::retention_apply(pg_, cfg_.retention, actor);
        if (j["rows"].get<long long>() > 0 || !j["partitions"].empty()) {
            log::info("retention applied", {{"partitions", j["partitions"].size()},
                                            {"rows", j["rows"]},
                                            {"bytes", j["bytes"]}});
        }
    } catch (const ops::Error& e) {
        // Another worker's cleanup, or a lock not granted in time: the next run tries again.
        log::info("retention skipped", {{"reason", e.what()}});
    } catch (const std::exception& e) {
        log::warn("retention failed", {{"error", e.what()}});
    }
}

void Maintenance::run() {
    uint64_t next_partitions = 0;
    uint64_t next_cleanup = cfg_.retention.interval_ms
                                ? mono_ms() + std::min(kFirstCleanupMs, cfg_.retention.interval_ms)
                                : UINT64_MAX;
    uint64_t not_before = 0;  // PostgreSQL away: a pause before the next try
    std::unique_lock lock(mu_);
    while (!stopping_) {
        uint64_t now = mono_ms();
        uint64_t wake = std::max(not_before, std::min(next_partitions, next_cleanup));
        if (now < wake) {
            cv_.wait_for(lock, std::chrono::milliseconds(std::min<uint64_t>(wake - now, 1000)));
            continue;
        }
        lock.unlock();
        if (!connected()) {
            not_before = now + 5000;
        } else if (now >= next_partitions) {
            hourly();
            next_partitions = now + (pg_.ok() ? kPartitionEveryMs : kRetryMs);
        } else {
            retention();
            next_cleanup = now + (pg_.ok() ? cfg_.retention.interval_ms : kRetryMs);
        }
        lock.lock();
    }
}

}  // namespace hookq
