#include "worker/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include <toml++/toml.h>

#include "shared/crypto.h"
#include "shared/secret.h"
#include "shared/units.h"

namespace hookq {

namespace {

class Reader {
  public:
    explicit Reader(std::string path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const toml::source_region& where, const std::string& msg) const {
        std::ostringstream os;
        os << path_ << ":" << where.begin.line << ":" << where.begin.column << ": " << msg;
        throw ConfigError(os.str());
    }

    // Every key of a table must be known: a misspelt "max_attemps" silently falling back to the
    // default is exactly the kind of surprise validation exists to prevent.
    void only_keys(const toml::table& t, std::string_view where,
                   std::initializer_list<std::string_view> allowed) const {
        for (auto&& [k, v] : t) {
            bool ok = false;
            for (auto a : allowed) {
                ok = ok || k.str() == a;
            }
            if (!ok) {
                fail(k.source(),
                     "unknown key '" + std::string(k.str()) + "' in " + std::string(where));
            }
        }
    }

    const toml::table* table(const toml::table& t, std::string_view key) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return nullptr;
        }
        if (!n->is_table()) {
            fail(n->source(), "'" + std::string(key) + "' must be a table");
        }
        return n->as_table();
    }

    std::optional<std::string> str(const toml::table& t, std::string_view key) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        if (!n->is_string()) {
            fail(n->source(), "'" + std::string(key) + "' must be a string");
        }
        return n->as_string()->get();
    }

    std::optional<int64_t> integer(const toml::table& t, std::string_view key, int64_t lo,
                                   int64_t hi) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        if (!n->is_integer()) {
            fail(n->source(), "'" + std::string(key) + "' must be an integer");
        }
        int64_t v = n->as_integer()->get();
        if (v < lo || v > hi) {
            fail(n->source(), "'" + std::string(key) + "' must be between " + std::to_string(lo) +
                                  " and " + std::to_string(hi));
        }
        return v;
    }

    std::optional<double> number(const toml::table& t, std::string_view key, double lo,
                                 double hi) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        double v;
        if (n->is_integer()) {
            v = static_cast<double>(n->as_integer()->get());
        } else if (n->is_floating_point()) {
            v = n->as_floating_point()->get();
        } else {
            fail(n->source(), "'" + std::string(key) + "' must be a number");
        }
        if (!(v >= lo && v <= hi)) {
            std::ostringstream os;
            os << "'" << key << "' must be between " << lo << " and " << hi;
            fail(n->source(), os.str());
        }
        return v;
    }

    std::optional<bool> boolean(const toml::table& t, std::string_view key) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        if (!n->is_boolean()) {
            fail(n->source(), "'" + std::string(key) + "' must be true or false");
        }
        return n->as_boolean()->get();
    }

    // Sizes as in nginx ("512k", "256m"); a bare integer means bytes.
    std::optional<uint64_t> size(const toml::table& t, std::string_view key, uint64_t lo,
                                 uint64_t hi) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        std::optional<uint64_t> v;
        if (n->is_integer() && n->as_integer()->get() >= 0) {
            v = static_cast<uint64_t>(n->as_integer()->get());
        } else if (n->is_string()) {
            v = parse_size(n->as_string()->get());
        }
        if (!v) {
            fail(n->source(), "'" + std::string(key) + "' must be a size such as \"256m\"");
        }
        if (*v < lo || *v > hi) {
            fail(n->source(), "'" + std::string(key) + "' must be between " + std::to_string(lo) +
                                  " and " + std::to_string(hi) + " bytes");
        }
        return v;
    }

    // Durations as in nginx ("250ms", "10s", "5m"); a bare integer means seconds.
    std::optional<uint64_t> duration(const toml::table& t, std::string_view key, uint64_t lo_ms,
                                     uint64_t hi_ms) const {
        const toml::node* n = t.get(key);
        if (!n) {
            return std::nullopt;
        }
        std::optional<uint64_t> ms;
        if (n->is_integer() && n->as_integer()->get() >= 0) {
            ms = static_cast<uint64_t>(n->as_integer()->get()) * 1000;
        } else if (n->is_string()) {
            ms = parse_duration_ms(n->as_string()->get());
        }
        if (!ms) {
            fail(n->source(), "'" + std::string(key) + "' must be a duration such as \"10s\"");
        }
        if (*ms < lo_ms || *ms > hi_ms) {
            fail(n->source(), "'" + std::string(key) + "' must be between " + show_ms(lo_ms) +
                                  " and " + show_ms(hi_ms));
        }
        return ms;
    }

    std::vector<std::string> strings(const toml::table& t, std::string_view key) const {
        std::vector<std::string> out;
        const toml::node* n = t.get(key);
        if (!n) {
            return out;
        }
        if (!n->is_array()) {
            fail(n->source(), "'" + std::string(key) + "' must be an array of strings");
        }
        for (const toml::node& e : *n->as_array()) {
            if (!e.is_string()) {
                fail(e.source(), "'" + std::string(key) + "' must be an array of strings");
            }
            out.push_back(e.as_string()->get());
        }
        return out;
    }

    const toml::source_region& where(const toml::table& t, std::string_view key) const {
        const toml::node* n = t.get(key);
        return n ? n->source() : t.source();
    }

  private:
    static std::string show_ms(uint64_t ms) {
        if (ms >= 86400 * 1000 && ms % (86400 * 1000) == 0) {
            return std::to_string(ms / (86400 * 1000)) + "d";
        }
        if (ms % 1000 == 0) {
            return std::to_string(ms / 1000) + "s";
        }
        return std::to_string(ms) + "ms";
    }

    std::string path_;
};

constexpr uint64_t kDay = 24ull * 3600 * 1000;

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

// A control character or a space in a URL is either a typo or an attempt to smuggle a header line
// into the request; curl would refuse it at delivery time, turning every webhook into a dead
// letter.
std::optional<size_t> bad_url_byte(std::string_view url) {
    for (size_t i = 0; i < url.size(); ++i) {
        auto c = static_cast<unsigned char>(url[i]);
        if (c <= 0x20 || c == 0x7f) {
            return i;
        }
    }
    return std::nullopt;
}

std::string url_byte_error(std::string_view key, std::string_view url, size_t at) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(url[at]));
    // The URL itself is not echoed: it may carry credentials.
    return "'" + std::string(key) + "' must not contain spaces or control characters (byte " + hex +
           " at offset " + std::to_string(at) + ")";
}

