// What travels between the stages. A Job is one element claimed from a queue: it is created by the
// route stage, carries the outcome of every route it fans out to, and is acked as a whole.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/envelope.h"
#include "worker/config.h"
#include "worker/pipeline/decide.h"

namespace hookq {

struct AttemptRow {
    std::string route;
    std::string url;
    uint32_t attempt = 0;
    uint64_t started_us = 0;
    uint64_t duration_us = 0;
    int http_status = 0;
    OutcomeKind outcome = OutcomeKind::delivered;
    std::string error;
};

// The final word of one route for this claim: delivered, dead, or to be tried again (retry/parked)
// through a retry record.
struct RouteOutcome {
    std::string route;
    OutcomeKind kind = OutcomeKind::delivered;
    uint32_t attempt = 0;       // attempts made so far for this route
    uint32_t next_attempt = 0;  // retry/parked: the attempt number the retry record carries
    uint64_t due_ms = 0;        // retry/parked: when the retry record becomes due
    uint64_t at_us = 0;
    std::string reason;
    bool flag_route = false;
    // parked: when the breaker said so (Redis ms). A close after that makes the decision stale.
    uint64_t decided_ms = 0;
    // parked: the parked set's destination when not the route's own (a pause: "paused:<route>").
    std::string park_dest{};
    // split: the retry records of the webhook's events (fanout.h), queued by the ack.
    std::vector<std::string> children{};
};

// An update coalesced into a newer one (ordering.h): its id and when it was received (its rows'
// key).
struct MergedUpdate {
    std::string id;
    uint64_t received_us = 0;
};

// This claim holds the entity `entity` of `route` (ordering.h): the ack of its final outcome hands
// the entity on. `merged`: the updates coalesced into this delivery.
struct OrderHold {
    std::string route;
    std::string entity;
    std::vector<MergedUpdate> merged;
};

// The envelope header a replay job adds to what it pushes (worker/jobs/replay_runner.h): its id,
// so that the ack of the copy's final outcome can clear the job's keys::replay_pending marker.
inline constexpr std::string_view kReplayHeader = ":hookq-replay";

struct Job {
    size_t queue = 0;
    std::string raw;  // the exact bytes in the inflight list: the ack removes them by value
    std::optional<RetryRecord> retry;  // claimed as an "HQR1" retry record
    bool decoded = false;
    EnvelopeView env;  // views into raw, or into retry->envelope; Job is never moved once decoded
    std::string poison_reason;
    std::string event_type;
    uint64_t claimed_us = 0;
    uint64_t first_attempt_us = 0;

    // The edge's and the worker's own envelope headers (names starting with ':', which no request
    // can carry), found in one pass by the route stage so that deliveries need not look again.
    std::string_view unverified;  // ":hookq-unverified": `hookq_verify report_only` let it through
    std::string_view parent;      // ":hookq-parent": the webhook this event was split from
    std::string_view part;        // ":hookq-part": "<index>/<count>"
    std::string_view replay;      // ":hookq-replay": the replay job that pushed this copy

    std::vector<AttemptRow> attempts;
    std::vector<RouteOutcome> outcomes;
    std::vector<OrderHold> holds;
    int pending = 0;  // deliveries still running; owned by the dispatcher thread once handed over

    std::string_view envelope_bytes() const {
        return retry ? std::string_view(retry->envelope) : std::string_view(raw);
    }
};
using JobPtr = std::shared_ptr<Job>;

struct Delivery {
    JobPtr job;
    const Route* route = nullptr;
    uint32_t attempt = 1;
    uint64_t probe = 0;     // non-zero: the id of the half-open probe lease this delivery holds
    bool fallback = false;  // sent to route->fallback_url after the primary gave up
};

struct Transition {
    std::string destination;
    std::string from, to;
    uint64_t at_us = 0;
    std::string reason;
};

}  // namespace hookq
