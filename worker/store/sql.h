// Batch SQL for the recorder: multi-row INSERT ... ON CONFLICT with parameters, built as plain data
// so it can be tested without a server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/pipeline/messages.h"

namespace hookq {

struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::vector<int> formats;  // 1 = binary (bytea), 0 = text
    size_t rows = 0;
    // An UPDATE of webhook_events for claims from retry records, RETURNING the ids it found: the
    // rows of these jobs that do not exist are then inserted (event_inserts) in the same
    // transaction.
    std::vector<const Job*> jobs;

    void add(std::optional<std::string> v, bool binary = false) {
        params.push_back(std::move(v));
        formats.push_back(binary ? 1 : 0);
    }
};

// PostgreSQL text rejects NUL and invalid UTF-8; headers from the wire may contain either. Invalid
// bytes become U+FFFD, NULs are dropped: the raw request is still intact in `body` and in Redis.
std::string sanitize_text(std::string_view s);
// "2024-05-01 12:00:00.123456+00": exact to the microsecond, so that an upsert after redelivery
// finds the same (received_at, id) key.
std::string format_timestamp_us(uint64_t unix_us);
std::string headers_json(const EnvelopeView& env);

// libpq sends the parameter count as a 16-bit integer: a statement with more cannot be sent at
// all (and fails without a SQLSTATE).
inline constexpr size_t kMaxParams = 65535;

// The route name of the dead_letters row that traces a webhook PostgreSQL refused (it went to the
// poison list): no configured route can have this name.
inline constexpr std::string_view kPoisonRoute = "(poison)";

// The webhook's status after this claim, from the outcomes of its routes. The status written is
// then derived from every route's row (webhook_routes), not from this claim alone.
std::string event_status(const Job& job);
// webhook_routes.status for a route outcome.
std::string_view route_status(OutcomeKind k);
// A claim from a retry record that only parked again: its rows already say so; nothing to write.
bool writes_nothing(const Job& j);

// Statements for a batch of finished jobs, each with at most `max_params` parameters (one table
// may take several); statements with no rows are omitted. They are meant for one transaction:
// the last webhook_events UPDATE derives each webhook's status from webhook_routes.
std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id, size_t max_params = kMaxParams);

// Full webhook_events upserts (body and headers included) for these jobs.
std::vector<Statement> event_inserts(const std::vector<const Job*>& jobs,
                                     size_t max_params = kMaxParams);

// The dead_letters row that makes a webhook sent to the poison list visible (route kPoisonRoute).
Statement poison_trace(const Job& j, std::string_view reason);

}  // namespace hookq