// Strict: digits only, 1-65535. atoi() took "6379abc" as 6379.
std::optional<int> parse_port(std::string_view p) {
    if (p.empty() || p.size() > 5) {
        return std::nullopt;
    }
    int v = 0;
    for (char c : p) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + (c - '0');
    }
    if (v < 1 || v > 65535) {
        return std::nullopt;
    }
    return v;
}

bool header_token(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) {
            return false;
        }
    }
    return true;
}

NameSet header_names(const Reader& r, const toml::table& rt, std::string_view key,
                     const std::string& ctx) {
    NameSet out;
    for (const auto& n : r.strings(rt, key)) {
        if (!header_token(n)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "' entries must be header " +
                                         "names, not \"" + n + "\"");
        }
        if (never_forwarded(n)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "': " + n +
                                         " is never forwarded (hop-by-hop, or set by hookq)");
        }
        out.insert(n);
    }
    return out;
}

void read_forwarding(const Reader& r, const toml::table& rt, Route& route, const std::string& ctx) {
    route.forward_headers = r.boolean(rt, "forward_headers").value_or(true);
    route.forward_allow = header_names(r, rt, "forward_headers_allow", ctx);
    route.forward_deny = header_names(r, rt, "forward_headers_deny", ctx);
    if (!route.signing_key.empty()) {
        // hookq's own Standard Webhooks signature replaces the provider's.
        route.forward_deny.insert({"webhook-id", "webhook-timestamp", "webhook-signature"});
    }
    route.forward_query = r.boolean(rt, "forward_query").value_or(true);
    if (rt.get("redact_query")) {
        for (const auto& a : r.strings(rt, "redact_query")) {
            if (a.empty() || a.find_first_of("&=#?") != std::string::npos) {
                r.fail(r.where(rt, "redact_query"),
                       ctx + ": 'redact_query' entries must be query argument names");
            }
            route.redact_query.insert(a);
        }
    } else {
        route.redact_query = {"token",   "access_token", "secret",  "signature",
                              "api_key", "apikey",       "password"};
    }
}

// A dotted field path such as "events[].action": no empty step, no bare "[]".
bool field_path_ok(std::string_view path) {
    if (path.empty()) {
        return false;
    }
    for (size_t at = 0; at <= path.size();) {
        size_t dot = std::min(path.find('.', at), path.size());
        std::string_view seg = path.substr(at, dot - at);
        if (seg.empty() || seg == "[]") {
            return false;
        }
        at = dot + 1;
    }
    return true;
}

void read_batches(const Reader& r, const toml::table& rt, Route& route, const std::string& ctx) {
    route.split = r.str(rt, "split").value_or("");
    if (!route.split.empty() &&
        (!field_path_ok(route.split) || route.split.find("[]") != std::string::npos)) {
        r.fail(r.where(rt, "split"), ctx +
                                         ": 'split' must name the body's array of events by a "
                                         "field path without [] such as \"events\"");
    }
    route.order_key = r.str(rt, "order_key").value_or("");
    if (rt.get("order_key") && !field_path_ok(route.order_key)) {
        r.fail(r.where(rt, "order_key"),
               ctx + ": 'order_key' is not a field path such as \"events[].meta.href\"");
    }
    if (rt.get("coalesce_window")) {
        if (route.order_key.empty()) {
            r.fail(r.where(rt, "coalesce_window"),
                   ctx + ": 'coalesce_window' needs 'order_key' (what to coalesce by)");
        }
        route.coalesce_window_us =
            1000 * r.duration(rt, "coalesce_window", 1, 3600 * 1000).value_or(0);
    }
}

// health_url and its schedule. The interval's floor is a second (a probe is one small GET), so
// that a test or a staging setup need not wait minutes; the timeout must end before the next probe.
void read_health_check(const Reader& r, const toml::table& rt, Route& route,
                       const std::string& ctx) {
    route.health_url = r.str(rt, "health_url").value_or("");
    for (std::string_view key : {"health_interval", "health_timeout", "health_expect"}) {
        if (route.health_url.empty() && rt.get(key)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "' needs 'health_url'");
        }
    }
    if (route.health_url.empty()) {
        return;
    }
    if (auto at = bad_url_byte(route.health_url)) {
        r.fail(r.where(rt, "health_url"),
               ctx + ": " + url_byte_error("health_url", route.health_url, *at));
    }
    if (!url_destination(route.health_url)) {
        r.fail(r.where(rt, "health_url"),
               ctx + ": 'health_url' must be an http:// or https:// URL");
    }
    route.health_interval_ms =
        r.duration(rt, "health_interval", 1000, 3600 * 1000).value_or(route.health_interval_ms);
    route.health_timeout_ms =
        r.duration(rt, "health_timeout", 1000, 30 * 1000).value_or(route.health_timeout_ms);
    if (route.health_timeout_ms > route.health_interval_ms) {
        r.fail(r.where(rt, rt.get("health_timeout") ? "health_timeout" : "health_interval"),
               ctx + ": 'health_timeout' must not be longer than 'health_interval'");
    }
    if (const toml::node* n = rt.get("health_expect")) {
        std::optional<std::pair<int, int>> range;
        auto status = [](std::string_view t) -> std::optional<int> {
            int v = 0;
            if (t.size() != 3) {
                return std::nullopt;
            }
            for (char c : t) {
                if (c < '0' || c > '9') {
                    return std::nullopt;
                }
                v = v * 10 + (c - '0');
            }
            return v >= 100 && v <= 599 ? std::optional(v) : std::nullopt;
        };
        if (n->is_integer()) {
            auto v = status(std::to_string(n->as_integer()->get()));
            if (v) {
                range = std::make_pair(*v, *v);
            }
        } else if (n->is_string()) {
            std::string_view t = n->as_string()->get();
            if (t.size() == 3 && t[0] >= '1' && t[0] <= '5' && t.substr(1) == "xx") {
                int h = (t[0] - '0') * 100;
                range = std::make_pair(h, h + 99);
            } else {
                size_t sep = t.find("..");
                size_t len = 2;
                if (sep == std::string_view::npos) {
                    sep = t.find('-');
                    len = 1;
                }
                auto lo = status(t.substr(0, sep));
                auto hi = sep == std::string_view::npos ? lo : status(t.substr(sep + len));
                if (lo && hi && *lo <= *hi) {
                    range = std::make_pair(*lo, *hi);
                }
            }
        }
        if (!range) {
            r.fail(n->source(), ctx +
                                    ": 'health_expect' must be a status (200), a range "
                                    "(\"200..399\") or a class (\"2xx\")");
        }
        route.health_expect_lo = range->first;
        route.health_expect_hi = range->second;
    }
}

