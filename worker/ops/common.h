// What every operation shares, whoever calls it (hookqctl or the admin API): who acts, which
// sources they may see, the errors a caller turns into an exit status or an HTTP status, and the
// audit row each write leaves in the same transaction as the change.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/store/pg.h"

namespace hookq::ops {

struct Actor {
    std::string name;         // hookqctl: $SUDO_USER or $USER; API: the token's name
    std::string role;         // API: "viewer" or "admin"; hookqctl: empty
    std::string remote_addr;  // API: the client's address; hookqctl: empty (NULL in the row)
    std::string user_agent;
    std::string via;  // "hookqctl" or "api"
};

// The sources an actor may see and act on. nullopt: every source.
struct Scope {
    std::optional<std::vector<std::string>> sources;
    bool allows(const std::string& source) const;
    // A PostgreSQL text[] literal for `$n::text[]`, or nullopt (SQL NULL: no restriction).
    std::optional<std::string> sql_array() const;
};

// The operation was asked something it cannot do: the caller answers 400 / 404 / 409.
struct Error : std::runtime_error {
    enum Kind { bad_request, not_found, conflict };
    Error(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
    Kind kind;
};

// A text[] literal with every element quoted and escaped.
std::string pg_text_array(const std::vector<std::string>& items);

// Inserts one audit_log row on `pg`, inside the transaction the caller has open.
void audit(Pg& pg, const Actor& actor, const std::string& action, const std::string& target,
           nlohmann::json details);

}  // namespace hookq::ops
