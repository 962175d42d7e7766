// What the operator commands of hookqctl share: where Redis and PostgreSQL are, parameterised
// queries, and the audit trail every admin write leaves behind.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

struct Target {
    std::string config_path;
    std::string dsn;    // --dsn; empty: [postgres] of the config
    std::string redis;  // --redis host:port or unix:/path; empty: [redis] of the config
};

// The configuration, with --dsn / --redis applied. A missing file is fine when the overrides say
// all the command needs: an operator on another host may have only the addresses.
Config load_target(const Target& t, bool needs_redis = true);

// Connects or throws std::runtime_error (never with the DSN in the message: it may hold a
// password).
void connect_pg(Pg& pg);
void connect_redis(RedisConn& r);

// nullptr with pg.error() set. Parameters are text; nullopt is SQL NULL.
PgResult query(Pg& pg, const std::string& sql,
               const std::vector<std::optional<std::string>>& params);
// Like query(), throwing std::runtime_error on failure.
PgResult must_query(Pg& pg, const std::string& sql,
                    const std::vector<std::optional<std::string>>& params = {});
std::string cell(const PgResult& r, int row, int col);  // "" for NULL
bool is_null(const PgResult& r, int row, int col);

// A Redis command that must succeed; throws std::runtime_error on a lost connection or an error.
Reply must(RedisConn& r, const std::vector<std::string_view>& argv);
// Every key matching `pattern`, by SCAN: KEYS would block a production Redis.
std::vector<std::string> scan_keys(RedisConn& r, const std::string& pattern);
// Redis's TIME in unix ms: deadlines in Redis are compared against Redis's clock, not this host's.
uint64_t redis_now_ms(RedisConn& r);

// $SUDO_USER, else $USER, else "hookqctl": the person behind sudo is who acted.
std::string actor();
// Inserts one audit_log row on `pg`, inside whatever transaction the caller has open.
void audit(Pg& pg, const std::string& action, const std::string& target,
           const nlohmann::json& details);

// Left-aligned columns, two spaces apart; the first row is the header.
std::string table(const std::vector<std::vector<std::string>>& rows);

// Payloads and errors are attacker-controlled: control bytes are shown as \xNN, so no escape
// sequence of theirs reaches the terminal.
std::string printable(const std::string& s, bool keep_newlines = false);
// A JSON value in a table: "-" for null, numbers to 4 significant digits, text made printable.
std::string json_cell(const nlohmann::ordered_json& v);

}  // namespace hookq::ctl
