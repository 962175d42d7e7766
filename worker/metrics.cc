#include "worker/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "shared/envelope.h"

namespace hookq::metrics {

namespace {

constexpr std::array<std::string_view, kDeadReasons> kDeadReasonNames = {
    "rejected", "exhausted", "fallback_failed", "unrouted"};
constexpr std::array<std::string_view, kOutcomes> kOutcomeNames = {
    "delivered", "retry", "dead", "parked", "split", "waiting", "coalesced"};
constexpr std::array<std::string_view, kBreakerStates> kStateNames = {"closed", "half_open",
                                                                      "open"};

size_t state_index(std::string_view s) {
    for (size_t i = 0; i < kStateNames.size(); ++i) {
        if (kStateNames[i] == s) {
            return i;
        }
    }
    return kStateNames.size();
}

std::string seconds(uint64_t us) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(us) / 1e6);
    return buf;
}

// "0.005", "30": as a bucket is usually written.
std::string bound(uint64_t us) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(us) / 1e6);
    return buf;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

template <const auto& Bounds>
void histogram(std::string& out, std::string_view name, const std::string& labels,
               const Histogram<Bounds>& h) {
    uint64_t cumulative = 0;
    std::string sep = labels.empty() ? "" : ",";
    for (size_t b = 0; b <= Bounds.size(); ++b) {
        cumulative += h.buckets[b].load(std::memory_order_relaxed);
        out += name;
        out += "_bucket{" + labels + sep + "le=\"";
        out += b < Bounds.size() ? bound(Bounds[b]) : "+Inf";
        out += "\"} " + std::to_string(cumulative) + "\n";
    }
    std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += std::string(name) + "_sum" + braces + " " +
           seconds(h.sum_us.load(std::memory_order_relaxed)) + "\n";
    // The buckets' total rather than a separate counter: _count always equals the +Inf bucket,
    // even when a scrape lands between two increments of one observation.
    out += std::string(name) + "_count" + braces + " " + std::to_string(cumulative) + "\n";
}

std::string label(std::string_view name, std::string_view value) {
    return std::string(name) + "=\"" + escape_label(value) + "\"";
}

void sample(std::string& out, std::string_view name, const std::string& labels,
            const std::string& value) {
    out += name;
    if (!labels.empty()) {
        out += '{';
        out += labels;
        out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
}

std::string value_of(const std::atomic<uint64_t>& a) {
    return std::to_string(a.load(std::memory_order_relaxed));
}

}  // namespace

Registry& global() {
    static Registry r;
    return r;
}

void Registry::init(const Config& cfg, std::string worker_id) {
    n_routes_ = cfg.routes.size();
    routes_ = std::make_unique<RouteCounters[]>(n_routes_ + 1);
    route_names_.clear();
    destinations_.clear();
    for (const Route& r : cfg.routes) {
        route_names_.push_back(r.name);
        // Breakers are kept for primary destinations only (the fallback gets one try).
        if (std::find(destinations_.begin(), destinations_.end(), r.destination) ==
            destinations_.end()) {
            destinations_.push_back(r.destination);
        }
    }
    route_names_.push_back("-");
    dest_counters_ = std::make_unique<DestinationCounters[]>(destinations_.size());
    queues_ = cfg.queues;
    queue_counters_ = std::make_unique<QueueCounters[]>(queues_.size());
    worker_id_ = std::move(worker_id);
    start_time_s_ =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    // Last: the stages test routes_size_ before touching a slot.
    routes_size_ = n_routes_ + 1;
}

void Registry::attach(const std::atomic<int64_t>* in_process,
                      const std::atomic<int64_t>* in_process_bytes) {
    in_process_ = in_process;
    in_process_bytes_ = in_process_bytes;
}

void Registry::transition(std::string_view destination, std::string_view from,
                          std::string_view to) noexcept {
    size_t f = state_index(from), t = state_index(to);
    if (f >= kBreakerStates || t >= kBreakerStates || !dest_counters_) {
        return;
    }
    for (size_t i = 0; i < destinations_.size(); ++i) {
        if (destinations_[i] == destination) {
            dest_counters_[i].transitions[f * kBreakerStates + t].fetch_add(
                1, std::memory_order_relaxed);
            return;
        }
    }
}