// [slo] and its [slo.sources.<name>] / [slo.routes.<name>] overrides, which start from the
// global thresholds. After the routes: an override must name a known source or route.
void read_slo(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* t = r.table(root, "slo");
    if (!t) {
        return;
    }
    auto read = [&](const toml::table& tt, std::string_view ctx, SloThresholds th,
                    bool nested) -> SloThresholds {
        if (nested) {
            r.only_keys(
                tt, ctx,
                {"error_rate_degraded", "error_rate_unhealthy", "lag_degraded", "lag_unhealthy",
                 "failures_degraded", "failures_unhealthy", "window", "sources", "routes"});
        } else {
            r.only_keys(tt, ctx,
                        {"error_rate_degraded", "error_rate_unhealthy", "lag_degraded",
                         "lag_unhealthy", "failures_degraded", "failures_unhealthy", "window"});
        }
        th.error_rate_degraded =
            r.number(tt, "error_rate_degraded", 0.0001, 1.0).value_or(th.error_rate_degraded);
        th.error_rate_unhealthy =
            r.number(tt, "error_rate_unhealthy", 0.0001, 1.0).value_or(th.error_rate_unhealthy);
        th.lag_degraded_ms =
            r.duration(tt, "lag_degraded", 1000, kDay).value_or(th.lag_degraded_ms);
        th.lag_unhealthy_ms =
            r.duration(tt, "lag_unhealthy", 1000, kDay).value_or(th.lag_unhealthy_ms);
        th.failures_degraded =
            static_cast<uint64_t>(r.integer(tt, "failures_degraded", 1, 1000000000)
                                      .value_or(static_cast<int64_t>(th.failures_degraded)));
        th.failures_unhealthy =
            static_cast<uint64_t>(r.integer(tt, "failures_unhealthy", 1, 1000000000)
                                      .value_or(static_cast<int64_t>(th.failures_unhealthy)));
        // The minute rollups are kept 48 h; a window ends at the current (partial) minute.
        th.window_ms = r.duration(tt, "window", 60 * 1000, 24 * 3600 * 1000).value_or(th.window_ms);
        if (th.error_rate_unhealthy < th.error_rate_degraded) {
            r.fail(r.where(tt, "error_rate_unhealthy"),
                   std::string(ctx) +
                       ": 'error_rate_unhealthy' must not be below "
                       "'error_rate_degraded'");
        }
        if (th.lag_unhealthy_ms < th.lag_degraded_ms) {
            r.fail(r.where(tt, "lag_unhealthy"),
                   std::string(ctx) + ": 'lag_unhealthy' must not be below 'lag_degraded'");
        }
        if (th.failures_unhealthy < th.failures_degraded) {
            r.fail(r.where(tt, "failures_unhealthy"),
                   std::string(ctx) +
                       ": 'failures_unhealthy' must not be below "
                       "'failures_degraded'");
        }
        return th;
    };
    c.slo.global = read(*t, "[slo]", c.slo.global, true);
    std::set<std::string> sources, routes;
    for (const auto& rt : c.routes) {
        sources.insert(rt.source);
        routes.insert(rt.name);
    }
    sources.insert(c.queues.begin(), c.queues.end());
    for (auto [kind, known, out] :
         {std::tuple{"sources", &sources, &c.slo.sources}, {"routes", &routes, &c.slo.routes}}) {
        const toml::table* sub = r.table(*t, kind);
        if (!sub) {
            continue;
        }
        for (auto&& [name, node] : *sub) {
            std::string ctx = "[slo." + std::string(kind) + "." + std::string(name.str()) + "]";
            if (!node.is_table()) {
                r.fail(name.source(), ctx + " must be a table");
            }
            if (!known->count(std::string(name.str()))) {
                r.fail(name.source(),
                       ctx + ": no " +
                           std::string(kind == std::string_view("sources") ? "source" : "route") +
                           " '" + std::string(name.str()) + "' is configured");
            }
            (*out)[std::string(name.str())] = read(*node.as_table(), ctx, c.slo.global, false);
        }
    }
}

// [retention]. "off" (or 0) keeps a table forever; otherwise at least a day.
void read_retention(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* t = r.table(root, "retention");
    if (!t) {
        return;
    }
    r.only_keys(*t, "[retention]",
                {"events", "attempts", "dead_letters", "audit", "alerts", "interval"});
    auto read = [&](std::string_view key, uint64_t lo_ms, uint64_t& out) {
        const toml::node* n = t->get(key);
        if (n && ((n->is_string() && n->as_string()->get() == "off") ||
                  (n->is_integer() && n->as_integer()->get() == 0))) {
            out = 0;
            return;
        }
        out = r.duration(*t, key, lo_ms, 100 * 365 * kDay).value_or(out);
    };
    read("events", kDay, c.retention.events_ms);
    read("attempts", kDay, c.retention.attempts_ms);
    read("dead_letters", kDay, c.retention.dead_letters_ms);
    read("audit", kDay, c.retention.audit_ms);
    read("alerts", kDay, c.retention.alerts_ms);
    read("interval", 10 * 1000, c.retention.interval_ms);
}

// [alerts] and its [alerts.rules.<name>], [[alerts.channels]], [alerts.silent_after],
// [alerts.severity_channels]. Defaults follow docs/runbooks.md and conf/prometheus/hookq-rules.yml.
AlertRule alert_rule_default(std::string_view name) {
    constexpr uint64_t s = 1000, m = 60 * 1000;
    AlertRule d;
    auto set = [&](double thr, uint64_t window, uint64_t for_ms, const char* sev) {
        d.threshold = thr;
        d.window_ms = window;
        d.for_ms = for_ms;
        d.severity = sev;
    };
    if (name == "failure_ratio") {
        set(0.05, 5 * m, 2 * m, "P1");
        d.min_count = 20;
        d.warn_threshold = 0.01;
    } else if (name == "dead_letters") {
        set(1, 10 * m, 0, "P2");
    } else if (name == "queue_depth") {
        set(1000, 0, 1 * m, "P2");
    } else if (name == "queue_age") {
        set(300, 0, 1 * m, "P1");
    } else if (name == "retry_overdue") {
        set(1, 1 * m, 1 * m, "P2");
    } else if (name == "breaker_open") {
        set(1, 0, 0, "P1");
    } else if (name == "signature_failures") {
        set(10, 5 * m, 0, "P2");
    } else if (name == "source_silent") {
        set(0, 0, 0, "P2");
    } else if (name == "slow_p95") {
        set(5, 5 * m, 5 * m, "P2");
        d.min_count = 5;
    } else if (name == "slow_delivery") {
        set(30, 5 * m, 0, "P2");
    } else if (name == "fallback_used") {
        set(1, 10 * m, 0, "P2");
    } else if (name == "redis_down" || name == "postgres_down") {
        set(1, 0, 30 * s, "P0");
    } else if (name == "health_check") {
        set(3, 0, 0, "P1");
    } else if (name == "loop_detected") {
        set(1, 0, 0, "P2");
    } else if (name == "queue_unreachable") {
        set(1, 0, 5 * m, "P1");
    } else if (name == "redis_memory") {
        set(0.8, 0, 10 * m, "P2");
    }
    return d;
}

