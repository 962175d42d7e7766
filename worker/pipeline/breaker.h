// Circuit breaker per destination. The state lives in Redis (hookq:breaker:<destination>) so that
// every worker sees the same breaker; each transition is one small Lua script, hence atomic. This
// file holds the scripts and the pure decision logic; route_stage.cc does the Redis round trips.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "worker/config.h"

namespace hookq {

enum class BreakerState : uint8_t { closed, open, half_open };
std::string_view to_string(BreakerState s) noexcept;
BreakerState breaker_state_from(std::string_view s) noexcept;

namespace breaker_scripts {
// KEYS[1] breaker hash; ARGV[1] now ms, ARGV[2] probe lease ms, ARGV[3] probe token (the owner).
// -> {action ('allow'|'park'|'probe'), state, until ms (park: open_until, or the lease's end),
//     transition ('' or 'from>to')}
extern const std::string_view kAcquire;
// KEYS[1]; ARGV: now ms, ok 1|0, probe 1|0, threshold, window ms, open ms, close_after, probe
// token.
// -> {state, transition ('' or 'from>to'), open_until ms,
//     probe: 'accepted' | 'stale' (not the lease's owner: ignored) | '' (not a probe)}
extern const std::string_view kReport;
}  // namespace breaker_scripts

struct AcquireResult {
    enum Action : uint8_t { allow, park, probe } action = allow;
    BreakerState state = BreakerState::closed;
    uint64_t until_ms = 0;  // park: when to try again
    // park: when Redis last said so. A release (a reset, another worker's close) after that makes
    // the park stale: the ack then puts the webhook back in the queue instead (see park.h).
    uint64_t decided_ms = 0;
    std::string transition;
};
// How long a probe may hold the half-open lease: the longest timeout among the routes that share
// the destination plus `margin_ms` (for the report's way back). Keyed by destination.
inline constexpr uint64_t kProbeLeaseMarginMs = 2000;
std::unordered_map<std::string, uint64_t> probe_leases(const std::vector<Route>& routes,
                                                       uint64_t margin_ms = kProbeLeaseMarginMs);
// The owner token stored with a lease: which worker, and which of its probes.
std::string probe_token(std::string_view worker_id, uint64_t probe_id);

// From the script's reply elements; a malformed reply allows the delivery (fail open: a broken
// breaker must not stop deliveries).
AcquireResult parse_acquire(const std::vector<std::string>& reply);

// What one worker remembers between round trips, so that a healthy destination costs no Redis
// call per delivery: a closed state is trusted for `ttl_ms`, an open one for `open_ms` (at most
// until it may half-open). An open breaker is asked again that soon because someone else may close
// it (an operator's reset, another worker's probe): trusted until it half-opens, the worker would
// park what the reset released for the rest of the open period.
class BreakerCache {
  public:
    enum class Local : uint8_t { allow, park, ask_redis };
    explicit BreakerCache(uint64_t ttl_ms = 100, uint64_t open_ms = 1000)
        : ttl_ms_(ttl_ms), open_ms_(open_ms) {}

    // park: `until_ms` as Redis gave it, `checked_ms` when it did.
    Local check(const std::string& dest, uint64_t now_ms, uint64_t& until_ms,
                uint64_t* checked_ms = nullptr) const;
    void update(const std::string& dest, BreakerState s, uint64_t until_ms, uint64_t now_ms);
    // The last state seen; closed when never seen.
    BreakerState state(const std::string& dest) const;
    // Successes while closed change nothing in Redis: they need no round trip.
    bool report_needed(const std::string& dest, bool ok, bool probe) const;

  private:
    struct Entry {
        BreakerState state = BreakerState::closed;
        uint64_t until_ms = 0;
        uint64_t checked_ms = 0;
    };
    uint64_t ttl_ms_;
    uint64_t open_ms_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace hookq