void Registry::acked(const std::vector<JobPtr>& jobs) noexcept {
    uint64_t poison = 0;
    for (const JobPtr& j : jobs) {
        poison += j->decoded ? 0 : 1;
    }
    acks_.fetch_add(jobs.size(), std::memory_order_relaxed);
    poison_.fetch_add(poison, std::memory_order_relaxed);
}

void Registry::recorded(uint64_t us, size_t jobs, size_t transitions) noexcept {
    commit_.observe(us);
    recorded_jobs_.fetch_add(jobs, std::memory_order_relaxed);
    recorded_transitions_.fetch_add(transitions, std::memory_order_relaxed);
}

std::string Registry::render() const {
    std::string out;
    out.reserve(4096 + routes_size_ * 4096);
    render_process(out);
    render_route_counters(out);
    render_route_histograms(out);
    render_breaker_transitions(out);
    render_claims(out);
    render_replays(out);
    render_acks(out);
    render_recorder(out);
    render_in_process(out);
    render_alerts(out);
    return out;
}

void Registry::render_process(std::string& out) const {
    header(out, "hookq_worker_info", "gauge", "This worker: its version and id.");
    sample(out, "hookq_worker_info",
           label("version", HOOKQ_VERSION) + "," + label("worker_id", worker_id_), "1");
    header(out, "hookq_worker_start_time_seconds", "gauge",
           "When this worker started, in seconds since the Unix epoch.");
    sample(out, "hookq_worker_start_time_seconds", "", number(start_time_s_));
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        std::fclose(f);
    }
    header(out, "hookq_worker_resident_memory_bytes", "gauge",
           "Resident memory of the worker process.");
    sample(out, "hookq_worker_resident_memory_bytes", "",
           std::to_string(resident * static_cast<long>(sysconf(_SC_PAGESIZE))));
}

void Registry::render_route_counters(std::string& out) const {
    header(out, "hookq_worker_attempts_total", "counter",
           "HTTP delivery attempts made by this worker, by route (fallback attempts included).");
    for (size_t r = 0; r < n_routes_; ++r) {
        sample(out, "hookq_worker_attempts_total", label("route", route_names_[r]),
               value_of(routes_[r].attempts));
    }
    header(out, "hookq_worker_deliveries_total", "counter",
           "Each route's final word for a claimed webhook, by outcome: delivered, retry "
           "(scheduled), dead (dead-lettered), parked (held by a breaker, a pause or an "
           "ordering check), split (a batch delivered as its parts), waiting (behind an earlier "
           "update of its entity) or coalesced (merged into a later update's delivery); route "
           "\"-\": no route.");
    for (size_t r = 0; r < routes_size_; ++r) {
        for (size_t o = 0; o < kOutcomes; ++o) {
            sample(out, "hookq_worker_deliveries_total",
                   label("route", route_names_[r]) + "," + label("outcome", kOutcomeNames[o]),
                   value_of(routes_[r].outcomes[o]));
        }
    }
    header(out, "hookq_worker_dead_letters_total", "counter",
           "Webhooks dead-lettered, by route and reason: rejected (a non-retryable status), "
           "exhausted (attempts ran out), fallback_failed, unrouted (route \"-\").");
    for (size_t r = 0; r < routes_size_; ++r) {
        for (size_t w = 0; w < kDeadReasons; ++w) {
            if (r == n_routes_ && w != static_cast<size_t>(DeadReason::unrouted)) {
                continue;
            }
            sample(out, "hookq_worker_dead_letters_total",
                   label("route", route_names_[r]) + "," + label("reason", kDeadReasonNames[w]),
                   value_of(routes_[r].dead[w]));
        }
    }
}

void Registry::render_route_histograms(std::string& out) const {
    header(out, "hookq_worker_attempt_duration_seconds", "histogram",
           "Duration of one HTTP delivery attempt, by route.");
    for (size_t r = 0; r < n_routes_; ++r) {
        histogram(out, "hookq_worker_attempt_duration_seconds", label("route", route_names_[r]),
                  routes_[r].attempt_duration);
    }
    header(out, "hookq_worker_end_to_end_seconds", "histogram",
           "Received by the edge to delivered (retries included), by route.");
    for (size_t r = 0; r < n_routes_; ++r) {
        histogram(out, "hookq_worker_end_to_end_seconds", label("route", route_names_[r]),
                  routes_[r].end_to_end);
    }
}