void read_alerts(const Reader& r, const toml::table& root, Config& c) {
    AlertsConfig& al = c.alerts;
    for (const auto& n : alert_rule_names()) {
        al.rules[n] = alert_rule_default(n);
    }
    al.instance = c.worker_id;
    const toml::table* a = r.table(root, "alerts");
    if (!a) {
        return;
    }
    r.only_keys(*a, "[alerts]",
                {"enabled", "interval", "instance", "dashboard_url", "runbook_url", "group_wait",
                 "repeat_interval", "edge_metrics", "payment_sources", "silent_after", "channels",
                 "severity_channels", "rules", "queue_size"});
    al.enabled = r.boolean(*a, "enabled").value_or(true);
    al.interval_ms = r.duration(*a, "interval", 1000, 3600 * 1000).value_or(al.interval_ms);
    al.instance = r.str(*a, "instance").value_or(al.instance);
    al.dashboard_url = r.str(*a, "dashboard_url").value_or("");
    al.runbook_url = r.str(*a, "runbook_url").value_or(al.runbook_url);
    al.group_wait_ms = r.duration(*a, "group_wait", 0, 3600 * 1000).value_or(al.group_wait_ms);
    al.repeat_interval_ms =
        r.duration(*a, "repeat_interval", 60 * 1000, 7 * kDay).value_or(al.repeat_interval_ms);
    al.queue_size = static_cast<size_t>(r.integer(*a, "queue_size", 1, 100000).value_or(100));
    al.edge_metrics = r.strings(*a, "edge_metrics");
    for (const auto& u : al.edge_metrics) {
        if (!url_destination(u)) {
            r.fail(r.where(*a, "edge_metrics"),
                   "[alerts] 'edge_metrics' entries must be http:// or https:// URLs");
        }
    }
    if (a->get("payment_sources")) {
        al.payment_sources = r.strings(*a, "payment_sources");
    }
    if (const toml::table* sa = r.table(*a, "silent_after")) {
        for (auto&& [k, v] : *sa) {
            al.silent_after[std::string(k.str())] = *r.duration(*sa, k.str(), 1000, 30 * kDay);
        }
    }
    std::set<std::string> channel_names;
    if (const toml::node* chn = a->get("channels")) {
        if (!chn->is_array_of_tables()) {
            r.fail(chn->source(),
                   "[alerts] 'channels' must be an array of tables "
                   "([[alerts.channels]])");
        }
        for (const toml::node& cn : *chn->as_array()) {
            const toml::table& ct = *cn.as_table();
            AlertChannel ch;
            ch.name = r.str(ct, "name").value_or("");
            std::string ctx = "[[alerts.channels]] '" + ch.name + "'";
            r.only_keys(ct, ctx,
                        {"name", "type", "url", "secret", "username", "password", "starttls",
                         "from", "to", "timeout", "rate_limit", "burst"});
            if (ch.name.empty() || !channel_names.insert(ch.name).second) {
                r.fail(r.where(ct, "name"), ctx + " needs a unique non-empty 'name'");
            }
            ch.type = r.str(ct, "type").value_or("");
            if (ch.type != "slack" && ch.type != "webhook" && ch.type != "smtp") {
                r.fail(r.where(ct, "type"), ctx + ": 'type' must be slack, webhook or smtp");
            }
            auto secret = [&](std::string_view key) -> std::string {
                auto spec = r.str(ct, key);
                if (!spec) {
                    return "";
                }
                std::string err;
                auto v = load_secret(*spec, err);
                if (!v) {
                    r.fail(r.where(ct, key), ctx + ": '" + std::string(key) + "': " + err);
                }
                return *v;
            };
            // A URL as written, or a secret reference (Slack's URL is a credential).
            if (auto u = r.str(ct, "url"); u && !u->starts_with("file:") &&
                                           !u->starts_with("env:") && !u->starts_with("literal:")) {
                ch.url = *u;
            } else {
                ch.url = secret("url");
            }
            if (auto at = bad_url_byte(ch.url)) {
                r.fail(r.where(ct, "url"), ctx + ": " + url_byte_error("url", ch.url, *at));
            }
            bool smtp = ch.type == "smtp";
            bool url_ok = smtp ? (ch.url.starts_with("smtp://") || ch.url.starts_with("smtps://"))
                               : url_destination(ch.url).has_value();
            if (!url_ok) {
                r.fail(r.where(ct, "url"),
                       ctx + (smtp ? ": 'url' must be smtp://host[:port] or smtps://host[:port]"
                                   : ": 'url' must be an http:// or https:// URL"));
            }
            if (std::string s = secret("secret"); !s.empty()) {
                auto key =
                    s.starts_with("whsec_") ? crypto::base64_decode(s.substr(6)) : std::nullopt;
                if (ch.type != "webhook" || !key || key->empty()) {
                    r.fail(r.where(ct, "secret"),
                           ctx + ": 'secret' is for webhook channels, a whsec_<base64> secret");
                }
                ch.signing_key = *key;
            }
            ch.username = r.str(ct, "username").value_or("");
            ch.password = secret("password");
            ch.starttls = r.boolean(ct, "starttls").value_or(true);
            ch.from = r.str(ct, "from").value_or("");
            ch.to = r.strings(ct, "to");
            auto mailbox_ok = [](const std::string& m) {
                return m.find('@') != std::string::npos &&
                       m.find_first_of("<>\r\n \t,") == std::string::npos;
            };
            if (smtp) {
                if (!mailbox_ok(ch.from)) {
                    r.fail(r.where(ct, "from"), ctx + ": 'from' must be an address user@host");
                }
                if (ch.to.empty()) {
                    r.fail(r.where(ct, "to"), ctx + ": 'to' must list at least one address");
                }
                for (const auto& t : ch.to) {
                    if (!mailbox_ok(t)) {
                        r.fail(r.where(ct, "to"), ctx +
                                                      ": 'to' entries must be addresses "
                                                      "user@host, not \"" +
                                                      t + "\"");
                    }
                }
            } else if (ct.get("from") || ct.get("to") || ct.get("username") || ct.get("password") ||
                       ct.get("starttls")) {
                r.fail(ct.source(), ctx +
                                        ": from, to, username, password and starttls are for "
                                        "smtp channels");
            }
            ch.timeout_ms = r.duration(ct, "timeout", 1000, 60 * 1000).value_or(ch.timeout_ms);
            if (auto rl = r.str(ct, "rate_limit")) {
                auto per_s = parse_rate(*rl);
                if (!per_s) {
                    r.fail(r.where(ct, "rate_limit"),
                           ctx + ": 'rate_limit' must look like \"6/min\", \"1/s\" or \"30/h\"");
                }
                ch.rate_per_s = *per_s;
                ch.burst = std::max(1.0, std::floor(*per_s * 60));
            }
            ch.burst = r.number(ct, "burst", 1, 10000).value_or(ch.burst);
            al.channels.push_back(std::move(ch));
        }
    }
    auto check_channels = [&](const toml::table& t, std::string_view key, std::string ctx) {
        auto list = r.strings(t, key);
        for (const auto& n : list) {
            if (!channel_names.count(n)) {
                r.fail(r.where(t, key),
                       ctx + ": no channel named '" + n + "' in [[alerts.channels]]");
            }
        }
        return list;
    };
    for (const char* sev : {"P0", "P1", "P2"}) {
        al.severity_channels[sev] = {channel_names.begin(), channel_names.end()};
    }
    al.severity_channels["P3"] = {};
    if (const toml::table* sc = r.table(*a, "severity_channels")) {
        r.only_keys(*sc, "[alerts.severity_channels]", {"P0", "P1", "P2", "P3"});
        for (auto&& [k, v] : *sc) {
            al.severity_channels[std::string(k.str())] =
                check_channels(*sc, k.str(), "[alerts.severity_channels]");
        }
    }
    if (const toml::table* rs = r.table(*a, "rules")) {
        for (auto&& [k, v] : *rs) {
            std::string name(k.str());
            std::string ctx = "[alerts.rules." + name + "]";
            if (!al.rules.count(name)) {
                r.fail(k.source(), "unknown alert rule '" + name + "' in [alerts.rules]");
            }
            const toml::table* t = r.table(*rs, k.str());
            r.only_keys(*t, ctx,
                        {"enabled", "threshold", "window", "for", "severity", "min_count",
                         "channels", "warn_threshold", "warn_severity"});
            AlertRule& rule = al.rules[name];
            rule.enabled = r.boolean(*t, "enabled").value_or(true);
            rule.threshold = r.number(*t, "threshold", 0, 1e12).value_or(rule.threshold);
            if (name == "failure_ratio" && rule.threshold > 1) {
                r.fail(r.where(*t, "threshold"), ctx + ": 'threshold' is a ratio, 0 to 1");
            }
            rule.window_ms = r.duration(*t, "window", 1000, 7 * kDay).value_or(rule.window_ms);
            rule.for_ms = r.duration(*t, "for", 0, kDay).value_or(rule.for_ms);
            rule.min_count = r.number(*t, "min_count", 0, 1e12).value_or(rule.min_count);
            if (auto sev = r.str(*t, "severity")) {
                if (*sev != "P0" && *sev != "P1" && *sev != "P2" && *sev != "P3") {
                    r.fail(r.where(*t, "severity"), ctx + ": 'severity' must be P0, P1, P2 or P3");
                }
                rule.severity = *sev;
            }
            if (t->get("channels")) {
                rule.channels = check_channels(*t, "channels", ctx);
            }
            if ((t->get("warn_threshold") || t->get("warn_severity")) && name != "failure_ratio") {
                r.fail(t->source(), ctx +
                                        ": 'warn_threshold' and 'warn_severity' are for "
                                        "failure_ratio");
            }
            rule.warn_threshold =
                r.number(*t, "warn_threshold", 0, 1).value_or(rule.warn_threshold);
            if (rule.warn_threshold >= rule.threshold) {
                rule.warn_threshold = t->get("warn_threshold") ? rule.warn_threshold : 0;
                if (rule.warn_threshold) {
                    r.fail(r.where(*t, "warn_threshold"),
                           ctx + ": 'warn_threshold' must be below 'threshold' (0: none)");
                }
            }
            if (auto sev = r.str(*t, "warn_severity")) {
                if (*sev != "P0" && *sev != "P1" && *sev != "P2" && *sev != "P3") {
                    r.fail(r.where(*t, "warn_severity"),
                           ctx + ": 'warn_severity' must be P0, P1, P2 or P3");
                }
                rule.warn_severity = *sev;
            }
        }
    }
}

