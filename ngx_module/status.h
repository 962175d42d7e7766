// Edge counters and the latency histogram, in shared memory so every nginx worker adds to the same
// numbers, and the `hookq_status` handler that prints them as Prometheus text.
#pragma once

#include <cstdint>

#include "ngx_module/ngx.h"

namespace hookq::edge {

enum class Outcome : uint8_t {
    accepted,
    duplicate,
    challenge,  // Slack url_verification answered by the edge
    missing_signature,
    bad_signature,
    stale_timestamp,
    malformed,
    too_large,
    method_not_allowed,
    queue_full,
    redis_error,
    unreplicated,  // 503: stored on the master, not confirmed on hookq_redis_wait's replicas
    count_
};

// Called from postconfiguration, once the sources are known.
ngx_int_t status_init_zone(ngx_conf_t* cf) noexcept;
// `source` is LocConf::source_index; `elapsed_us` is the edge's own time for this request.
void count(int source, Outcome outcome) noexcept;
// Its label value: "accepted", "bad_signature", ...
std::string_view outcome_name(Outcome outcome) noexcept;
// A request accepted by a `hookq_verify report_only` location although it failed verification
// with `reason` (missing_signature, bad_signature, stale_timestamp or malformed). The request is
// counted under its outcome (accepted, duplicate, ...) as well.
void count_unverified(int source, Outcome reason) noexcept;
// A request over its location's hookq_loop_limit: queued and counted, or held.
void count_loop(int source, bool held) noexcept;
void observe_latency(int source, uint64_t elapsed_us) noexcept;

ngx_int_t status_handler(ngx_http_request_t* r) noexcept;

}  // namespace hookq::edge
