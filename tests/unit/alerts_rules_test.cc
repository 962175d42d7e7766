// The alerting engine's pure logic: state machine, silences, inhibition, grouping, rate limit,
// message texts, the edge counter parser and the [alerts] configuration.
#include <gtest/gtest.h>

#include "worker/alerts/channels.h"
#include "worker/alerts/engine.h"
#include "worker/alerts/rules.h"
#include "worker/config.h"

namespace hookq::alerts {
namespace {

Observation obs(bool active, double value = 1, double threshold = 1) {
    Observation o;
    o.active = active;
    o.value = value;
    o.threshold = threshold;
    return o;
}

TEST(AlertsRules, FingerprintSortsLabels) {
    EXPECT_EQ(fingerprint("failure_ratio", {{"route", "orders"}}), "failure_ratio{route=orders}");
    EXPECT_EQ(fingerprint("dead_letters", {{"source", "stripe"}, {"route", "pay"}}),
              "dead_letters{route=pay,source=stripe}");
    EXPECT_EQ(fingerprint("redis_down", {}), "redis_down{}");
}

TEST(AlertsRules, PendingThenFiringAfterFor) {
    AlertState a;
    Observation on = obs(true, 0.2, 0.05);
    EXPECT_EQ(step(a, &on, 1000, 5000, 0), Action::entered_pending);
    EXPECT_EQ(a.state, State::pending);
    EXPECT_EQ(step(a, &on, 5999, 5000, 0), Action::none);
    EXPECT_EQ(step(a, &on, 6000, 5000, 0), Action::fire);
    EXPECT_EQ(a.state, State::firing);
    EXPECT_EQ(a.firing_since_ms, 6000);
    EXPECT_EQ(a.pending_since_ms, 1000);
    EXPECT_DOUBLE_EQ(a.value, 0.2);
    // Still firing: nothing until repeat_interval; then one repeat.
    EXPECT_EQ(step(a, &on, 7000, 5000, 10000), Action::none);
    EXPECT_EQ(step(a, &on, 16000, 5000, 10000), Action::repeat);
    EXPECT_EQ(step(a, &on, 17000, 5000, 10000), Action::none);
    // Clears: resolved, once.
    Observation off = obs(false, 0, 0.05);
    EXPECT_EQ(step(a, &off, 20000, 5000, 10000), Action::resolve);
    EXPECT_EQ(a.state, State::resolved);
    EXPECT_EQ(a.resolved_at_ms, 20000);
    EXPECT_DOUBLE_EQ(a.value, 0);  // the recovery message says where it is now
    EXPECT_EQ(step(a, nullptr, 21000, 5000, 10000), Action::none);
    // And can fire again.
    EXPECT_EQ(step(a, &on, 22000, 0, 10000), Action::fire);
}

TEST(AlertsRules, PendingThatClearsNeverFires) {
    AlertState a;
    Observation on = obs(true);
    EXPECT_EQ(step(a, &on, 0, 60000, 0), Action::entered_pending);
    EXPECT_EQ(step(a, nullptr, 1000, 60000, 0), Action::dropped_pending);
    EXPECT_EQ(a.state, State::resolved);
    EXPECT_EQ(a.firing_since_ms, 0);
}

TEST(AlertsRules, ForZeroFiresAtOnce) {
    AlertState a;
    Observation on = obs(true);
    EXPECT_EQ(step(a, &on, 5, 0, 0), Action::fire);
}

TEST(AlertsRules, SilenceMatching) {
    Silence all{1, {}};
    Silence rule{2, {{"rule", "breaker_open"}}};
    Silence both{3, {{"rule", "failure_ratio"}, {"route", "orders"}}};
    Silence label{4, {{"route", "orders"}}};
    Labels orders{{"route", "orders"}};
    Labels other{{"route", "billing"}};
    EXPECT_TRUE(silence_matches(all, "queue_depth", {}));
    EXPECT_TRUE(silence_matches(rule, "breaker_open", {{"destination", "x"}}));
    EXPECT_FALSE(silence_matches(rule, "failure_ratio", orders));
    EXPECT_TRUE(silence_matches(both, "failure_ratio", orders));
    EXPECT_FALSE(silence_matches(both, "failure_ratio", other));
    EXPECT_FALSE(silence_matches(both, "dead_letters", orders));
    EXPECT_TRUE(silence_matches(label, "dead_letters", orders));
    EXPECT_FALSE(silence_matches(label, "redis_down", {}));  // a missing label does not match
    EXPECT_EQ(silenced_by({all, rule, both, label}, "failure_ratio", orders),
              (std::vector<int64_t>{1, 3, 4}));
}

TEST(AlertsRules, InhibitionWhileADependencyIsDown) {
    EXPECT_FALSE(inhibited("failure_ratio", false, false));
    EXPECT_TRUE(inhibited("failure_ratio", true, false));
    EXPECT_TRUE(inhibited("queue_age", false, true));
    EXPECT_TRUE(inhibited("queue_depth", true, true));
    EXPECT_FALSE(inhibited("breaker_open", true, true));
    EXPECT_FALSE(inhibited("redis_down", true, true));
    EXPECT_TRUE(inhibited("queue_unreachable", true, false));
    EXPECT_FALSE(inhibited("queue_unreachable", false, true));
}

TEST(AlertsRules, TokenBucket) {
    TokenBucket b(1.0 / 60, 2);  // 1/min, burst 2
    EXPECT_TRUE(b.take(0));
    EXPECT_TRUE(b.take(10));
    EXPECT_FALSE(b.take(20));
    EXPECT_FALSE(b.take(59000));
    EXPECT_TRUE(b.take(60020));
    EXPECT_FALSE(b.take(60030));
}

TEST(AlertsRules, GroupingWaitsThenSendsOnePerRuleAndKind) {
    Grouper g;
    g.add("breaker_open", false, {"a", 1}, 1000);
    g.add("breaker_open", false, {"b", 2}, 1500);
    g.add("breaker_open", true, {"c", 3}, 1600);
    g.add("queue_depth", false, {"d", 4}, 2500);
    EXPECT_TRUE(g.due(1999, 1000).empty());
    auto d = g.due(2000, 1000);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].rule, "breaker_open");
    EXPECT_FALSE(d[0].resolved);
    ASSERT_EQ(d[0].items.size(), 2u);
    EXPECT_EQ(d[0].items[1].fingerprint, "b");
    d = g.due(3500, 1000);
    ASSERT_EQ(d.size(), 2u);  // the resolved group and queue_depth's
    EXPECT_TRUE(g.empty());
}

