// libpq helpers: one connection per owning thread.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

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
    PgResult query(const Statement& st);  // nullptr with error() set
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
};

}  // namespace hookq
