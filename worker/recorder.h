// Record and ack stages: outcomes are written to PostgreSQL in batches, and only after COMMIT does
// the webhook leave the inflight list (retry records are added to the retry set first). While
// PostgreSQL is away nothing is acked: the batch is retried with backoff, claiming stops at
// max_inflight, and everything resumes when the database is back.
#pragma once

#include <atomic>

#include "worker/context.h"
#include "worker/pg.h"
#include "worker/redis_conn.h"

namespace hookq {

class Recorder {
  public:
    explicit Recorder(Shared& s) : s_(s), pg_(s.cfg.postgres_dsn), redis_(s.cfg, "ack") {}
    void run();
    // After the drain deadline: stop retrying a failing batch (its jobs stay in inflight).
    void abandon() { abandon_.store(true); }

  private:
    void process(std::vector<RecordMsg>& batch);
    bool commit(const std::vector<const Job*>& jobs, const std::vector<const Transition*>& trs);
    bool ack(const std::vector<JobPtr>& jobs);
    bool ensure_pg();
    void log_outcomes(const Job& j);
    void backoff(uint64_t& ms);

    Shared& s_;
    Pg pg_;
    RedisConn redis_;
    std::atomic<bool> abandon_{false};
    bool pg_down_logged_ = false;
    uint64_t next_partition_check_ms_ = 0;
};

}  // namespace hookq