TEST(AlertsChannels, MessageNamesEverything) {
    Message m;
    m.rule = "breaker_open";
    m.severity = "P1";
    AlertInfo a;
    a.rule = "breaker_open";
    a.labels = {{"destination", "http://app:8000"}};
    a.severity = "P1";
    a.value = 1;
    a.threshold = 1;
    a.since_ms = 1764518400000;  // 2025-11-30T16:00:00Z
    m.alerts = {a, a};
    m.folded = 3;
    MessageContext ctx{"prod-1", "https://x/docs/runbooks.md", "http://127.0.0.1:9187/ui/"};
    std::string t = message_text(m, ctx);
    EXPECT_NE(t.find("[FIRING P1] breaker_open on prod-1 (2 alerts)"), std::string::npos) << t;
    EXPECT_NE(t.find("destination=http://app:8000"), std::string::npos);
    EXPECT_NE(t.find("value 1 against threshold 1, since 2025-11-30T16:00:00Z"), std::string::npos);
    EXPECT_NE(t.find("...and 3 more"), std::string::npos);
    EXPECT_NE(t.find("https://x/docs/runbooks.md#destination-down-breaker-open"),
              std::string::npos);
    EXPECT_NE(t.find("Dashboard: http://127.0.0.1:9187/ui/"), std::string::npos);
    EXPECT_EQ(rfc5322_date(1764518400000), "Sun, 30 Nov 2025 16:00:00 +0000");
}

