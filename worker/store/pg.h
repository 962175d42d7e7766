// libpq helpers: one connection per owning thread.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "worker/store/sql.h"

namespace hookq {

struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class Pg {
  public:
    explicit Pg(std::string dsn) : dsn_(std::move(dsn)) {}
    ~Pg() { close(); }
    Pg(const Pg&) = delete;
    Pg& operator=(const Pg&) = delete;

    bool connect();  // false with error() set
    bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
    void close();

    // false with error() set. `broken()` tells a lost connection from a statement error.
    bool exec(std::string_view sql);
    bool exec(const Statement& st);
    PgResult query(std::string_view sql);
    // A statement with `prepare` set is prepared on this connection the first time its text is
    // seen, then executed by name: the server parses and plans it once per connection (again
    // after a reconnect: connect() forgets them with the old session).
    PgResult query(const Statement& st);  // nullptr with error() set
    size_t prepared() const { return prepared_.size(); }
    bool broken() const { return !ok(); }
    const std::string& error() const { return error_; }
    const std::string& sqlstate() const { return sqlstate_; }
    PGconn* raw() { return conn_; }

  private:
    bool check(PgResult& r);
    std::string dsn_;
    PGconn* conn_ = nullptr;
    std::string error_;
    std::string sqlstate_;
    static constexpr size_t kMaxPrepared = 64;
    std::unordered_map<std::string, std::string> prepared_;  // text -> name, this session's
    uint64_t next_name_ = 0;
};

}  // namespace hookq
