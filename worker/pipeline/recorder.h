// Record and ack stages: outcomes are written to PostgreSQL in batches, and only after COMMIT does
// the webhook leave the inflight list (retry records are added to the retry set first). While
// PostgreSQL is away nothing is acked: the batch is retried with backoff, claiming stops at
// max_inflight, and everything resumes when the database is back.
#pragma once

#include <atomic>

#include "worker/pipeline/context.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq {

class Recorder {
  public:
    explicit Recorder(Shared& s) : s_(s), pg_(s.cfg.postgres_dsn), redis_(s.cfg, "ack") {
        for (const auto& q : s.cfg.queues) {
            inflight_keys_.push_back(keys::inflight(q, s.cfg.worker_id));
        }
    }
    void run();
    // After the drain deadline: stop retrying a failing batch (its jobs stay in inflight).
    void abandon() { abandon_.store(true); }

  private:
    enum class Write { ok, lost, rows, other };

    void process(std::vector<RecordMsg>& batch);
    // Writes what is left of a batch; true once all of it is committed or set aside as poison.
    // On false, `jobs` and `trs` keep only what is not committed yet.
    bool commit(std::vector<const Job*>& jobs, std::vector<const Transition*>& trs);
    // One transaction; error_/sqlstate_ say why it failed.
    Write write(const std::vector<const Job*>& jobs, const std::vector<const Transition*>& trs);
    void poison(const Job& j);
    void ack(std::vector<JobPtr>& jobs, std::vector<JobPtr>& done);
    void settle();
    void note_ack_failure(const std::string& error, const std::vector<JobPtr>& waiting);
    bool ensure_pg();
    void log_outcomes(const Job& j);
    void backoff(uint64_t& ms);

    Shared& s_;
    Pg pg_;
    RedisConn redis_;
    std::vector<std::string> inflight_keys_;  // per queue: built once, not on every ack
    std::atomic<bool> abandon_{false};
    bool pg_down_logged_ = false;
    // The last batch failed with an error from a live server (not an outage): the backoff stops
    // feeding the watchdog.
    bool failing_ = false;
    std::string error_, sqlstate_;
    // Committed to PostgreSQL, not yet acked (Redis, or their queue's master, is away).
    std::vector<JobPtr> unacked_;
    std::vector<JobPtr> acked_;  // settle()'s, kept between batches for its capacity
    uint64_t next_ack_ms_ = 0, ack_delay_ms_ = 0;
    bool acks_failing_ = false;
};

}  // namespace hookq