TEST(AlertsChannels, EmailHeadersStayOnOneLine) {
    Message m;
    m.rule = "dead_letters";
    m.severity = "P1";
    AlertInfo a;
    a.rule = "dead_letters";
    a.labels = {{"route", "evil\r\nBcc: x@y"}};
    m.alerts = {a};
    AlertChannel ch;
    ch.from = "hookq@example.com";
    ch.to = {"a@example.com", "b@example.com"};
    std::string msg = email_message(m, {"i", "r", ""}, ch, 0, "id@hookq");
    auto head = msg.substr(0, msg.find("\r\n\r\n"));
    EXPECT_EQ(head.find("\r\nBcc:"), std::string::npos) << head;
    EXPECT_NE(head.find("To: a@example.com, b@example.com"), std::string::npos);
    EXPECT_NE(head.find("Message-ID: <id@hookq>"), std::string::npos);
    EXPECT_NE(head.find("Content-Type: text/plain; charset=utf-8"), std::string::npos);
}

TEST(AlertsEngine, EdgeCountersParsed) {
    auto f = parse_edge_failures(
        "# TYPE hookq_edge_requests_total counter\n"
        "hookq_edge_requests_total{source=\"stripe\",outcome=\"accepted\"} 100\n"
        "hookq_edge_requests_total{source=\"stripe\",outcome=\"bad_signature\"} 7\n"
        "hookq_edge_requests_total{source=\"stripe\",outcome=\"stale_timestamp\"} 2\n"
        "hookq_edge_requests_total{source=\"gh\",outcome=\"missing_signature\"} 1\n"
        "hookq_edge_requests_total{source=\"gh\",outcome=\"queue_full\"} 50\n");
    EXPECT_DOUBLE_EQ(f["stripe"], 9);
    EXPECT_DOUBLE_EQ(f["gh"], 1);
}

const char* kBase = R"(
[postgres]
dsn = "dbname=hookq"

[[routes]]
name = "gh"
source = "github"
url = "http://app.internal/hooks/github"
)";

std::string error_of(const std::string& text) {
    try {
        load_config_string(std::string(kBase) + text, "w.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(AlertsConfig, DefaultsAndOverrides) {
    Config d = load_config_string(kBase, "w.toml");
    EXPECT_FALSE(d.alerts.enabled);
    EXPECT_EQ(d.alerts.rules.size(), alert_rule_names().size());
    EXPECT_DOUBLE_EQ(d.alerts.rules["failure_ratio"].threshold, 0.05);
    EXPECT_DOUBLE_EQ(d.alerts.rules["failure_ratio"].min_count, 20);
    EXPECT_DOUBLE_EQ(d.alerts.rules["failure_ratio"].warn_threshold, 0.01);
    EXPECT_EQ(d.alerts.rules["failure_ratio"].warn_severity, "P2");
    EXPECT_EQ(d.alerts.rules["queue_age"].severity, "P1");
    EXPECT_EQ(d.alerts.rules["redis_down"].severity, "P0");
    EXPECT_EQ(d.retention.alerts_ms, 30ull * 24 * 3600 * 1000);

    Config c = load_config_string(std::string(kBase) + R"(
[alerts]
interval = "1s"
group_wait = "0s"
[alerts.silent_after]
github = "10m"
[[alerts.channels]]
name = "ops"
type = "slack"
url = "http://127.0.0.1:9/hook"
rate_limit = "2/min"
[[alerts.channels]]
name = "mail"
type = "smtp"
url = "smtp://127.0.0.1:25"
from = "hookq@example.com"
to = ["oncall@example.com"]
[alerts.severity_channels]
P2 = ["mail"]
[alerts.rules.breaker_open]
severity = "P0"
channels = ["ops"]
)",
                                  "w.toml");
    EXPECT_TRUE(c.alerts.enabled);
    EXPECT_EQ(c.alerts.interval_ms, 1000u);
    EXPECT_EQ(c.alerts.silent_after["github"], 600000u);
    ASSERT_EQ(c.alerts.channels.size(), 2u);
    EXPECT_DOUBLE_EQ(c.alerts.channels[0].burst, 2);
    EXPECT_EQ(c.alerts.severity_channels["P0"].size(), 2u);
    EXPECT_EQ(c.alerts.severity_channels["P2"], std::vector<std::string>{"mail"});
    EXPECT_TRUE(c.alerts.severity_channels["P3"].empty());
    EXPECT_EQ(c.alerts.rules["breaker_open"].severity, "P0");
    EXPECT_EQ(*c.alerts.rules["breaker_open"].channels, std::vector<std::string>{"ops"});
}

TEST(AlertsConfig, ARateLimitsBurstIsBoundedAsAnExplicitOne) {
    // A minute's worth, but no more than 'burst' itself may say: "1000/s" once meant 60,000
    // messages at once.
    Config c = load_config_string(std::string(kBase) + R"(
[alerts]
[[alerts.channels]]
name = "fast"
type = "slack"
url = "http://127.0.0.1:9/hook"
rate_limit = "1000/s"
)",
                                  "w.toml");
    ASSERT_EQ(c.alerts.channels.size(), 1u);
    EXPECT_DOUBLE_EQ(c.alerts.channels[0].burst, 10000);
}