constexpr uint64_t kMinTokenBytes = 16;

// A bearer token file others can read hands out the admin API. Group-readable is the usual way to
// give a root-owned file to the worker's own group (root:hookq 0640), so only a group other than
// the process's own counts. Names the file, never its content.
std::string token_file_warning(const std::string& spec) {
    if (!spec.starts_with("file:")) {
        return "";
    }
    const std::string path = spec.substr(5);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return "";  // load_secret has already said why it cannot be read
    }
    bool others = (st.st_mode & S_IROTH) != 0;
    bool group = (st.st_mode & S_IRGRP) != 0 && st.st_gid != ::getegid();
    if (!others && !group) {
        return "";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "token file \"" + path + "\" (mode " + mode + ") is readable by " +
           (others ? std::string("every user of this host") : std::string("its group")) +
           "; chmod 600 it (or 640 with the worker's group)";
}

// [admin] and its [[admin.tokens]]. After the routes: a token's sources are checked against them.
void read_admin(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* a = r.table(root, "admin");
    if (!a) {
        return;
    }
    r.only_keys(*a, "[admin]", {"listen", "tokens", "metrics_public", "metrics_refresh"});
    AdminConfig& ad = c.admin;
    ad.listen = r.str(*a, "listen").value_or("127.0.0.1:9187");
    if (ad.listen.starts_with("unix:")) {
        ad.unix_path = ad.listen.substr(5);
        if (ad.unix_path.empty() || ad.unix_path[0] != '/') {
            r.fail(r.where(*a, "listen"), "'listen' unix: needs an absolute path");
        }
    } else if (!ad.listen.empty()) {
        // An IP literal, not a name: what the server binds to is then exactly what the file says.
        std::string_view l = ad.listen;
        size_t colon = l.rfind(':');
        std::string host(l.substr(0, colon == std::string_view::npos ? 0 : colon));
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        unsigned char buf[16];
        int port = 0;
        bool ok = colon != std::string_view::npos && colon + 1 < l.size() && colon + 6 >= l.size();
        for (size_t i = colon + 1; ok && i < l.size(); ++i) {
            ok = l[i] >= '0' && l[i] <= '9';
            port = port * 10 + (l[i] - '0');
        }
        if (host == "localhost") {
            host = "127.0.0.1";
        }
        if (!ok || port < 1 || port > 65535 ||
            (inet_pton(AF_INET, host.c_str(), buf) != 1 &&
             inet_pton(AF_INET6, host.c_str(), buf) != 1)) {
            r.fail(r.where(*a, "listen"),
                   "'listen' must be IP:port (\"127.0.0.1:9187\", \"[::1]:9187\"), "
                   "unix:/path, or \"\" to disable the admin API");
        }
        ad.host = host;
        ad.port = port;
    }
    ad.metrics_public = r.boolean(*a, "metrics_public").value_or(false);
    ad.metrics_refresh_ms =
        r.duration(*a, "metrics_refresh", 100, 3600 * 1000).value_or(ad.metrics_refresh_ms);

    const toml::node* tn = a->get("tokens");
    if (!tn) {
        return;
    }
    if (!tn->is_array_of_tables()) {
        r.fail(tn->source(), "'admin.tokens' must be an array of tables ([[admin.tokens]])");
    }
    std::set<std::string> known_sources;
    for (const auto& rt : c.routes) {
        known_sources.insert(rt.source);
    }
    for (const auto& [name, sc] : c.sources) {
        known_sources.insert(name);
    }
    std::set<std::string> names, digests;
    for (const toml::node& n : *tn->as_array()) {
        const toml::table& t = *n.as_table();
        AdminToken tok;
        tok.name = r.str(t, "name").value_or("");
        std::string ctx = "[[admin.tokens]] '" + tok.name + "'";
        r.only_keys(t, ctx, {"name", "role", "token", "sources"});
        if (tok.name.empty() || tok.name.size() > 64 ||
            tok.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789._-@") != std::string::npos) {
            r.fail(t.source(),
                   "[[admin.tokens]] needs a 'name' of letters, digits and . _ - @ "
                   "(at most 64): it is the actor in the audit log");
        }
        if (!names.insert(tok.name).second) {
            r.fail(r.where(t, "name"), "duplicate admin token name '" + tok.name + "'");
        }
        tok.role = r.str(t, "role").value_or("");
        if (tok.role != "viewer" && tok.role != "admin") {
            r.fail(r.where(t, "role"), ctx + ": 'role' must be \"viewer\" or \"admin\"");
        }
        auto spec = r.str(t, "token");
        if (!spec) {
            r.fail(t.source(), ctx + " needs 'token' (file:/path or env:NAME)");
        }
        std::string err;
        auto secret = load_secret(*spec, err);
        if (!secret) {
            r.fail(r.where(t, "token"), ctx + ": 'token': " + err);
        }
        if (auto w = token_file_warning(*spec); !w.empty()) {
            c.warnings.push_back(ctx + ": " + w);
        }
        // A bearer token is the whole credential: short ones can be guessed over the network.
        if (secret->size() < kMinTokenBytes) {
            r.fail(r.where(t, "token"), ctx + ": 'token' must be at least " +
                                            std::to_string(kMinTokenBytes) +
                                            " characters (e.g. openssl rand -hex 32)");
        }
        unsigned char d[32];
        crypto::sha256(*secret, d);
        tok.sha256.assign(reinterpret_cast<const char*>(d), sizeof d);
        if (!digests.insert(tok.sha256).second) {
            r.fail(r.where(t, "token"),
                   ctx +
                       ": the same token as another entry (the audit log could not tell them "
                       "apart)");
        }
        if (t.get("sources")) {
            tok.sources = r.strings(t, "sources");
            if (tok.sources.empty()) {
                r.fail(r.where(t, "sources"),
                       ctx + ": 'sources' is empty (omit it for every source)");
            }
            for (const auto& s : tok.sources) {
                if (!known_sources.count(s)) {
                    r.fail(r.where(t, "sources"),
                           ctx + ": unknown source '" + s + "' (no route or [sources] names it)");
                }
            }
        }
        ad.tokens.push_back(std::move(tok));
    }
}

