#include "worker/config/sections.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "shared/crypto.h"
#include "shared/secret.h"

namespace hookq {

const std::vector<std::string>& alert_rule_names() {
    static const std::vector<std::string> names = {
        "failure_ratio",     "dead_letters",       "queue_depth",   "queue_age",    "retry_overdue",
        "breaker_open",      "signature_failures", "source_silent", "slow_p95",     "slow_delivery",
        "fallback_used",     "redis_down",         "postgres_down", "health_check", "loop_detected",
        "queue_unreachable", "redis_memory"};
    return names;
}

namespace config_detail {

namespace {

// Defaults follow docs/runbooks.md and conf/prometheus/hookq-rules.yml.
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

// [alerts]'s own keys, those that are not sub-tables.
void read_alerts_settings(const Reader& r, const toml::table& a, AlertsConfig& al) {
    al.enabled = r.boolean(a, "enabled").value_or(true);
    al.interval_ms = r.duration(a, "interval", 1000, 3600 * 1000).value_or(al.interval_ms);
    al.instance = r.str(a, "instance").value_or(al.instance);
    al.dashboard_url = r.str(a, "dashboard_url").value_or("");
    al.runbook_url = r.str(a, "runbook_url").value_or(al.runbook_url);
    al.group_wait_ms = r.duration(a, "group_wait", 0, 3600 * 1000).value_or(al.group_wait_ms);
    al.repeat_interval_ms =
        r.duration(a, "repeat_interval", 60 * 1000, 7 * kDay).value_or(al.repeat_interval_ms);
    al.queue_size = static_cast<size_t>(r.integer(a, "queue_size", 1, 100000).value_or(100));
    al.edge_metrics = r.strings(a, "edge_metrics");
    for (const auto& u : al.edge_metrics) {
        if (!url_destination(u)) {
            r.fail(r.where(a, "edge_metrics"),
                   "[alerts] 'edge_metrics' entries must be http:// or https:// URLs");
        }
        if (auto at = bad_url_byte(u)) {
            r.fail(r.where(a, "edge_metrics"),
                   "[alerts] " + url_byte_error("edge_metrics", u, *at));
        }
    }
    if (a.get("payment_sources")) {
        al.payment_sources = r.strings(a, "payment_sources");
    }
}

// [alerts.silent_after]: source -> how long without a webhook before source_silent fires.
void read_silent_after(const Reader& r, const toml::table& a, Config& c) {
    const toml::table* sa = r.table(a, "silent_after");
    if (!sa) {
        return;
    }
    // A misspelt source would leave the real one unwatched and alert on the name for ever.
    const std::set<std::string> known = known_sources(c);
    for (auto&& [k, v] : *sa) {
        if (!known.count(std::string(k.str()))) {
            r.fail(k.source(), "[alerts.silent_after]: unknown source '" + std::string(k.str()) +
                                   "' (no route or [sources] names it)");
        }
        c.alerts.silent_after[std::string(k.str())] = *r.duration(*sa, k.str(), 1000, 30 * kDay);
    }
}

// A channel's credential: a secret reference (file:, env:, literal:) as shared/secret.h reads it.
// "" when `key` is left out.
std::string channel_secret(const Reader& r, const toml::table& ct, std::string_view key,
                           const std::string& ctx) {
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
}

void read_channel_url(const Reader& r, const toml::table& ct, AlertChannel& ch,
                      const std::string& ctx) {
    // A URL as written, or a secret reference (Slack's URL is a credential).
    if (auto u = r.str(ct, "url");
        u && !u->starts_with("file:") && !u->starts_with("env:") && !u->starts_with("literal:")) {
        ch.url = *u;
    } else {
        ch.url = channel_secret(r, ct, "url", ctx);
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
}

void read_channel_signing_key(const Reader& r, const toml::table& ct, AlertChannel& ch,
                              const std::string& ctx) {
    std::string s = channel_secret(r, ct, "secret", ctx);
    if (s.empty()) {
        return;
    }
    auto key = s.starts_with("whsec_") ? crypto::base64_decode(s.substr(6)) : std::nullopt;
    if (ch.type != "webhook" || !key || key->empty()) {
        r.fail(r.where(ct, "secret"),
               ctx + ": 'secret' is for webhook channels, a whsec_<base64> secret");
    }
    ch.signing_key = *key;
}

// username, password, starttls, from, to: read for every type, allowed only for smtp.
void read_channel_mail(const Reader& r, const toml::table& ct, AlertChannel& ch,
                       const std::string& ctx) {
    ch.username = r.str(ct, "username").value_or("");
    ch.password = channel_secret(r, ct, "password", ctx);
    ch.starttls = r.boolean(ct, "starttls").value_or(true);
    ch.from = r.str(ct, "from").value_or("");
    ch.to = r.strings(ct, "to");
    // The addresses go into the message's headers: no second address, no line break.
    auto mailbox_ok = [](const std::string& m) {
        return m.find('@') != std::string::npos &&
               m.find_first_of("<>\r\n \t,") == std::string::npos;
    };
    if (ch.type != "smtp") {
        if (ct.get("from") || ct.get("to") || ct.get("username") || ct.get("password") ||
            ct.get("starttls")) {
            r.fail(ct.source(),
                   ctx + ": from, to, username, password and starttls are for smtp channels");
        }
        return;
    }
    if (!mailbox_ok(ch.from)) {
        r.fail(r.where(ct, "from"), ctx + ": 'from' must be an address user@host");
    }
    if (ch.to.empty()) {
        r.fail(r.where(ct, "to"), ctx + ": 'to' must list at least one address");
    }
    for (const auto& t : ch.to) {
        if (!mailbox_ok(t)) {
            r.fail(r.where(ct, "to"),
                   ctx + ": 'to' entries must be addresses user@host, not \"" + t + "\"");
        }
    }
}

// timeout, rate_limit and burst: how hard a channel may be pushed.
void read_channel_pace(const Reader& r, const toml::table& ct, AlertChannel& ch,
                       const std::string& ctx) {
    ch.timeout_ms = r.duration(ct, "timeout", 1000, 60 * 1000).value_or(ch.timeout_ms);
    if (auto rl = r.str(ct, "rate_limit")) {
        auto per_s = parse_rate(*rl);
        if (!per_s) {
            r.fail(r.where(ct, "rate_limit"),
                   ctx + ": 'rate_limit' must look like \"6/min\", \"1/s\" or \"30/h\"");
        }
        ch.rate_per_s = *per_s;
        ch.burst = std::clamp(std::floor(*per_s * 60), 1.0, 10000.0);  // as an explicit burst
    }
    ch.burst = r.number(ct, "burst", 1, 10000).value_or(ch.burst);
}

// One [[alerts.channels]] entry; its name is added to `names`, which must not hold it yet.
AlertChannel read_channel(const Reader& r, const toml::table& ct, std::set<std::string>& names) {
    AlertChannel ch;
    ch.name = r.str(ct, "name").value_or("");
    std::string ctx = "[[alerts.channels]] '" + ch.name + "'";
    r.only_keys(ct, ctx,
                {"name", "type", "url", "secret", "username", "password", "starttls", "from", "to",
                 "timeout", "rate_limit", "burst"});
    if (ch.name.empty() || !names.insert(ch.name).second) {
        r.fail(r.where(ct, "name"), ctx + " needs a unique non-empty 'name'");
    }
    ch.type = r.str(ct, "type").value_or("");
    if (ch.type != "slack" && ch.type != "webhook" && ch.type != "smtp") {
        r.fail(r.where(ct, "type"), ctx + ": 'type' must be slack, webhook or smtp");
    }
    read_channel_url(r, ct, ch, ctx);
    read_channel_signing_key(r, ct, ch, ctx);
    read_channel_mail(r, ct, ch, ctx);
    read_channel_pace(r, ct, ch, ctx);
    return ch;
}

// [[alerts.channels]]; returns their names, which severities and rules refer to.
std::set<std::string> read_channels(const Reader& r, const toml::table& a, AlertsConfig& al) {
    std::set<std::string> names;
    const toml::node* chn = a.get("channels");
    if (!chn) {
        return names;
    }
    if (!chn->is_array_of_tables()) {
        r.fail(chn->source(),
               "[alerts] 'channels' must be an array of tables ([[alerts.channels]])");
    }
    for (const toml::node& cn : *chn->as_array()) {
        al.channels.push_back(read_channel(r, *cn.as_table(), names));
    }
    return names;
}

// A list of channel names at `key`, each one of [[alerts.channels]].
std::vector<std::string> channel_list(const Reader& r, const toml::table& t, std::string_view key,
                                      const std::string& ctx,
                                      const std::set<std::string>& channels) {
    auto list = r.strings(t, key);
    for (const auto& n : list) {
        if (!channels.count(n)) {
            r.fail(r.where(t, key), ctx + ": no channel named '" + n + "' in [[alerts.channels]]");
        }
    }
    return list;
}

// [alerts.severity_channels]; a severity left out goes to every channel, P3 to the log only.
void read_severity_channels(const Reader& r, const toml::table& a,
                            const std::set<std::string>& channels, AlertsConfig& al) {
    for (const char* sev : {"P0", "P1", "P2"}) {
        al.severity_channels[sev] = {channels.begin(), channels.end()};
    }
    al.severity_channels["P3"] = {};
    const toml::table* sc = r.table(a, "severity_channels");
    if (!sc) {
        return;
    }
    r.only_keys(*sc, "[alerts.severity_channels]", {"P0", "P1", "P2", "P3"});
    for (auto&& [k, v] : *sc) {
        al.severity_channels[std::string(k.str())] =
            channel_list(r, *sc, k.str(), "[alerts.severity_channels]", channels);
    }
}

// `key` as a severity, P0 (most severe) to P3.
std::optional<std::string> read_severity(const Reader& r, const toml::table& t,
                                         std::string_view key, const std::string& ctx) {
    auto sev = r.str(t, key);
    if (sev && *sev != "P0" && *sev != "P1" && *sev != "P2" && *sev != "P3") {
        r.fail(r.where(t, key), ctx + ": '" + std::string(key) + "' must be P0, P1, P2 or P3");
    }
    return sev;
}

// failure_ratio's lower level (warn_threshold, warn_severity); only it has one.
void read_rule_warning(const Reader& r, const toml::table& t, const std::string& name,
                       AlertRule& rule, const std::string& ctx) {
    if ((t.get("warn_threshold") || t.get("warn_severity")) && name != "failure_ratio") {
        r.fail(t.source(), ctx + ": 'warn_threshold' and 'warn_severity' are for failure_ratio");
    }
    rule.warn_threshold = r.number(t, "warn_threshold", 0, 1).value_or(rule.warn_threshold);
    if (rule.warn_threshold >= rule.threshold) {
        // The default level is dropped quietly under a lowered threshold; one written is wrong.
        rule.warn_threshold = t.get("warn_threshold") ? rule.warn_threshold : 0;
        if (rule.warn_threshold) {
            r.fail(r.where(t, "warn_threshold"),
                   ctx + ": 'warn_threshold' must be below 'threshold' (0: none)");
        }
    }
    rule.warn_severity = read_severity(r, t, "warn_severity", ctx).value_or(rule.warn_severity);
}

// One [alerts.rules.<name>]: what it sets overrides the rule's defaults.
void read_rule(const Reader& r, const toml::table& t, const std::string& name, AlertRule& rule,
               const std::set<std::string>& channels) {
    std::string ctx = "[alerts.rules." + name + "]";
    r.only_keys(t, ctx,
                {"enabled", "threshold", "window", "for", "severity", "min_count", "channels",
                 "warn_threshold", "warn_severity"});
    rule.enabled = r.boolean(t, "enabled").value_or(true);
    rule.threshold = r.number(t, "threshold", 0, 1e12).value_or(rule.threshold);
    if (name == "failure_ratio" && rule.threshold > 1) {
        r.fail(r.where(t, "threshold"), ctx + ": 'threshold' is a ratio, 0 to 1");
    }
    rule.window_ms = r.duration(t, "window", 1000, 7 * kDay).value_or(rule.window_ms);
    rule.for_ms = r.duration(t, "for", 0, kDay).value_or(rule.for_ms);
    rule.min_count = r.number(t, "min_count", 0, 1e12).value_or(rule.min_count);
    rule.severity = read_severity(r, t, "severity", ctx).value_or(rule.severity);
    if (t.get("channels")) {
        rule.channels = channel_list(r, t, "channels", ctx, channels);
    }
    read_rule_warning(r, t, name, rule, ctx);
}

// [alerts.rules]: every table names one of alert_rule_names().
void read_rules(const Reader& r, const toml::table& a, const std::set<std::string>& channels,
                AlertsConfig& al) {
    const toml::table* rs = r.table(a, "rules");
    if (!rs) {
        return;
    }
    for (auto&& [k, v] : *rs) {
        std::string name(k.str());
        if (!al.rules.count(name)) {
            r.fail(k.source(), "unknown alert rule '" + name + "' in [alerts.rules]");
        }
        read_rule(r, *r.table(*rs, k.str()), name, al.rules[name], channels);
    }
}

}  // namespace

// [alerts] and its sub-tables. Channels come before severity_channels and rules, which name them.
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
    read_alerts_settings(r, *a, al);
    read_silent_after(r, *a, c);
    const std::set<std::string> channels = read_channels(r, *a, al);
    read_severity_channels(r, *a, channels, al);
    read_rules(r, *a, channels, al);
}

}  // namespace config_detail

}  // namespace hookq
