// Replay: sending recorded webhooks again, as a job (table replay_jobs, migrations/0008) that the
// workers' replay runners (worker/jobs/replay_runner.h) execute at a set rate. The one
// implementation behind `hookqctl replay ...` and /api/v1/replays: preview (dry run), create,
// list, show, cancel, resume; every write audited in the same transaction as the change.
//
// A replay re-enqueues a webhook the way `dlq retry` does (ops::requeue_element): one retry
// record per route, under the webhook's original request id, so the worker delivers it to that
// route only. By default ("failed") only the routes that are dead are included: a delivered route
// is never sent to again, and a retrying or parked one already has its copy waiting in Redis.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"

namespace hookq::ops {

// Which webhooks: every field given must hold (empty: any).
struct ReplaySelection {
    std::vector<std::string> request_ids;  // canonical UUID text
    std::string source, route, event_type;
    std::string status;              // "dead" | "failed" | "delivered"; with route: that route's
    std::string since;               // as given ("1h"); resolved into from_us
    std::optional<int64_t> from_us;  // received_at >= from
    std::optional<int64_t> to_us;    // received_at < to (set to the creation time if absent)
    std::optional<std::vector<std::string>> scope;  // a source-limited token's sources
};

struct ReplayRequest {
    ReplaySelection selection;
    bool dry_run = false;
    bool confirm = false;
    std::optional<int64_t> limit;  // at most this many webhooks (oldest first)
    double rate = 50;              // enqueued deliveries per second
    bool all_routes = false;       // routes "all": every route, delivered ones included
};

// Selections larger than this need "confirm": true (or a limit at most this).
inline constexpr int64_t kReplayConfirmAbove = 1000;
inline constexpr double kReplayMaxRate = 100000;
inline constexpr size_t kReplayMaxIds = 10000;

// The body of POST /api/v1/replays (hookqctl builds the same object from its flags). `now_us`
// resolves "since". Error::bad_request names the field that is unknown or wrong.
ReplayRequest parse_replay_request(const nlohmann::json& body, int64_t now_us);

// A create refused because the selection is large: the caller answers 409 with the count.
struct ConfirmationRequired : Error {
    ConfirmationRequired(int64_t n, const std::string& msg) : Error(conflict, msg), count(n) {}
    int64_t count;
};

// What the replay would send, nothing changed: {"dry_run": true, "total", "to_send", "skipped",
// "routes": {route: deliveries}, "sample": [request ids], "selection", "routes_mode", "rate",
// "limit", "confirmation_required", "estimated_seconds"}.
nlohmann::ordered_json preview_replay(Pg& pg, const ReplayRequest& req, const Scope& scope = {});

// Creates the job (state pending; a worker's runner starts it), audited "replay.create" with the
// exact selection. Throws ConfirmationRequired for a large selection without confirm, and
// Error::conflict naming the job when one with the same selection (replay_fingerprint) is pending
// or running (audited "replay.refused").
nlohmann::ordered_json create_replay(Pg& pg, const ReplayRequest& req, const Actor& actor,
                                     const Scope& scope = {});

// What makes two requests the same replay: the selection as asked (a "since" as its text, not the
// time it resolved to; an end only when given), the token's scope and the routes mode. Rate and
// limit do not count: a job for the same webhooks at another pace still overlaps.
std::string replay_fingerprint(const ReplayRequest& req, const Scope& scope = {});

// {"replays": [job...]}, newest first (at most `limit`).
nlohmann::ordered_json list_replays(Pg& pg, const Scope& scope = {}, int limit = 100);
// One job: {"id", "state", "created_at", "created_by", "selection", "routes_mode", "rate",
// "limit", "total", "sent", "skipped", "skipped_pending", "failed", "progress", "started_at",
// "finished_at", "updated_at", "error", "worker"}. Error::not_found / bad_request.
nlohmann::ordered_json get_replay(Pg& pg, const std::string& id, const Scope& scope = {});
// Stops a pending or running job (the runner notices within a second). Error::conflict when it
// has already finished.
nlohmann::ordered_json cancel_replay(Pg& pg, const std::string& id, const Actor& actor,
                                     const Scope& scope = {});
// Puts a cancelled or failed job back to pending; it carries on from its cursor.
nlohmann::ordered_json resume_replay(Pg& pg, const std::string& id, const Actor& actor,
                                     const Scope& scope = {});

// --- for the runner ---

// The WHERE clause (on webhook_events e) of a stored selection, its parameters appended; without
// its status condition unless `with_status`.
std::string replay_where(const nlohmann::json& selection,
                         std::vector<std::optional<std::string>>& params, bool with_status = true);
// The selection's status condition alone ("true" when it names none).
std::string replay_status_cond(const nlohmann::json& selection,
                               std::vector<std::optional<std::string>>& params);
// The condition (on webhook_routes r) for the routes a webhook is replayed to.
std::string replay_route_cond(const nlohmann::json& selection, const std::string& routes_mode,
                              std::vector<std::optional<std::string>>& params);
// The job row as the API shows it, from a query selecting kReplayColumns.
extern const char* const kReplayColumns;
nlohmann::ordered_json replay_json(const PgResult& r, int row);

}  // namespace hookq::ops