std::string hostname_pid() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace

bool never_forwarded(std::string_view name) noexcept {
    static const NameSet fixed = {"connection",     "keep-alive",        "te",
                                  "trailer",        "transfer-encoding", "upgrade",
                                  "host",           "content-length",    "expect",
                                  "http2-settings", "content-type",      "accept-encoding",
                                  "x-request-id",   "x-retry-attempt",   "x-max-attempts",
                                  "x-timeout-ms"};
    auto prefixed = [&](std::string_view p) {
        return name.size() >= p.size() && CaseInsensitiveEqual{}(name.substr(0, p.size()), p);
    };
    return prefixed("proxy-") || prefixed("x-hookq-") || fixed.count(name) != 0;
}

std::optional<std::string> url_destination(std::string_view url) {
    std::string_view scheme;
    uint16_t port;
    if (url.starts_with("http://")) {
        scheme = "http";
        port = 80;
    } else if (url.starts_with("https://")) {
        scheme = "https";
        port = 443;
    } else {
        return std::nullopt;
    }
    std::string_view rest = url.substr(scheme.size() + 3);
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);
    }
    if (authority.empty()) {
        return std::nullopt;
    }
    std::string_view host = authority;
    size_t colon = authority.rfind(':');
    size_t bracket = authority.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
        host = authority.substr(0, colon);
        std::string_view p = authority.substr(colon + 1);
        if (p.empty() || p.size() > 5) {
            return std::nullopt;
        }
        uint32_t v = 0;
        for (char c : p) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            v = v * 10 + static_cast<uint32_t>(c - '0');
        }
        if (v == 0 || v > 65535) {
            return std::nullopt;
        }
        port = static_cast<uint16_t>(v);
    }
    if (host.empty()) {
        return std::nullopt;
    }
    std::string h(host);
    for (char& c : h) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return std::string(scheme) + "://" + h + ":" + std::to_string(port);
}

