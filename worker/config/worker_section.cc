#include "worker/config/sections.h"

#include <unistd.h>

#include <set>
#include <string>

namespace hookq::config_detail {

namespace {

std::string hostname_pid() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace

void read_worker(const Reader& r, const toml::table& root, Config& c) {
    if (const toml::table* w = r.table(root, "worker")) {
        r.only_keys(*w, "[worker]",
                    {"id", "queues", "max_inflight", "max_inflight_bytes", "claim_batch",
                     "heartbeat_ttl", "reaper_interval", "retry_poll", "drain_timeout",
                     "max_connections_per_host", "log_level"});
        c.worker_id = r.str(*w, "id").value_or("");
        c.queues = r.strings(*w, "queues");
        c.max_inflight = static_cast<uint32_t>(
            r.integer(*w, "max_inflight", 1, 100000).value_or(c.max_inflight));
        c.max_inflight_bytes = r.size(*w, "max_inflight_bytes", 1024, uint64_t{1} << 40)
                                   .value_or(c.max_inflight_bytes);
        c.claim_batch =
            static_cast<uint32_t>(r.integer(*w, "claim_batch", 1, 5000).value_or(c.claim_batch));
        c.heartbeat_ttl_ms =
            r.duration(*w, "heartbeat_ttl", 1000, 3600 * 1000).value_or(c.heartbeat_ttl_ms);
        c.reaper_interval_ms =
            r.duration(*w, "reaper_interval", 100, 3600 * 1000).value_or(c.reaper_interval_ms);
        c.retry_poll_ms = r.duration(*w, "retry_poll", 10, 60 * 1000).value_or(c.retry_poll_ms);
        c.drain_timeout_ms =
            r.duration(*w, "drain_timeout", 0, 3600 * 1000).value_or(c.drain_timeout_ms);
        c.max_connections_per_host =
            static_cast<uint32_t>(r.integer(*w, "max_connections_per_host", 1, 10000)
                                      .value_or(c.max_connections_per_host));
        if (auto l = r.str(*w, "log_level")) {
            static const std::set<std::string> levels = {"trace", "debug", "info",
                                                         "warn",  "error", "critical"};
            if (!levels.count(*l)) {
                r.fail(r.where(*w, "log_level"),
                       "'log_level' must be one of trace, debug, info, warn, error, critical");
            }
            c.log_level = *l;
        }
        for (const auto& q : c.queues) {
            if (q.empty() || q.find_first_of("{}") != std::string::npos) {
                r.fail(r.where(*w, "queues"),
                       "'queues' entries must be non-empty names without braces");
            }
        }
    }
    if (c.worker_id.empty()) {
        c.worker_id = hostname_pid();
    }
}

void read_breaker(const Reader& r, const toml::table& root, Config& c) {
    if (const toml::table* b = r.table(root, "breaker")) {
        r.only_keys(*b, "[breaker]", {"failure_threshold", "window", "open_for", "close_after"});
        c.breaker.failure_threshold = static_cast<uint32_t>(
            r.integer(*b, "failure_threshold", 1, 1000).value_or(c.breaker.failure_threshold));
        c.breaker.window_ms = r.duration(*b, "window", 1000, kDay).value_or(c.breaker.window_ms);
        c.breaker.open_ms = r.duration(*b, "open_for", 100, kDay).value_or(c.breaker.open_ms);
        c.breaker.close_after = static_cast<uint32_t>(
            r.integer(*b, "close_after", 1, 1000).value_or(c.breaker.close_after));
    }
}

RetryPolicy read_retry(const Reader& r, const toml::table& t, RetryPolicy p, std::string_view ctx) {
    r.only_keys(t, ctx, {"max_attempts", "initial", "multiplier", "max_delay", "jitter"});
    p.max_attempts =
        static_cast<uint32_t>(r.integer(t, "max_attempts", 1, 100).value_or(p.max_attempts));
    p.initial_ms = r.duration(t, "initial", 1, kDay).value_or(p.initial_ms);
    p.multiplier = r.number(t, "multiplier", 1.0, 10.0).value_or(p.multiplier);
    p.max_delay_ms = r.duration(t, "max_delay", 1, kDay).value_or(p.max_delay_ms);
    p.jitter = r.boolean(t, "jitter").value_or(p.jitter);
    if (p.max_delay_ms < p.initial_ms) {
        r.fail(r.where(t, "max_delay"), "'max_delay' must not be less than 'initial'");
    }
    return p;
}

void read_default_retry(const Reader& r, const toml::table& root, Config& c) {
    if (const toml::table* t = r.table(root, "retry")) {
        c.default_retry = read_retry(r, *t, c.default_retry, "[retry]");
    }
}

}  // namespace hookq::config_detail