TEST(AlertsConfig, EdgeMetricsUrlsHaveNoSpaceOrControlByte) {
    // curl refuses them, so the edge would never be read and the rule never see its failures.
    EXPECT_NE(error_of("[alerts]\nedge_metrics = [\"http://e x/metrics\"]\n")
                  .find("w.toml:10:16: [alerts] 'edge_metrics' must not contain spaces or control "
                        "characters (byte 0x20 at offset 8)"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\nedge_metrics = [\"http://e/\\u0001\"]\n").find("byte 0x01"),
              std::string::npos);
    EXPECT_EQ(error_of("[alerts]\nedge_metrics = [\"http://127.0.0.1:8080/hookq-metrics\"]\n"), "");
}

TEST(AlertsConfig, BadConfigNamesTheLine) {
    EXPECT_NE(error_of("[alerts]\n[alerts.silent_after]\ngithb = \"10m\"\n")
                  .find(":1: [alerts.silent_after]: unknown source 'githb' (no route or [sources] "
                        "names it)"),
              std::string::npos);
    EXPECT_EQ(error_of("[alerts]\n[alerts.rules.nope]\nthreshold = 1\n"),
              "w.toml:10:15: unknown alert rule 'nope' in [alerts.rules]");
    EXPECT_NE(error_of("[alerts]\n[alerts.rules.failure_ratio]\nthreshold = 5\n")
                  .find("w.toml:11:13: [alerts.rules.failure_ratio]: 'threshold' is a ratio"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[alerts.rules.queue_age]\nseverity = \"P5\"\n")
                  .find("w.toml:11:12: [alerts.rules.queue_age]: 'severity' must be P0"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[[alerts.channels]]\nname = \"x\"\ntype = \"pager\"\n")
                  .find("w.toml:12:8: [[alerts.channels]] 'x': 'type' must be slack"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[alerts.rules.dead_letters]\nchannels = [\"nope\"]\n")
                  .find("no channel named 'nope'"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[[alerts.channels]]\nname = \"m\"\ntype = \"smtp\"\n"
                       "url = \"smtp://h\"\nfrom = \"bad\"\nto = [\"a@b\"]\n")
                  .find("'from' must be an address"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[[alerts.channels]]\nname = \"w\"\ntype = \"webhook\"\n"
                       "url = \"literal:http://h/x\"\nsecret = \"literal:nope\"\n")
                  .find("'secret' is for webhook channels, a whsec_"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[alerts.rules.queue_depth]\nwarn_threshold = 0.1\n")
                  .find("'warn_threshold' and 'warn_severity' are for failure_ratio"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\n[alerts.rules.failure_ratio]\nwarn_threshold = 0.2\n"
                       "threshold = 0.1\n")
                  .find("'warn_threshold' must be below 'threshold'"),
              std::string::npos);
    EXPECT_NE(error_of("[alerts]\nwhat = 1\n").find("w.toml:10:1: unknown key 'what' in [alerts]"),
              std::string::npos);
    // A channel URL is never echoed (it may hold a token).
    std::string e = error_of(
        "[alerts]\n[[alerts.channels]]\nname = \"s\"\ntype = \"slack\"\n"
        "url = \"literal:ftp://hooks.slack.com/T0/SECRET\"\n");
    EXPECT_NE(e.find("'url' must be an http://"), std::string::npos);
    EXPECT_EQ(e.find("SECRET"), std::string::npos);
}

}  // namespace
}  // namespace hookq::alerts