const std::vector<std::string>& alert_rule_names() {
    static const std::vector<std::string> names = {
        "failure_ratio",     "dead_letters",       "queue_depth",   "queue_age",    "retry_overdue",
        "breaker_open",      "signature_failures", "source_silent", "slow_p95",     "slow_delivery",
        "fallback_used",     "redis_down",         "postgres_down", "health_check", "loop_detected",
        "queue_unreachable", "redis_memory"};
    return names;
}

std::optional<double> parse_rate(std::string_view text) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0) {
        return std::nullopt;
    }
    double count = 0;
    for (char c : text.substr(0, slash)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        count = count * 10 + (c - '0');
    }
    std::string_view unit = text.substr(slash + 1);
    double period;
    if (unit == "s" || unit == "sec" || unit == "second") {
        period = 1;
    } else if (unit == "m" || unit == "min" || unit == "minute") {
        period = 60;
    } else if (unit == "h" || unit == "hour") {
        period = 3600;
    } else {
        return std::nullopt;
    }
    if (count <= 0 || count > 1e9) {
        return std::nullopt;
    }
    return count / period;
}

Config load_config_string(std::string_view text, const std::string& path) {
    Reader r(path);
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        r.fail(e.source(), std::string(e.description()));
    }

    Config c;
    c.path = path;
    r.only_keys(root, "the top level",
                {"worker", "redis", "postgres", "breaker", "retry", "sources", "routes", "admin",
                 "retention", "slo", "alerts"});

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

    const toml::table* redis = r.table(root, "redis");
    if (redis) {
        r.only_keys(*redis, "[redis]", {"address", "cluster", "password", "db", "timeout"});
        // "host:port", "[::1]:6379" (the brackets only delimit the address from the port).
        auto host_port = [](std::string_view a) -> std::optional<std::pair<std::string, int>> {
            size_t colon = a.rfind(':');
            if (colon == std::string_view::npos) {
                return std::nullopt;
            }
            std::string host(a.substr(0, colon));
            std::optional<int> port = parse_port(a.substr(colon + 1));
            if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
                host = host.substr(1, host.size() - 2);
            }
            if (!port || host.empty() || host.find_first_of("[] \t\r\n") != std::string::npos) {
                return std::nullopt;
            }
            return std::pair{host, *port};
        };
        if (auto a = r.str(*redis, "address")) {
            if (redis->contains("cluster")) {
                r.fail(r.where(*redis, "cluster"),
                       "[redis] 'cluster' and 'address' are mutually exclusive: 'address' is one "
                       "Redis, 'cluster' the seed nodes of a Redis Cluster");
            }
            if (a->starts_with("unix:")) {
                c.redis_unix = a->substr(5);
            } else {
                auto hp = host_port(*a);
                if (!hp) {
                    r.fail(r.where(*redis, "address"),
                           "'address' must be host:port (port 1-65535) or unix:/path/to/socket");
                }
                c.redis_host = hp->first;
                c.redis_port = hp->second;
            }
        }
        if (redis->contains("cluster")) {
            std::vector<std::string> seeds = r.strings(*redis, "cluster");
            if (seeds.empty()) {
                r.fail(r.where(*redis, "cluster"),
                       "[redis] 'cluster' must list at least one seed node (host:port)");
            }
            for (const std::string& seed : seeds) {
                auto hp = host_port(seed);
                if (!hp) {
                    r.fail(r.where(*redis, "cluster"), "[redis] 'cluster': '" + seed +
                                                           "' must be host:port (port 1-65535); "
                                                           "a cluster is reached over TCP only");
                }
                c.redis_cluster.push_back(*hp);
            }
        }
        if (auto p = r.str(*redis, "password")) {
            std::string err;
            auto s = load_secret(*p, err);
            if (!s) {
                r.fail(r.where(*redis, "password"), "'password': " + err);
            }
            c.redis_password = *s;
        }
        c.redis_db = static_cast<int>(r.integer(*redis, "db", 0, 1000).value_or(0));
        if (c.redis_db != 0 && !c.redis_cluster.empty()) {
            r.fail(r.where(*redis, "db"),
                   "[redis] 'db' must be 0 with 'cluster': Redis Cluster has database 0 only");
        }
        c.redis_timeout_ms = r.duration(*redis, "timeout", 50, 60000).value_or(c.redis_timeout_ms);
    }

    const toml::table* pg = r.table(root, "postgres");
    if (!pg) {
        r.fail(root.source(), "missing table [postgres] (with 'dsn')");
    }
    r.only_keys(*pg, "[postgres]", {"dsn", "batch_size", "flush_interval"});
    c.postgres_dsn = r.str(*pg, "dsn").value_or("");
    if (c.postgres_dsn.empty()) {
        r.fail(pg->source(), "[postgres] needs 'dsn'");
    }
    c.record_batch =
        static_cast<uint32_t>(r.integer(*pg, "batch_size", 1, 4000).value_or(c.record_batch));
    c.record_flush_ms = r.duration(*pg, "flush_interval", 1, 10000).value_or(c.record_flush_ms);

    if (const toml::table* b = r.table(root, "breaker")) {
        r.only_keys(*b, "[breaker]", {"failure_threshold", "window", "open_for", "close_after"});
        c.breaker.failure_threshold = static_cast<uint32_t>(
            r.integer(*b, "failure_threshold", 1, 1000).value_or(c.breaker.failure_threshold));
        c.breaker.window_ms = r.duration(*b, "window", 1000, kDay).value_or(c.breaker.window_ms);
        c.breaker.open_ms = r.duration(*b, "open_for", 100, kDay).value_or(c.breaker.open_ms);
        c.breaker.close_after = static_cast<uint32_t>(
            r.integer(*b, "close_after", 1, 1000).value_or(c.breaker.close_after));
    }
    if (const toml::table* t = r.table(root, "retry")) {
        c.default_retry = read_retry(r, *t, c.default_retry, "[retry]");
    }

    // The heartbeat goes out every third of its TTL; one that hangs for the whole Redis timeout
    // must still leave time for the next before the TTL runs out, or another worker requeues (and
    // delivers again) what this one is delivering.
    if (c.redis_timeout_ms * 3 > c.heartbeat_ttl_ms * 2) {
        const toml::node* at = root.at_path("worker.heartbeat_ttl").node();
        if (!at) {
            at = root.at_path("redis.timeout").node();
        }
        r.fail(at ? at->source() : root.source(),
               "[worker] 'heartbeat_ttl' must be at least 1.5 times [redis] 'timeout' (" +
                   std::to_string(c.heartbeat_ttl_ms) + "ms against " +
                   std::to_string(c.redis_timeout_ms) + "ms)");
    }

    if (const toml::table* s = r.table(root, "sources")) {
        for (auto&& [name, node] : *s) {
            if (!node.is_table()) {
                r.fail(name.source(), "sources." + std::string(name.str()) + " must be a table");
            }
            const toml::table& st = *node.as_table();
            std::string ctx = "[sources." + std::string(name.str()) + "]";
            r.only_keys(st, ctx, {"event_header", "event_field"});
            SourceConfig sc;
            sc.event_header = r.str(st, "event_header").value_or("");
            sc.event_field = r.str(st, "event_field").value_or("");
            if (!sc.event_header.empty() && !sc.event_field.empty()) {
                r.fail(st.source(), ctx + ": set 'event_header' or 'event_field', not both");
            }
            c.sources[std::string(name.str())] = sc;
        }
    }

    const toml::node* routes = root.get("routes");
    if (!routes) {
        r.fail(root.source(), "no [[routes]]: the worker would have nowhere to deliver");
    }
    if (!routes->is_array_of_tables()) {
        r.fail(routes->source(), "'routes' must be an array of tables ([[routes]])");
    }
    std::set<std::string> names;
    for (const toml::node& rn : *routes->as_array()) {
        const toml::table& rt = *rn.as_table();
        Route route;
        route.index = c.routes.size();
        route.name = r.str(rt, "name").value_or("");
        std::string ctx = "[[routes]] '" + route.name + "'";
        r.only_keys(rt, ctx,
                    {"name",
                     "source",
                     "events",
                     "match",
                     "url",
                     "timeout",
                     "retry",
                     "rate_limit",
                     "fallback_url",
                     "secret",
                     "forward_headers",
                     "forward_headers_allow",
                     "forward_headers_deny",
                     "forward_query",
                     "redact_query",
                     "health_url",
                     "health_interval",
                     "health_timeout",
                     "health_expect",
                     "split",
                     "order_key",
                     "coalesce_window"});
        if (route.name.empty()) {
            r.fail(rt.source(), "[[routes]] needs a non-empty 'name'");
        }
        if (!names.insert(route.name).second) {
            r.fail(r.where(rt, "name"), "duplicate route name '" + route.name + "'");
        }
        route.source = r.str(rt, "source").value_or("");
        if (route.source.empty()) {
            r.fail(rt.source(), ctx + " needs 'source'");
        }
        // The source names the default queue, whose keys carry it as the hash tag {Q}: a brace
        // would end the tag early and put the queue's keys in different slots.
        if (route.source.find_first_of("{}") != std::string::npos) {
            r.fail(r.where(rt, "source"), ctx + ": 'source' must not contain '{' or '}'");
        }
        route.events = r.strings(rt, "events");
        if (const toml::table* mt = r.table(rt, "match")) {
            for (const auto& [key, node] : *mt) {
                FieldMatch m{std::string(key.str()), {}};
                if (!field_path_ok(m.path)) {
                    r.fail(key.source(), ctx + ": 'match' key \"" + m.path +
                                             "\" is not a field path such as \"events[].action\"");
                }
                if (node.is_string()) {
                    m.values.push_back(node.as_string()->get());
                } else {
                    m.values = r.strings(*mt, key.str());
                }
                if (m.values.empty()) {
                    r.fail(node.source(),
                           ctx + ": 'match' \"" + m.path +
                               "\" must be a string or a non-empty array of strings");
                }
                route.match.push_back(std::move(m));
            }
        }
        route.url = r.str(rt, "url").value_or("");
        if (auto at = bad_url_byte(route.url)) {
            r.fail(r.where(rt, "url"), ctx + ": " + url_byte_error("url", route.url, *at));
        }
        auto dest = url_destination(route.url);
        if (!dest) {
            r.fail(r.where(rt, "url"), ctx + ": 'url' must be an http:// or https:// URL");
        }
        route.destination = *dest;
        route.fallback_url = r.str(rt, "fallback_url").value_or("");
        if (auto at = bad_url_byte(route.fallback_url)) {
            r.fail(r.where(rt, "fallback_url"),
                   ctx + ": " + url_byte_error("fallback_url", route.fallback_url, *at));
        }
        if (!route.fallback_url.empty() && !url_destination(route.fallback_url)) {
            r.fail(r.where(rt, "fallback_url"),
                   ctx + ": 'fallback_url' must be an http:// or https:// URL");
        }
        // Up to 5 minutes for applications that process inline; such a transfer holds one of
        // the loop's slots for as long, and a drain cut short by drain_timeout redelivers it.
        route.timeout_ms = r.duration(rt, "timeout", 1000, 300000).value_or(10000);
        route.retry = c.default_retry;
        if (const toml::table* rr = r.table(rt, "retry")) {
            route.retry = read_retry(r, *rr, c.default_retry, ctx + ".retry");
        }
        if (auto rl = r.str(rt, "rate_limit")) {
            auto per_s = parse_rate(*rl);
            if (!per_s) {
                r.fail(r.where(rt, "rate_limit"),
                       ctx + ": 'rate_limit' must look like \"100/min\", \"10/s\" or \"5/h\"");
            }
            route.rate_limit = RateLimit{*per_s, std::max(1.0, std::floor(*per_s))};
        }
        if (auto spec = r.str(rt, "secret")) {
            std::string err;
            auto secret = load_secret(*spec, err);
            if (!secret) {
                r.fail(r.where(rt, "secret"), ctx + ": 'secret': " + err);
            }
            std::string_view s = *secret;
            if (!s.starts_with("whsec_")) {
                r.fail(r.where(rt, "secret"), ctx + ": 'secret' must be a whsec_<base64> secret");
            }
            auto key = crypto::base64_decode(s.substr(6));
            if (!key || key->empty()) {
                r.fail(r.where(rt, "secret"),
                       ctx + ": 'secret' is not valid base64 after the whsec_ prefix");
            }
            route.signing_key = *key;
        }
        read_forwarding(r, rt, route, ctx);
        read_health_check(r, rt, route, ctx);
        read_batches(r, rt, route, ctx);
        c.routes.push_back(std::move(route));
    }
    read_admin(r, root, c);
    read_retention(r, root, c);
    read_alerts(r, root, c);

    if (c.queues.empty()) {
        std::set<std::string> seen;
        for (const auto& rt : c.routes) {
            if (seen.insert(rt.source).second) {
                c.queues.push_back(rt.source);
            }
        }
    }
    read_slo(r, root, c);
    return c;
}

Config load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(path + ":0:0: cannot open the configuration file");
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_config_string(ss.str(), path);
}

}  // namespace hookq
