// The alerting engine: a thread of its own, with its own Redis and PostgreSQL connections, off the
// delivery path. Every [alerts] interval the worker holding the lease (hookq:alerts:lease)
// evaluates the rules, advances each alert's state, writes the alerts and alert_events rows, and
// hands grouped, rate-limited, unsilenced messages to the channels' sender threads.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/alerts/channels.h"
#include "worker/alerts/rules.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::alerts {

class Engine {
  public:
    explicit Engine(const Config& cfg);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void start();  // nothing when [alerts] is disabled
    void stop();

  private:
    // A row of alert_events, kept until it is written and every channel has answered.
    struct EventRec {
        int64_t db_id = 0;
        int64_t at_ms = 0;
        std::string fingerprint, rule, severity, state;
        Labels labels;
        double value = 0, threshold = 0;
        nlohmann::json notified = nlohmann::json::object();
        int outstanding = 0;  // waiting in the grouper or in a channel's queue
        bool notified_dirty = false;
    };
    using Observations = std::optional<std::vector<Observation>>;  // nullopt: could not evaluate

    // {rule, severity, state} -> how many alerts are pending or firing (hookq_alerts_active).
    using ActiveCounts = std::map<std::array<std::string, 3>, uint64_t>;
    // One rule's observations this round by fingerprint; `unknown`: nothing could be read.
    struct Observed {
        std::map<std::string, const Observation*> known;
        std::set<std::string> unknown;
    };

    void run();
    // One round and its steps, in order.
    void round(int64_t now_ms);
    void check_stores();
    bool take_lease();
    void read_postgres_state();
    ActiveCounts evaluate_rules(int64_t now_ms);
    void retire_unwatched(int64_t now);
    void evaluate_rule(const std::string& rule, const AlertRule& rc, int64_t now_ms,
                       ActiveCounts& active);
    // Opens an alert for each active observation that has none; an inactive one without an
    // alert has nothing to advance.
    Observed open_alerts(const std::string& rule, const AlertRule& rc,
                         const std::vector<Observation>& obs);
    // An alert_events row for what step() did; firing and resolved alerts also wait in the
    // grouper, which sends a rule's alerts of a round as one message.
    void transition(const std::string& rule, const std::string& fp, const AlertState& a, Action act,
                    int64_t now_ms);
    static void count_active(const AlertState& a, ActiveCounts& active);
    bool hold_lease();
    void lose_lease();
    void load_state();
    void apply_results();
    void flush();
    void notify_due(int64_t now_ms);
    void read_silences();
    uint64_t record_event(const AlertState& a, int64_t now_ms);

    Observations evaluate(const std::string& rule, int64_t now_ms);
    Observations delivery_stats(const std::string& rule);
    Observations dead_letters();
    Observations source_silent(int64_t now_ms);
    Observations fallback_used();
    Observations queues(const std::string& rule);
    // One queue's reading for `rule`; throws when its Redis master does not answer.
    void queue_signal(const std::string& rule, const std::string& q, uint64_t now_ms,
                      Observation& o);
    Observations breakers();
    Observations health_checks();
    Observations redis_memory();
    Observations signature_failures(int64_t now_ms);

    const Config& cfg_;
    const AlertsConfig& acfg_;
    RedisConn redis_;
    Pg pg_;
    bool redis_ok_ = false, pg_ok_ = false;
    // Redis was unreachable at the last round: said once when it goes, once when it is back.
    bool redis_outage_ = false;
    std::string redis_error_, pg_error_;
    bool leader_ = false;
    bool loaded_ = false;
    int64_t started_ms_ = 0;

    std::map<std::string, AlertState> alerts_;  // by fingerprint
    std::map<uint64_t, EventRec> events_;       // by sequence number
    uint64_t next_seq_ = 1;
    Grouper grouper_;
    std::vector<Silence> silences_;
    std::vector<TokenBucket> buckets_;  // per channel
    std::vector<size_t> folded_;        // per channel: alerts held back since its last message

    // signature_failures: the edge's counters as scraped, per URL, oldest first.
    struct Sample {
        int64_t ms;
        std::map<std::string, double> failures;  // source -> counter
    };
    std::map<std::string, std::deque<Sample>> edge_samples_;

    std::unique_ptr<Notifier> notifier_;
    std::mutex results_mu_;
    std::vector<SendResult> results_;

    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool wake_ = false;
    std::thread thread_;
};

// The edge's hookq_status text: signature failures (missing, malformed, bad, stale) per source.
std::map<std::string, double> parse_edge_failures(std::string_view text);

}  // namespace hookq::alerts
