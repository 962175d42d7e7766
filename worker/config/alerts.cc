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

}  // namespace

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
        // A misspelt source would leave the real one unwatched and alert on the name for ever.
        const std::set<std::string> known = known_sources(c);
        for (auto&& [k, v] : *sa) {
            if (!known.count(std::string(k.str()))) {
                r.fail(k.source(), "[alerts.silent_after]: unknown source '" +
                                       std::string(k.str()) + "' (no route or [sources] names it)");
            }
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

}  // namespace config_detail

}  // namespace hookq