void Registry::render_breaker_transitions(std::string& out) const {
    header(out, "hookq_worker_breaker_transitions_total", "counter",
           "Breaker transitions this worker saw happen, by destination.");
    for (size_t d = 0; d < destinations_.size(); ++d) {
        for (size_t f = 0; f < kBreakerStates; ++f) {
            for (size_t t = 0; t < kBreakerStates; ++t) {
                if (f == t) {
                    continue;
                }
                sample(out, "hookq_worker_breaker_transitions_total",
                       label("destination", destinations_[d]) + "," +
                           label("from", kStateNames[f]) + "," + label("to", kStateNames[t]),
                       value_of(dest_counters_[d].transitions[f * kBreakerStates + t]));
            }
        }
    }
}

void Registry::render_claims(std::string& out) const {
    header(out, "hookq_worker_claim_batches_total", "counter",
           "Claims that took at least one element from the queue, by queue.");
    for (size_t q = 0; q < queues_.size(); ++q) {
        sample(out, "hookq_worker_claim_batches_total", label("queue", queues_[q]),
               value_of(queue_counters_[q].claim_batches));
    }
    header(out, "hookq_worker_claimed_total", "counter",
           "Elements claimed from the queue (webhooks and due retries), by queue.");
    for (size_t q = 0; q < queues_.size(); ++q) {
        sample(out, "hookq_worker_claimed_total", label("queue", queues_[q]),
               value_of(queue_counters_[q].claimed));
    }
}

void Registry::render_replays(std::string& out) const {
    static constexpr const char* kReplayNames[kReplayResults] = {"enqueued", "skipped", "failed"};
    header(out, "hookq_replay_events_total", "counter",
           "Webhooks of replay jobs this worker's runner handled, by result: enqueued (sent to "
           "at least one route), skipped (nothing to send: its routes had succeeded), failed.");
    for (size_t i = 0; i < kReplayResults; ++i) {
        sample(out, "hookq_replay_events_total", label("result", kReplayNames[i]),
               value_of(replay_[i]));
    }
}

void Registry::render_acks(std::string& out) const {
    header(out, "hookq_worker_acks_total", "counter",
           "Claimed elements acked (removed from inflight) after their rows were committed.");
    sample(out, "hookq_worker_acks_total", "", value_of(acks_));
    header(out, "hookq_worker_acks_removed_nothing_total", "counter",
           "Acks whose element had already left inflight (reaped while being delivered): that "
           "webhook may be delivered again.");
    sample(out, "hookq_worker_acks_removed_nothing_total", "", value_of(acks_removed_nothing_));
    header(out, "hookq_worker_acks_pending", "gauge",
           "Webhooks recorded in PostgreSQL whose ack Redis has not taken yet (Redis, or their "
           "queue's master, unreachable): they stay in inflight and are acked once it is back.");
    sample(out, "hookq_worker_acks_pending", "", value_of(acks_pending_));
    header(out, "hookq_worker_poison_total", "counter",
           "Elements moved to a poison list (undecodable, or refused by PostgreSQL).");
    sample(out, "hookq_worker_poison_total", "", value_of(poison_));
}

void Registry::render_recorder(std::string& out) const {
    header(out, "hookq_worker_recorded_jobs_total", "counter",
           "Claimed elements whose rows the recorder committed.");
    sample(out, "hookq_worker_recorded_jobs_total", "", value_of(recorded_jobs_));
    header(out, "hookq_worker_recorded_transitions_total", "counter",
           "Breaker transitions the recorder committed.");
    sample(out, "hookq_worker_recorded_transitions_total", "", value_of(recorded_transitions_));
    header(out, "hookq_worker_record_batch_seconds", "histogram",
           "Time to commit one recorder batch to PostgreSQL, retries while it is away included.");
    histogram(out, "hookq_worker_record_batch_seconds", "", commit_);
    header(out, "hookq_worker_recorder_backlog", "gauge",
           "Finished claims waiting for the recorder to write them to PostgreSQL.");
    sample(out, "hookq_worker_recorder_backlog", "",
           std::to_string(recorder_backlog_ ? recorder_backlog_() : 0));
}

void Registry::render_in_process(std::string& out) const {
    header(out, "hookq_worker_in_process", "gauge",
           "Elements claimed by this worker and not yet acked.");
    sample(out, "hookq_worker_in_process", "",
           std::to_string(in_process_ ? in_process_->load(std::memory_order_relaxed) : 0));
    header(out, "hookq_worker_in_process_bytes", "gauge",
           "Bytes of the elements claimed by this worker and not yet acked.");
    sample(
        out, "hookq_worker_in_process_bytes", "",
        std::to_string(in_process_bytes_ ? in_process_bytes_->load(std::memory_order_relaxed) : 0));
}

