// The worker's Prometheus counters: what this process decided, counted where it decides it.
//
// Every slot is allocated once, at start, from the configuration (routes, queues, destinations),
// so the delivery loop only indexes an array and does a relaxed atomic add: no lookup, no lock, no
// allocation. Each route's counters sit on their own cache lines so that the dispatcher, the route
// stage and the scraper never contend on a line. The admin server renders them at /metrics with
// the gauges of its background snapshot (render_snapshot).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/prometheus.h"
#include "worker/config.h"
#include "worker/pipeline/decide.h"
#include "worker/pipeline/messages.h"

namespace hookq::metrics {

// Upper bounds in microseconds; a last +Inf bucket follows.
inline constexpr std::array<uint64_t, 12> kAttemptBucketsUs = {
    5000,   10000,   25000,   50000,   100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000};
// Received by the edge to delivered: retries and breakers stretch it to hours.
inline constexpr std::array<uint64_t, 16> kLatencyBucketsUs = {
    5000,    10000,   25000,    50000,    100000,   250000,    500000,     1000000,
    2500000, 5000000, 10000000, 30000000, 60000000, 300000000, 1800000000, 3600000000};
inline constexpr std::array<uint64_t, 11> kCommitBucketsUs = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 10000000};

template <const auto& Bounds>
struct Histogram {
    static constexpr size_t N = Bounds.size();
    std::array<std::atomic<uint64_t>, N + 1> buckets{};  // not cumulative; summed when rendered
    std::atomic<uint64_t> sum_us{0};

    void observe(uint64_t us) noexcept {
        size_t i = 0;
        while (i < N && us > Bounds[i]) {
            ++i;
        }
        buckets[i].fetch_add(1, std::memory_order_relaxed);
        sum_us.fetch_add(us, std::memory_order_relaxed);
    }
};

inline constexpr size_t kOutcomes = 7;  // OutcomeKind: delivered ... coalesced

// Why a route dead-lettered a webhook, as a bounded label (the stored reason is free text):
// the application refused it (a non-retryable status), its attempts ran out on transient
// failures, the fallback_url failed too, or no route took it.
enum class DeadReason : uint8_t { rejected, exhausted, fallback_failed, unrouted };
inline constexpr size_t kDeadReasons = 4;

// What a replay runner did with one selected webhook (hookq_replay_events_total).
enum class ReplayResult : uint8_t { enqueued, skipped, failed };
inline constexpr size_t kReplayResults = 3;

struct alignas(64) RouteCounters {
    std::atomic<uint64_t> attempts{0};
    std::array<std::atomic<uint64_t>, kOutcomes> outcomes{};
    std::array<std::atomic<uint64_t>, kDeadReasons> dead{};
    Histogram<kAttemptBucketsUs> attempt_duration;
    Histogram<kLatencyBucketsUs> end_to_end;
};

inline constexpr size_t kBreakerStates = 3;  // closed, half_open, open

struct alignas(64) DestinationCounters {
    std::array<std::atomic<uint64_t>, kBreakerStates * kBreakerStates> transitions{};  // [from][to]
};

struct alignas(64) QueueCounters {
    std::atomic<uint64_t> claim_batches{0};
    std::atomic<uint64_t> claimed{0};
};

class Registry {
  public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Sizes every slot from the configuration. Once, before any stage runs; a registry never
    // initialised counts nothing (hookqctl, unit tests of the stages).
    void init(const Config& cfg, std::string worker_id);
    // Where the worker keeps its in-process counts (Shared), read at scrape time.
    void attach(const std::atomic<int64_t>* in_process,
                const std::atomic<int64_t>* in_process_bytes);
    // How many finished claims wait for the recorder, read at scrape time (a channel's size under
    // its lock, once per scrape).
    void attach_recorder_backlog(std::function<size_t()> f) { recorder_backlog_ = std::move(f); }

