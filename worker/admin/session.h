// The admin API's connections to Redis and PostgreSQL: its own, never a delivery stage's, with
// shorter timeouts, pooled so that a request does not pay for a connect.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::admin {

// One pair of connections, used by one request at a time.
struct Session {
    explicit Session(const Config& cfg);
    Pg pg;
    RedisConn redis;

    // Connects PostgreSQL (with the API's statement and lock timeouts) when it is not; false with
    // `err` set when it cannot.
    bool ensure_pg(std::string& err);
    // PostgreSQL and Redis each answer a trivial query, one fresh try each when the pooled
    // connection was stale. What failed is left in `pg_error` and Redis's last_error().
    bool pg_answers(std::string& pg_error);
    bool redis_answers();
};

class SessionPool {
  public:
    // `cfg`: the worker's configuration with the admin connections' Redis timeout. At most
    // `max_idle` sessions wait for a request; more are opened under load and closed after it.
    SessionPool(const Config& cfg, size_t max_idle) : cfg_(cfg), max_idle_(max_idle) {}

    // A session for one request, back to the pool when the lease ends.
    class Lease {
      public:
        Lease(SessionPool& pool, std::unique_ptr<Session> s) : pool_(pool), s_(std::move(s)) {}
        ~Lease() { pool_.give(std::move(s_)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Session& operator*() const { return *s_; }
        Session* operator->() const { return s_.get(); }

      private:
        SessionPool& pool_;
        std::unique_ptr<Session> s_;
    };
    Lease lease();

    const Config& config() const { return cfg_; }

  private:
    void give(std::unique_ptr<Session> s);

    const Config& cfg_;
    const size_t max_idle_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Session>> idle_;
};

}  // namespace hookq::admin