void Registry::render_alerts(std::string& out) const {
    {
        std::lock_guard lock(alerts_mu_);
        header(out, "hookq_alerts_sent_total", "counter",
               "Alert notifications by rule, channel and result (sent, error, rate_limited, "
               "silenced).");
        for (const auto& [k, n] : alerts_sent_) {
            sample(out, "hookq_alerts_sent_total",
                   "rule=\"" + escape_label(k[0]) + "\",channel=\"" + escape_label(k[1]) +
                       "\",result=\"" + escape_label(k[2]) + "\"",
                   std::to_string(n));
        }
        header(out, "hookq_alerts_active", "gauge",
               "Pending and firing alerts, on the worker that evaluates them (the leader).");
        for (const auto& [k, n] : alerts_active_) {
            sample(out, "hookq_alerts_active",
                   "rule=\"" + escape_label(k[0]) + "\",severity=\"" + escape_label(k[1]) +
                       "\",state=\"" + escape_label(k[2]) + "\"",
                   std::to_string(n));
        }
    }
    header(out, "hookq_alerts_leader", "gauge",
           "1 on the worker holding the alerting lease (it evaluates and notifies).");
    sample(out, "hookq_alerts_leader", "", alerts_leader_.load() ? "1" : "0");
}

void Registry::alert_sent(std::string_view rule, std::string_view channel,
                          std::string_view result) {
    std::lock_guard lock(alerts_mu_);
    ++alerts_sent_[{std::string(rule), std::string(channel), std::string(result)}];
}

void Registry::alerts_active(std::map<std::array<std::string, 3>, uint64_t> counts) {
    std::lock_guard lock(alerts_mu_);
    alerts_active_ = std::move(counts);
}

double oldest_age_s(std::string_view raw, uint64_t now_us) {
    if (raw.empty()) {
        return 0;
    }
    std::optional<RetryRecord> rec;
    if (raw.starts_with("HQR1")) {
        rec = RetryRecord::decode(raw);
        if (!rec) {
            return -1;
        }
        raw = rec->envelope;
    }
    EnvelopeView env;
    if (decode_envelope(raw, env) != DecodeError::ok) {
        return -1;
    }
    return now_us > env.received_at_us ? static_cast<double>(now_us - env.received_at_us) / 1e6 : 0;
}