    // One HTTP attempt of `route` (its Route::index) finished after `duration_us`.
    void attempt(size_t route, uint64_t duration_us) noexcept {
        if (route < n_routes_) {
            routes_[route].attempts.fetch_add(1, std::memory_order_relaxed);
            routes_[route].attempt_duration.observe(duration_us);
        }
    }
    // The route's final word for this claim. For delivered, received_us (the edge's stamp) and
    // at_us give the end-to-end latency.
    void outcome(size_t route, OutcomeKind k, uint64_t received_us = 0,
                 uint64_t at_us = 0) noexcept {
        if (route < routes_size_) {
            RouteCounters& r = routes_[route];
            r.outcomes[static_cast<size_t>(k)].fetch_add(1, std::memory_order_relaxed);
            if (k == OutcomeKind::delivered && route < n_routes_) {
                r.end_to_end.observe(at_us > received_us ? at_us - received_us : 0);
            }
        }
    }
    // Counted beside outcome(..., dead).
    void dead(size_t route, DeadReason why) noexcept {
        if (route < routes_size_) {
            routes_[route].dead[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
        }
    }
    // Dead without a configured route (no route matched, or the route is gone): route="-".
    void unrouted_dead() noexcept {
        outcome(n_routes_, OutcomeKind::dead);
        dead(n_routes_, DeadReason::unrouted);
    }
    // A breaker transition reported by Redis ("closed", "half_open", "open"). Rare: a short scan.
    void transition(std::string_view destination, std::string_view from,
                    std::string_view to) noexcept;
    // After a batch is acked: its jobs, of which those not decoded went to the poison list.
    void acked(const std::vector<JobPtr>& jobs) noexcept;
    // An ack whose element had already left inflight (reaped); returns the running total.
    uint64_t ack_removed_nothing() noexcept {
        return acks_removed_nothing_.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    uint64_t acks_removed_nothing() const noexcept {
        return acks_removed_nothing_.load(std::memory_order_relaxed);
    }
    // Webhooks committed to PostgreSQL whose ack Redis has not taken yet.
    void acks_pending(size_t n) noexcept { acks_pending_.store(n, std::memory_order_relaxed); }
    // A recorder batch committed after `us` (retries while PostgreSQL was away included).
    void recorded(uint64_t us, size_t jobs, size_t transitions) noexcept;
    void claimed(size_t queue, size_t n) noexcept {
        if (queue < queues_.size() && n > 0) {
            queue_counters_[queue].claim_batches.fetch_add(1, std::memory_order_relaxed);
            queue_counters_[queue].claimed.fetch_add(n, std::memory_order_relaxed);
        }
    }

    // One webhook of a replay job handled by this worker's runner (jobs/replay_runner.h).
    void replay_event(ReplayResult r) noexcept {
        replay_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
    }
    // Alerting (worker/alerts/): a few events a minute at most, so a map under a mutex.
    void alert_sent(std::string_view rule, std::string_view channel, std::string_view result);
    // The leader's count of pending and firing alerts by {rule, severity, state}, replacing the
    // last; empty on a worker that is not the leader.
    void alerts_active(std::map<std::array<std::string, 3>, uint64_t> counts);
    void alerts_leader(bool leader) noexcept { alerts_leader_.store(leader); }

    // The counters and the process's own series, in the text exposition format 0.0.4.
    std::string render() const;

  private:
    void render_process(std::string& out) const;
    void render_route_counters(std::string& out) const;
    void render_route_histograms(std::string& out) const;
    void render_breaker_transitions(std::string& out) const;
    void render_claims(std::string& out) const;
    void render_replays(std::string& out) const;
    void render_acks(std::string& out) const;
    void render_recorder(std::string& out) const;
    void render_in_process(std::string& out) const;
    void render_alerts(std::string& out) const;

    size_t n_routes_ = 0;
    size_t routes_size_ = 0;  // n_routes_ + 1 (the "-" slot) once initialised
    std::unique_ptr<RouteCounters[]> routes_;
    std::vector<std::string> route_names_;
    std::vector<std::string> destinations_;
    std::unique_ptr<DestinationCounters[]> dest_counters_;
    std::vector<std::string> queues_;
    std::unique_ptr<QueueCounters[]> queue_counters_;
    std::string worker_id_;
    double start_time_s_ = 0;

    std::atomic<uint64_t> acks_removed_nothing_{0};
    std::atomic<uint64_t> acks_pending_{0};
    std::atomic<uint64_t> replay_[kReplayResults]{};
    std::atomic<uint64_t> acks_{0}, poison_{0}, recorded_jobs_{0}, recorded_transitions_{0};
    Histogram<kCommitBucketsUs> commit_;
    const std::atomic<int64_t>* in_process_ = nullptr;
    const std::atomic<int64_t>* in_process_bytes_ = nullptr;
    std::function<size_t()> recorder_backlog_;

    mutable std::mutex alerts_mu_;
    std::map<std::array<std::string, 3>, uint64_t> alerts_sent_;    // {rule, channel, result}
    std::map<std::array<std::string, 3>, uint64_t> alerts_active_;  // {rule, severity, state}
    std::atomic<bool> alerts_leader_{false};
};

// The process's registry: what the stages count into and /metrics renders.
Registry& global();

using prometheus::escape_label;

// The gauges of one ops::status() snapshot (queues, breakers, dead letters, lag) and the
// snapshot's own health. `status` null: no snapshot has succeeded yet.
struct SnapshotInfo {
    bool ok = false;        // the last refresh succeeded
    double age_s = -1;      // since the last successful refresh; -1: none yet
    double duration_s = 0;  // of the last refresh
    bool redis_up = false;
    bool postgres_up = false;
};
std::string render_snapshot(const nlohmann::ordered_json& status, const SnapshotInfo& info);

// hookq_destination_health_{up,duration_seconds,consecutive_failures}{route} from
// ops::health_checks() (routes not probed yet have none), and the hookq_slo_status StateSet from
// ops::slo(). Either null: its series are left out.
std::string render_health_slo(const nlohmann::ordered_json& health_checks,
                              const nlohmann::ordered_json& slo);

// Seconds since the edge received the oldest element waiting in `raw` (the queue's tail, which is
// claimed next): 0 when the queue is empty, -1 when the element cannot be decoded. A due retry
// record counts from the webhook's first reception.
double oldest_age_s(std::string_view raw, uint64_t now_us);

}  // namespace hookq::metrics
