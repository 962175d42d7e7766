// Batch SQL for the recorder: multi-row INSERT ... ON CONFLICT with parameters, built as plain data
// so it can be tested without a server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/messages.h"

namespace hookq {

struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::vector<int> formats;  // 1 = binary (bytea), 0 = text
    size_t rows = 0;

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

// The webhook's status after this claim, from the outcomes of its routes.
std::string event_status(const Job& job);

// Statements for a batch of finished jobs; statements with no rows are omitted.
std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id);

}  // namespace hookq