namespace {

using Json = nlohmann::ordered_json;

void snapshot_health(std::string& out, const SnapshotInfo& info) {
    header(out, "hookq_snapshot_success", "gauge",
           "Whether the last refresh of the queue and database snapshot succeeded.");
    sample(out, "hookq_snapshot_success", "", info.ok ? "1" : "0");
    header(out, "hookq_snapshot_age_seconds", "gauge",
           "Seconds since the gauges below were last refreshed (-1: never).");
    sample(out, "hookq_snapshot_age_seconds", "", number(info.age_s));
    header(out, "hookq_snapshot_duration_seconds", "gauge", "Duration of the last refresh.");
    sample(out, "hookq_snapshot_duration_seconds", "", number(info.duration_s));
    header(out, "hookq_redis_up", "gauge", "Whether Redis answered the last refresh's PING.");
    sample(out, "hookq_redis_up", "", info.redis_up ? "1" : "0");
    header(out, "hookq_postgres_up", "gauge", "Whether PostgreSQL answered at the last refresh.");
    sample(out, "hookq_postgres_up", "", info.postgres_up ? "1" : "0");
}

// Each node's memory: from the status's "redis" (the nodes that answered its refresh).
void redis_memory(std::string& out, const Json& nodes) {
    header(out, "hookq_redis_memory_used_bytes", "gauge",
           "Memory Redis has allocated (INFO used_memory), per node (every master on a cluster).");
    for (const auto& n : nodes) {
        if (!n.value("reachable", true)) {
            continue;  // a lost master: nothing to report (its queues' hookq_queue_up is 0)
        }
        sample(out, "hookq_redis_memory_used_bytes",
               "node=\"" + escape_label(n.value("node", "")) + "\"",
               number(n.value("used_memory_bytes", 0.0)));
    }
    header(out, "hookq_redis_memory_max_bytes", "gauge",
           "Redis's maxmemory, per node (0: no limit); at it the edge answers 503.");
    for (const auto& n : nodes) {
        if (!n.value("reachable", true)) {
            continue;
        }
        sample(out, "hookq_redis_memory_max_bytes",
               "node=\"" + escape_label(n.value("node", "")) + "\"",
               number(n.value("maxmemory_bytes", 0.0)));
    }
}

struct QueueGauge {
    const char* field;
    const char* name;
    const char* help;
};

void queue_counts(std::string& out, const Json& queues) {
    static constexpr QueueGauge kQueueGauges[] = {
        {"depth", "hookq_queue_depth", "Elements waiting in the queue."},
        {"inflight", "hookq_queue_inflight", "Elements claimed by workers and not yet acked."},
        {"retry", "hookq_queue_retry", "Retry records scheduled (due or not)."},
        {"retry_due", "hookq_queue_retry_due", "Retry records already due."},
        {"parked", "hookq_queue_parked", "Deliveries held back by open or half-open breakers."},
        {"poison", "hookq_queue_poison", "Elements in the poison list."},
        {"workers_live", "hookq_queue_workers_live", "Workers with a live heartbeat."},
    };
    header(out, "hookq_queue_up", "gauge",
           "1 when the queue's Redis master answered the last snapshot; while 0 its other gauges "
           "keep their last values.");
    for (const auto& q : queues) {
        sample(out, "hookq_queue_up", label("queue", q.value("queue", "")),
               q.value("reachable", true) ? "1" : "0");
    }
    for (const auto& g : kQueueGauges) {
        header(out, g.name, "gauge", g.help);
        for (const auto& q : queues) {
            if (q.contains(g.field)) {
                sample(out, g.name, label("queue", q.value("queue", "")),
                       std::to_string(q.value(g.field, 0LL)));
            }
        }
    }
}

// How old the oldest element of each list is, by the edge's receive stamp: a queue that
// is not drained, a claim that never finishes, poison nobody looked at, retries overdue.
void queue_ages(std::string& out, const Json& queues) {
    static constexpr QueueGauge kAgeGauges[] = {
        {"oldest_age_s", "hookq_queue_oldest_age_seconds",
         "Age of the element claimed next from the queue (0: empty; -1: undecodable)."},
        {"inflight_oldest_age_s", "hookq_queue_inflight_oldest_age_seconds",
         "Age of the oldest element claimed and not yet acked (0: none)."},
        {"poison_oldest_age_s", "hookq_queue_poison_oldest_age_seconds",
         "Age of the oldest element in the poison list (0: none; -1: undecodable)."},
        {"retry_overdue_s", "hookq_queue_retry_overdue_seconds",
         "How long the most overdue retry record has been due (0: none due)."},
    };
    for (const auto& g : kAgeGauges) {
        header(out, g.name, "gauge", g.help);
        for (const auto& q : queues) {
            if (q.contains(g.field)) {
                sample(out, g.name, label("queue", q.value("queue", "")),
                       number(q.value(g.field, 0.0)));
            }
        }
    }
}

// One series per state, 1 for the current one: `hookq_breaker_state{state="open"} == 1`
// selects open breakers, and a state change is visible as a series going 0 -> 1.
void breaker_states(std::string& out, const Json& breakers) {
    header(out, "hookq_breaker_state", "gauge",
           "Breaker state by destination: 1 for the current state, 0 for the others.");
    for (const auto& b : breakers) {
        std::string st = b.value("state", "closed");
        std::string dest = label("destination", b.value("destination", ""));
        for (std::string_view name : {"closed", "half_open", "open"}) {
            sample(out, "hookq_breaker_state", dest + "," + label("state", name),
                   st == name ? "1" : "0");
        }
    }
}

// Operator pauses (hookqctl pause / POST .../pause): 1 while the route (itself or by its
// source) or the source is paused.
void pauses(std::string& out, const Json& status) {
    header(out, "hookq_route_paused", "gauge", "1 while deliveries of the route are paused.");
    const auto routes_paused = status.value("routes_paused", Json::object());
    for (const auto& [name, v] : routes_paused.items()) {
        sample(out, "hookq_route_paused", label("route", name), v.get<bool>() ? "1" : "0");
    }
    header(out, "hookq_source_paused", "gauge", "1 while deliveries of the source are paused.");
    const auto sources_paused = status.value("sources_paused", Json::object());
    for (const auto& [name, v] : sources_paused.items()) {
        sample(out, "hookq_source_paused", label("source", name), v.get<bool>() ? "1" : "0");
    }
}

void dead_letters(std::string& out, const Json& db) {
    header(out, "hookq_dead_letters", "gauge", "Dead letters not requeued, by source.");
    const auto by_source = db.value("dead_letters_by_source", Json::object());
    for (const auto& [src, n] : by_source.items()) {
        sample(out, "hookq_dead_letters", label("source", src),
               std::to_string(n.is_number() ? n.get<long long>() : 0));
    }
    header(out, "hookq_dead_letters_oldest_age_seconds", "gauge",
           "Age of the oldest dead letter not requeued, by source.");
    const auto oldest = db.value("dead_letters_oldest_s_by_source", Json::object());
    for (const auto& [src, age] : oldest.items()) {
        sample(out, "hookq_dead_letters_oldest_age_seconds", label("source", src),
               number(age.is_number() ? age.get<double>() : 0.0));
    }
    header(out, "hookq_dead_letters_pending", "gauge", "Dead letters not requeued, all sources.");
    sample(out, "hookq_dead_letters_pending", "", std::to_string(db.value("dead_letters", 0LL)));
}

void lag(std::string& out, const Json& db) {
    header(out, "hookq_lag_seconds", "gauge",
           "Age of the oldest webhook still queued, retrying or parked.");
    sample(out, "hookq_lag_seconds", "", number(db.value("lag_s", 0.0)));
}

}  // namespace

