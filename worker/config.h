// worker.toml: read once at start and validated completely, so that a typo stops the worker with
// the file, line and key instead of surfacing as a misrouted webhook later.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace hookq {

// what() is "<file>:<line>:<col>: <message>", ready to print.
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct RetryPolicy {
    uint32_t max_attempts = 3;
    uint64_t initial_ms = 1000;
    double multiplier = 2.0;
    uint64_t max_delay_ms = 30000;
    bool jitter = true;
};

struct RateLimit {
    double per_second = 0;
    double burst = 1;
};

struct BreakerConfig {
    uint32_t failure_threshold = 5;
    uint64_t window_ms = 5 * 60 * 1000;
    uint64_t open_ms = 60 * 1000;
    uint32_t close_after = 3;
};

struct SourceConfig {
    std::string event_header;  // e.g. X-GitHub-Event
    std::string event_field;   // JSON path in the body, e.g. "type" or "events[].action"
};

// Header names compare case-insensitively; lookups take a string_view without allocating.
struct CaseInsensitiveHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        size_t h = 14695981039346656037ull;
        for (char c : s) {
            h = (h ^ static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c)) *
                1099511628211ull;
        }
        return h;
    }
};
struct CaseInsensitiveEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept {
        if (a.size() != b.size()) {
            return false;
        }
        for (size_t i = 0; i < a.size(); ++i) {
            char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
            char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
            if (x != y) {
                return false;
            }
        }
        return true;
    }
};
using NameSet = std::unordered_set<std::string, CaseInsensitiveHash, CaseInsensitiveEqual>;

// Headers never forwarded from the provider's request: hop-by-hop ones, those that describe the
// provider's connection to the edge, and those hookq sets itself (X-Hookq-* and Proxy-* by prefix).
bool never_forwarded(std::string_view name) noexcept;

// One condition of a route's `match`: the body's JSON at `path` (dotted; "name[]" steps into every
// element of an array) equals one of `values`. Through an array, any element will do.
struct FieldMatch {
    std::string path;
    std::vector<std::string> values;
};

struct Route {
    size_t index = 0;
    std::string name;
    std::string source;
    std::vector<std::string> events;  // empty: every event type
    std::vector<FieldMatch> match;    // all must hold; empty: no condition on the body
    std::string url;
    std::string destination;  // scheme://host:port, the breaker's key
    std::string fallback_url;
    uint64_t timeout_ms = 10000;
    RetryPolicy retry;
    std::optional<RateLimit> rate_limit;
    std::string signing_key;  // base64-decoded whsec_ secret; empty: deliveries are unsigned

    // Batches (worker/pipeline/fanout.h): `split` names the body's array of events ("events");
    // each element goes out as a delivery of its own, with its own id, retried on its own.
    std::string split;
    // Entity ordering (worker/pipeline/ordering.h): deliveries whose body has the same value at
    // `order_key` go one at a time, in arrival order. With a coalesce window, the updates that
    // queued up behind one go out as a single delivery (the newest body; the ids merged are
    // recorded), those received within the window of the oldest of them together.
    std::string order_key;
    uint64_t coalesce_window_us = 0;

    // The provider's own headers and query string travel with the delivery, so an application
    // moves behind hookq unchanged. Sets are built at load: the delivery loop only looks up.
    bool forward_headers = true;
    NameSet forward_allow;  // empty: every header that is not denied
    NameSet forward_deny;   // the operator's, plus webhook-* when the route signs
    bool forward_query = true;
    NameSet redact_query;  // query arguments never forwarded (secrets)

    // Destination health check (worker/jobs/health_checks.h): probed without the route's secret or
    // any header of a webhook. health_url empty: none.
    std::string health_url;
    uint64_t health_interval_ms = 5 * 60 * 1000;
    uint64_t health_timeout_ms = 5000;
    int health_expect_lo = 200, health_expect_hi = 399;  // statuses counted healthy
};

// One bearer token of the admin API. Only its SHA-256 is kept: the server compares digests, so the
// token itself is not held in memory after start.
struct AdminToken {
    std::string name;  // who acted, in audit_log
    std::string role;  // "viewer" (reads) or "admin" (reads and writes)
    std::string sha256;
    std::vector<std::string> sources;  // empty: every source
};

// [admin]: the HTTP admin API inside hookq-worker. listen empty: no server.
struct AdminConfig {
    std::string listen;  // as written, for messages
    std::string host;    // an IP literal; empty with unix_path set
    int port = 0;
    std::string unix_path;  // "unix:/run/hookq/admin.sock"
    std::vector<AdminToken> tokens;
    // /metrics without a token: for a Prometheus on the same host that has no token to send.
    bool metrics_public = false;
    // metrics_refresh: how often the queue and database gauges of /metrics are refreshed while it
    // is scraped.
    uint64_t metrics_refresh_ms = 5000;
};

// [retention]: how long rows are kept, per table; 0 keeps them forever. webhook_events and
// webhook_routes go together (a webhook and its routes' state). The large tables lose whole
// monthly partitions, so a row lives up to a month past its retention.
struct RetentionConfig {
    uint64_t events_ms = 90ull * 24 * 3600 * 1000;
    uint64_t attempts_ms = 90ull * 24 * 3600 * 1000;
    uint64_t dead_letters_ms = 90ull * 24 * 3600 * 1000;
    uint64_t audit_ms = 365ull * 24 * 3600 * 1000;
    uint64_t alerts_ms = 30ull * 24 * 3600 * 1000;  // alert_events rows
    uint64_t interval_ms = 3600 * 1000;  // how often a worker applies it; 0: never (hookqctl only)
};

