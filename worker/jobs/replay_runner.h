// Executes replay jobs (ops/replay.h): every worker runs one runner, on its own thread with its
// own PostgreSQL and Redis connections, off the delivery path. A runner takes one job at a time
// by lease (replay_jobs.lease_owner/lease_expires), so one worker runs a given job; the lease is
// renewed with every progress write, and a job whose runner died is taken over by any runner once
// the lease has lapsed, from its cursor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq {

class ReplayRunner {
  public:
    explicit ReplayRunner(const Config& cfg)
        : cfg_(cfg), pg_(cfg.postgres_dsn), redis_(cfg, "replay") {}
    ~ReplayRunner() { stop(); }
    ReplayRunner(const ReplayRunner&) = delete;
    ReplayRunner& operator=(const ReplayRunner&) = delete;

    void start();
    void stop();

    // How long a lease lasts without renewal: how soon a job of a killed worker is taken over.
    static constexpr int kLeaseSeconds = 5;

  private:
    struct JobState {
        std::string id;
        nlohmann::json selection;
        std::string routes_mode;
        double rate = 1;
        std::optional<int64_t> limit;
        int64_t sent = 0, skipped = 0, failed = 0;
        // Of skipped: met while another job's push of it was still pending (kPushOnce).
        int64_t skipped_pending = 0;
        std::optional<int64_t> cursor_us;
        std::string cursor_id;
        uint64_t last_flush_ms = 0;
        std::set<std::string> dedup_sets;  // the Redis sets this run pushed through
        // (request id, route) enqueued since the last progress write: their dead letters are
        // marked requeued then, as `dlq retry` does.
        std::vector<std::string> requeued_ids, requeued_routes;
        void requeued(const std::string& id, const std::string& route) {
            requeued_ids.push_back(id);
            requeued_routes.push_back(route);
        }
        int64_t recover_left = 0;  // webhooks still to check against the job's Redis set
        double tokens = 0;
        uint64_t tokens_at_ms = 0;
    };
    enum class Go { on, stop };
    // The parts of the page query fixed by the job's selection, built once per run.
    struct PageQuery;
    // A webhook row as it is pushed again.
    struct Webhook;
    // What replaying one webhook row to its routes came to.
    struct RowOutcome {
        bool matches = false;  // in the selection (false only for rows read while recovering)
        int pushed = 0, failed = 0, pending = 0;
        bool stop = false;  // the job must end here: the row is neither counted nor passed
    };

    void run();
    bool connected();
    bool claim(JobState& job);
    void execute(JobState& job);
    static PageQuery page_query(const nlohmann::json& selection);
    // How many webhooks the next page may take: a batch, within the job's limit.
    static int64_t page_size(const JobState& job);
    PgResult fetch_page(const JobState& job, const PageQuery& q, int64_t n);
    RowOutcome replay_row(JobState& job, const PgResult& r, int row);
    // Pushes one route's copy through kPushOnce, retrying while Redis fails; Go::stop when the
    // job ended during a retry's pause.
    Go push_copy(JobState& job, const Webhook& w, const std::string& route,
                 const std::string& member, RowOutcome& out);
    static void count_row(JobState& job, const RowOutcome& out);
    // Writes progress and the cursor and renews the lease; Go::stop when the job is no longer
    // this runner's to run (cancelled, or the lease lost).
    Go flush(JobState& job);
    Go flush_if_due(JobState& job);
    // Sleeps up to `ms` in slices, flushing as due.
    Go pause(JobState& job, uint64_t ms);
    Go wait_token(JobState& job);
    Go wait_breaker(JobState& job, const std::string& destination);
    void finish(JobState& job, const std::string& state, const std::string& error);
    void release(JobState& job);
    bool stopping();

    const Config& cfg_;
    Pg pg_;
    RedisConn redis_;
    bool down_logged_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace hookq