std::string render_snapshot(const Json& status, const SnapshotInfo& info) {
    std::string out;
    snapshot_health(out, info);
    const Json none = Json::array();
    redis_memory(out, status.is_object() && status.contains("redis") ? status["redis"] : none);
    if (status.is_null()) {
        return out;
    }
    const auto& queues = status.value("queues", Json::array());
    queue_counts(out, queues);
    queue_ages(out, queues);
    breaker_states(out, status.value("breakers", Json::array()));
    pauses(out, status);
    const auto& db = status.value("database", Json::object());
    dead_letters(out, db);
    lag(out, db);
    return out;
}

std::string render_health_slo(const nlohmann::ordered_json& health_checks,
                              const nlohmann::ordered_json& slo) {
    using Json = nlohmann::ordered_json;
    std::string out;
    auto line = [&](std::string_view name, const std::string& labels, const std::string& value) {
        sample(out, name, labels, value);
    };
    if (!health_checks.is_null()) {
        const Json routes = health_checks.value("routes", Json::array());
        std::vector<const Json*> probed;
        for (const auto& r : routes) {
            if (r.value("status", "unknown") != "unknown") {
                probed.push_back(&r);
            }
        }
        header(out, "hookq_destination_health_up", "gauge",
               "Whether the route's last destination health check succeeded.");
        for (const Json* r : probed) {
            line("hookq_destination_health_up", label("route", r->value("route", "")),
                 r->value("status", "") == "ok" ? "1" : "0");
        }
        header(out, "hookq_destination_health_duration_seconds", "gauge",
               "Duration of the route's last destination health check.");
        for (const Json* r : probed) {
            const Json& ms = (*r)["duration_ms"];
            line("hookq_destination_health_duration_seconds", label("route", r->value("route", "")),
                 number(ms.is_number() ? ms.get<double>() / 1000.0 : 0.0));
        }
        header(out, "hookq_destination_health_consecutive_failures", "gauge",
               "Destination health checks of the route failed in a row (0 after a success).");
        for (const Json* r : probed) {
            line("hookq_destination_health_consecutive_failures",
                 label("route", r->value("route", "")),
                 std::to_string(r->value("consecutive_failures", 0LL)));
        }
    }
    if (!slo.is_null()) {
        // A StateSet: one series per status, 1 for the current one.
        header(out, "hookq_slo_status", "gauge",
               "SLO status by source and route: 1 for the current status, 0 for the others.");
        for (auto [kind, field] : {std::pair{"source", "sources"}, {"route", "routes"}}) {
            for (const auto& x : slo.value(field, Json::array())) {
                std::string st = x.value("status", "");
                std::string base = label("kind", kind) + "," + label("name", x.value("name", ""));
                for (std::string_view s : {"healthy", "degraded", "unhealthy"}) {
                    line("hookq_slo_status", base + "," + label("status", s), st == s ? "1" : "0");
                }
            }
        }
    }
    return out;
}

}  // namespace hookq::metrics