// [slo]: when a source or route is degraded or unhealthy (ops/slo.h). A level is reached when the
// value is at or above its threshold. Durations in milliseconds.
struct SloThresholds {
    double error_rate_degraded = 0.01, error_rate_unhealthy = 0.05;
    uint64_t lag_degraded_ms = 2 * 60 * 1000, lag_unhealthy_ms = 10 * 60 * 1000;
    uint64_t failures_degraded = 5, failures_unhealthy = 20;
    uint64_t window_ms = 5 * 60 * 1000;  // of the error rate, the failures and the lag
};
struct SloConfig {
    SloThresholds global;
    // [slo.sources.<name>] / [slo.routes.<name>]: the global thresholds with the keys they set.
    std::map<std::string, SloThresholds> sources, routes;
    const SloThresholds& for_source(const std::string& name) const {
        auto it = sources.find(name);
        return it == sources.end() ? global : it->second;
    }
    const SloThresholds& for_route(const std::string& name) const {
        auto it = routes.find(name);
        return it == routes.end() ? global : it->second;
    }
};

// [alerts]: the in-worker alerting engine (worker/alerts/). Off unless enabled; rules evaluated by
// the one worker holding the Redis lease, notifications through the channels below.
struct AlertChannel {
    std::string name;  // as configured; what rules and severities refer to
    std::string type;  // "slack", "webhook" or "smtp"
    // slack/webhook: the URL to POST to; smtp: smtp://host[:port] or smtps://host[:port]. May hold
    // a token (Slack's URL does): never logged, never in a row.
    std::string url;
    std::string signing_key;         // webhook: base64-decoded whsec_ secret; empty: unsigned
    std::string username, password;  // smtp AUTH, optional
    bool starttls = true;            // smtp://: require STARTTLS before anything is sent
    std::string from;                // smtp
    std::vector<std::string> to;     // smtp
    uint64_t timeout_ms = 10000;     // per try
    double rate_per_s = 6.0 / 60;    // token bucket: rate_limit = "6/min"
    double burst = 6;
};

struct AlertRule {
    bool enabled = true;
    double threshold = 0;
    uint64_t window_ms = 0;
    uint64_t for_ms = 0;
    std::string severity = "P2";
    double min_count = 0;  // failure_ratio: fewer attempts than this in the window never fire
    // failure_ratio only: a second, lower level (labels level=warning) with its own severity,
    // active from warn_threshold up to threshold. 0: none.
    double warn_threshold = 0;
    std::string warn_severity = "P2";
    std::optional<std::vector<std::string>> channels;  // overrides the severity's channels
};

struct AlertsConfig {
    bool enabled = false;
    uint64_t interval_ms = 15000;
    std::string instance;       // named in every message; default: the worker id
    std::string dashboard_url;  // linked from every message
    std::string runbook_url = "https://github.com/hookq/hookq/blob/main/docs/runbooks.md";
    uint64_t group_wait_ms = 30000;
    uint64_t repeat_interval_ms = 4 * 3600 * 1000;
    std::vector<std::string> edge_metrics;  // the edge's hookq_status URLs (signature_failures)
    std::vector<std::string> payment_sources = {"stripe", "paypal"};  // dead letters are P1 there
    std::map<std::string, uint64_t> silent_after;  // source -> ms without a webhook
    std::vector<AlertChannel> channels;
    // Severity -> channel names. Default: P0, P1, P2 every channel; P3 the log only.
    std::map<std::string, std::vector<std::string>> severity_channels;
    std::map<std::string, AlertRule> rules;  // every rule name, defaults filled in
    size_t queue_size = 100;                 // per channel: messages waiting to be sent
};

// The rule names, as in the alerts table and the Prometheus rules.
const std::vector<std::string>& alert_rule_names();

struct Config {
    std::string path;

    std::string worker_id;
    std::vector<std::string> queues;
    uint32_t max_inflight = 2000;
    uint64_t max_inflight_bytes = 256ull << 20;
    uint32_t claim_batch = 200;
    uint64_t heartbeat_ttl_ms = 15000;
    uint64_t reaper_interval_ms = 5000;
    uint64_t retry_poll_ms = 200;
    uint64_t drain_timeout_ms = 30000;
    uint32_t max_connections_per_host = 64;
    std::string log_level = "info";

    std::string redis_host = "127.0.0.1";
    int redis_port = 6379;
    std::string redis_unix;
    // [redis] cluster: seed nodes (host, port) of a Redis Cluster; empty for a single Redis.
    std::vector<std::pair<std::string, int>> redis_cluster;
    std::string redis_password;
    int redis_db = 0;
    uint64_t redis_timeout_ms = 2000;

    std::string postgres_dsn;
    uint32_t record_batch = 500;
    uint64_t record_flush_ms = 5;

    BreakerConfig breaker;
    RetryPolicy default_retry;
    std::map<std::string, SourceConfig> sources;
    std::vector<Route> routes;
    AdminConfig admin;
    RetentionConfig retention;
    SloConfig slo;
    AlertsConfig alerts;

    // Not fatal, said once at start (e.g. a token file other users can read).
    std::vector<std::string> warnings;
};

Config load_config_file(const std::string& path);
// `path` only names the source in error messages.
Config load_config_string(std::string_view text, const std::string& path);

// "http://h:8080/x" -> "http://h:8080"; the default port is made explicit so that one service has
// one breaker whether or not the URL spells its port. nullopt for anything but http(s) URLs.
std::optional<std::string> url_destination(std::string_view url);

// "100/min", "10/s", "5/h" -> per second; nullopt on garbage.
std::optional<double> parse_rate(std::string_view text);

}  // namespace hookq
