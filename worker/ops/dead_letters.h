// Dead letters in PostgreSQL, and putting them back on the queue they came from: the one
// implementation behind `hookqctl dlq ...` and /api/v1/dead-letters. Writes audit in the same
// transaction as the change.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "shared/envelope.h"
#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

struct DeadLetterQuery {
    std::string source;  // empty: any
    std::string route;   // empty: any
    bool include_requeued = false;
    std::string cursor;  // next_cursor of the previous page; empty: from the newest
    int limit = 50;      // 1..kMaxDeadLetterPage
};
inline constexpr int kMaxDeadLetterPage = 1000;

// Newest first (by id): {"items": [...], "next_cursor": "<id>" or null}. Error::bad_request for a
// bad cursor or limit.
nlohmann::ordered_json list_dead_letters(Pg& pg, const DeadLetterQuery& q, const Scope& scope = {});

// One dead letter with its event (headers, body as body_json shows it) and the event's delivery
// attempts. Timestamps are RFC 3339 UTC.
// Error::not_found when it does not exist or is outside the scope; bad_request for a bad id.
nlohmann::ordered_json get_dead_letter(Pg& pg, const std::string& id, const Scope& scope = {});

struct RetryRequest {
    // The queue to push to; empty: derived from the letter's source and cfg.queues.
    std::string queue;
    bool dry_run = false;
    bool force = false;  // requeue even if already requeued
};
enum class RetryOutcome { requeued, would_requeue, not_found, gone, already_requeued };
struct RetryResult {
    RetryOutcome outcome;
    // {"id", "result": "requeued" | "would requeue" | "skipped", ["why"], ["event_id", "route",
    // "queue"]}
    nlohmann::ordered_json json;
};
// Pushes one dead letter back (a retry record for its route, or the bare envelope when no route
// had matched). Throws Error::bad_request for a bad id or an undecidable queue; a letter outside
// the scope is not_found.
RetryResult retry_dead_letter(Pg& pg, RedisConn& redis, const Config& cfg, const std::string& id,
                              const RetryRequest& req, const Actor& actor, const Scope& scope = {});

// Removes one dead letter (its webhook row stays, and its route stays dead), audited in the same
// transaction: {"deleted": id}. Error::not_found when it does not exist or is outside the scope.
nlohmann::ordered_json delete_dead_letter(Pg& pg, const std::string& id, const Actor& actor,
                                          const Scope& scope = {});

// Putting a recorded webhook back on its queue, shared by dlq retry and replay (ops/replay.h).
// The webhook from a row of: id, received_at in unix us, source, dedup_key, method, path,
// coalesce(remote_addr, ''), headers::text, encode(body, 'hex'), starting at column `col`.
Envelope envelope_from_row(const PgResult& r, int row, int col);
// What to push for one route: a retry record (the worker delivers that route only, so routes that
// already succeeded are not sent to again), or for route "-" (none had matched) the bare envelope,
// routed afresh.
std::string requeue_element(const Envelope& env, const std::string& route);
// The queue a webhook of `source` is consumed from; `forced` when given. Error::bad_request when
// it cannot be told.
std::string requeue_queue(const Config& cfg, const std::string& source,
                          const std::string& forced = "");

// Throws Error::bad_request unless `id` is a dead letter id (digits).
void check_dead_letter_id(const std::string& id);

}  // namespace hookq::ops
