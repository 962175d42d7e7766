// Outcome classification: what one HTTP attempt means for the webhook and for the breaker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "worker/config.h"

namespace hookq {

enum class Transport : uint8_t { ok, timeout, connect_error, other_error };

struct AttemptResult {
    Transport transport = Transport::ok;
    int http_status = 0;                     // 0 when no response arrived
    std::optional<uint64_t> retry_after_ms;  // parsed Retry-After, if any
    std::string error;                       // transport error text
};

// split: the webhook went out as one delivery per event (fanout.h), each with its own outcome.
// waiting: queued behind a delivery of the same entity (ordering.h), sent when that one is done.
// coalesced: merged into a newer update of the same entity (counted; rows say which).
enum class OutcomeKind : uint8_t { delivered, retry, dead, parked, split, waiting, coalesced };
std::string_view to_string(OutcomeKind k) noexcept;

struct Decision {
    OutcomeKind kind = OutcomeKind::delivered;
    bool breaker_failure = false;  // counts toward opening the destination's breaker
    bool flag_route = false;       // 410 Gone: the application says the route is obsolete
    uint64_t delay_ms = 0;         // for retry
    std::string reason;            // for retry / dead: short, operator-readable
};

bool retryable_status(int status) noexcept;

// What one transfer amounts to. The status line and headers decide: once a final status has been
// read, whatever happens to the body afterwards (cut short on purpose, slow past the timeout, the
// connection dropped) does not change the outcome. final_status: 0 when none was read.
AttemptResult attempt_result(Transport transport, int final_status, std::string transport_error);

// At most `max` bytes of a response body, fit for an attempt row: control characters become
// spaces, and the cut never splits a UTF-8 sequence.
std::string body_excerpt(std::string_view body, size_t max);

// attempt: 1-based number of the attempt that produced `r`; u01: the jitter draw.
Decision decide(const AttemptResult& r, uint32_t attempt, const RetryPolicy& p, double u01);

}  // namespace hookq
