#include "worker/store/pg.h"

#include <string>
#include <vector>

#include "worker/log.h"

namespace hookq {

namespace {

// libpq prints NOTICE and WARNING messages to stderr by default, outside the structured log;
// the partition maintenance raises both. The primary message only, as for errors.
void log_notice(void*, const PGresult* r) noexcept {
    try {
        const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
        const char* msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        std::string_view text = msg ? msg : "";
        if (sev && std::string_view(sev) == "WARNING") {
            log::warn("postgresql: " + std::string(text));
        } else {
            log::info("postgresql: " + std::string(text));
        }
    } catch (...) {
    }
}

}  // namespace

bool Pg::connect() {
    close();
    // connect_timeout keeps a blackholed server from hanging the recorder for minutes.
    const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* vals[] = {dsn_.c_str(), "5", "hookq-worker", nullptr};
    conn_ = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        error_ = conn_ ? PQerrorMessage(conn_) : "out of memory";
        while (!error_.empty() && (error_.back() == '\n' || error_.back() == ' ')) {
            error_.pop_back();
        }
        close();
        return false;
    }
    PQsetNoticeReceiver(conn_, log_notice, nullptr);
    return true;
}

void Pg::close() {
    prepared_.clear();
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
}

bool Pg::check(PgResult& r) {
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return true;
    }
    // The primary message only: the DETAIL of a constraint violation quotes the failing row
    // ("Failing row contains (...)"), headers and body included, and errors end up in logs and
    // in dead_letters.
    const char* primary = r ? PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    error_ = primary ? primary : conn_ ? PQerrorMessage(conn_) : "not connected";
    const char* code = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    sqlstate_ = code ? code : "";
    while (!error_.empty() && (error_.back() == '\n' || error_.back() == ' ')) {
        error_.pop_back();
    }
    return false;
}

bool Pg::exec(std::string_view sql) {
    if (!conn_) {
        error_ = "not connected";
        return false;
    }
    PgResult r(PQexec(conn_, std::string(sql).c_str()));
    return check(r);
}

PgResult Pg::query(std::string_view sql) {
    if (!conn_) {
        error_ = "not connected";
        return nullptr;
    }
    PgResult r(PQexec(conn_, std::string(sql).c_str()));
    if (!check(r)) {
        return nullptr;
    }
    return r;
}

PgResult Pg::query(const Statement& st) {
    if (!conn_) {
        error_ = "not connected";
        return nullptr;
    }
    if (st.params.size() > kMaxParams) {
        // libpq would refuse it too, with no SQLSTATE; say what is wrong.
        error_ = "statement has " + std::to_string(st.params.size()) +
                 " parameters; PostgreSQL takes at most " + std::to_string(kMaxParams);
        sqlstate_.clear();
        return nullptr;
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    values.reserve(st.params.size());
    lengths.reserve(st.params.size());
    for (const auto& p : st.params) {
        values.push_back(p ? p->data() : nullptr);
        lengths.push_back(p ? static_cast<int>(p->size()) : 0);
    }
    PgResult r;
    if (st.prepare) {
        auto it = prepared_.find(st.sql);
        if (it == prepared_.end()) {
            // A bound on what one session keeps, should some caller prepare texts that vary.
            if (prepared_.size() >= kMaxPrepared) {
                if (!exec("DEALLOCATE ALL")) {
                    return nullptr;
                }
                prepared_.clear();
            }
            std::string name = "hookq_" + std::to_string(next_name_++);
            // Types come from the casts in the text ($1::uuid[]...).
            PgResult p(PQprepare(conn_, name.c_str(), st.sql.c_str(),
                                 static_cast<int>(values.size()), nullptr));
            if (!check(p)) {
                return nullptr;
            }
            it = prepared_.emplace(st.sql, std::move(name)).first;
        }
        r.reset(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                               values.data(), lengths.data(), st.formats.data(), 0));
        if (!check(r)) {
            // Gone from the session (a DISCARD by a pooler in between): prepare it again next
            // time rather than fail on it forever.
            if (sqlstate_ == "26000") {
                prepared_.erase(it);
            }
            return nullptr;
        }
        return r;
    } else {
        r.reset(PQexecParams(conn_, st.sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), lengths.data(), st.formats.data(), 0));
    }
    if (!check(r)) {
        return nullptr;
    }
    return r;
}

bool Pg::exec(const Statement& st) {
    return query(st) != nullptr;
}

}  // namespace hookq
