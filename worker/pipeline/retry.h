// Retry schedule: exponential backoff with full jitter (delay drawn uniformly from [0, cap]), so
// that a burst of failures does not come back as a synchronized burst of retries.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "worker/config.h"

namespace hookq {

// The ceiling of the delay after `failed_attempt` (1-based) failed: min(max, initial*mult^(n-1)).
uint64_t backoff_ceiling_ms(const RetryPolicy& p, uint32_t failed_attempt);
// u01 in [0, 1): the jitter draw (injected so tests are deterministic).
uint64_t backoff_delay_ms(const RetryPolicy& p, uint32_t failed_attempt, double u01);

// Retry-After: delay-seconds or an HTTP-date; nullopt when absent or unparseable.
std::optional<uint64_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_s);

}  // namespace hookq
