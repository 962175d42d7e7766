#include "worker/admin/session.h"

namespace hookq::admin {

namespace {
// A slow database must not pin the API's threads for long.
constexpr const char* kPgSessionSettings =
    "SET statement_timeout = '5s'; SET lock_timeout = '2s'; "
    "SET idle_in_transaction_session_timeout = '10s'";
}  // namespace

Session::Session(const Config& cfg) : pg(cfg.postgres_dsn), redis(cfg, "admin") {}

bool Session::ensure_pg(std::string& err) {
    if (pg.ok()) {
        return true;
    }
    if (!pg.connect()) {
        err = pg.error();
        return false;
    }
    if (!pg.exec(kPgSessionSettings)) {
        err = pg.error();
        pg.close();
        return false;
    }
    return true;
}

bool Session::pg_answers(std::string& pg_error) {
    if (!ensure_pg(pg_error)) {
        return false;
    }
    PgResult r = pg.query("SELECT 1");
    if (!r && !pg.ok() && ensure_pg(pg_error)) {
        r = pg.query("SELECT 1");  // the pooled connection was stale: one fresh try
    }
    pg_error = r ? "" : pg.error();
    return r != nullptr;
}

bool Session::redis_answers() {
    auto ping = [&] {
        Reply rp = redis.command({"PING"});
        return rp && rp->type == REDIS_REPLY_STATUS;
    };
    return ping() || (!redis.connected() && ping());
}

SessionPool::Lease SessionPool::lease() {
    {
        std::lock_guard lock(mu_);
        if (!idle_.empty()) {
            auto s = std::move(idle_.back());
            idle_.pop_back();
            return Lease(*this, std::move(s));
        }
    }
    return Lease(*this, std::make_unique<Session>(cfg_));
}

void SessionPool::give(std::unique_ptr<Session> s) {
    std::lock_guard lock(mu_);
    if (s && idle_.size() < max_idle_) {
        idle_.push_back(std::move(s));
    }
}

}  // namespace hookq::admin
