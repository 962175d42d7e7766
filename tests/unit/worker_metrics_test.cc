#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "shared/envelope.h"
#include "worker/config.h"
#include "worker/metrics.h"
#include "worker/ops/status.h"

namespace hookq {
namespace {

// Route names are free text: the exposition must stay parseable whatever they hold.
const char* kConfig = R"(
[worker]
queues = ["main", "q\"2"]

[postgres]
dsn = "dbname=hookq"

[[routes]]
name = "plain"
source = "github"
url = "http://app.internal:8080/hooks/github"

[[routes]]
name = "we\"ird\\na me"  # quotes and backslashes escaped; control bytes are refused
source = "stripe"
url = "http://app.internal:8080/hooks/stripe"
)";

// Every sample line: "name{labels} value" -> value, keyed by the text before the value.
std::map<std::string, std::string> samples(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        size_t sp = line.rfind(' ');
        out[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return out;
}

TEST(MetricsText, EscapesLabelValues) {
    EXPECT_EQ(metrics::escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(metrics::escape_label("plain/route-1"), "plain/route-1");
    EXPECT_EQ(metrics::escape_label(""), "");
}

TEST(MetricsText, CountersPerRouteAndOutcome) {
    Config cfg = load_config_string(kConfig, "w.toml");
    ASSERT_EQ(cfg.routes.size(), 2u);
    metrics::Registry reg;
    reg.init(cfg, "w-1");
    reg.attempt(0, 3000);      // first bucket (<= 5ms)
    reg.attempt(0, 40000000);  // +Inf
    reg.attempt(1, 7000);
    reg.outcome(0, OutcomeKind::retry);
    reg.outcome(0, OutcomeKind::delivered, 1000000, 1200000);  // 0.2 s end to end
    reg.outcome(1, OutcomeKind::dead);
    reg.outcome(1, OutcomeKind::parked);
    reg.unrouted_dead();
    reg.claimed(1, 3);
    reg.claimed(1, 0);  // an empty claim is a poll, not a batch
    reg.transition("http://app.internal:8080", "closed", "open");
    reg.transition("http://elsewhere:1", "closed", "open");  // not a configured destination
    reg.transition("http://app.internal:8080", "bogus", "open");
    reg.attempt(99, 1);  // out of range: ignored, no crash
    reg.outcome(99, OutcomeKind::dead);

    std::string text = reg.render();
    auto s = samples(text);
    const std::string weird = "route=\"we\\\"ird\\\\na me\"";
    EXPECT_EQ(s["hookq_worker_attempts_total{route=\"plain\"}"], "2");
    EXPECT_EQ(s["hookq_worker_attempts_total{" + weird + "}"], "1");
    EXPECT_EQ(s["hookq_worker_deliveries_total{route=\"plain\",outcome=\"retry\"}"], "1");
    EXPECT_EQ(s["hookq_worker_deliveries_total{route=\"plain\",outcome=\"delivered\"}"], "1");
    EXPECT_EQ(s["hookq_worker_deliveries_total{" + weird + ",outcome=\"dead\"}"], "1");
    EXPECT_EQ(s["hookq_worker_deliveries_total{" + weird + ",outcome=\"parked\"}"], "1");
    EXPECT_EQ(s["hookq_worker_deliveries_total{route=\"-\",outcome=\"dead\"}"], "1");
    // Cumulative buckets; _count is the +Inf bucket.
    EXPECT_EQ(s["hookq_worker_attempt_duration_seconds_bucket{route=\"plain\",le=\"0.005\"}"], "1");
    EXPECT_EQ(s["hookq_worker_attempt_duration_seconds_bucket{route=\"plain\",le=\"30\"}"], "1");
    EXPECT_EQ(s["hookq_worker_attempt_duration_seconds_bucket{route=\"plain\",le=\"+Inf\"}"], "2");
    EXPECT_EQ(s["hookq_worker_attempt_duration_seconds_count{route=\"plain\"}"], "2");
    EXPECT_EQ(s["hookq_worker_attempt_duration_seconds_sum{route=\"plain\"}"], "40.003000");
    EXPECT_EQ(s["hookq_worker_end_to_end_seconds_bucket{route=\"plain\",le=\"0.1\"}"], "0");
    EXPECT_EQ(s["hookq_worker_end_to_end_seconds_bucket{route=\"plain\",le=\"0.25\"}"], "1");
    EXPECT_EQ(s["hookq_worker_claimed_total{queue=\"q\\\"2\"}"], "3");
    EXPECT_EQ(s["hookq_worker_claim_batches_total{queue=\"q\\\"2\"}"], "1");
    EXPECT_EQ(s["hookq_worker_claimed_total{queue=\"main\"}"], "0");
    EXPECT_EQ(s["hookq_worker_breaker_transitions_total{destination=\"http://app.internal:8080\","
                "from=\"closed\",to=\"open\"}"],
              "1");
    auto info = s.lower_bound("hookq_worker_info{version=\"");
    ASSERT_NE(info, s.end());
    EXPECT_TRUE(info->first.ends_with("\",worker_id=\"w-1\"}")) << info->first;
    EXPECT_EQ(info->second, "1");
    EXPECT_GT(std::stoll(s["hookq_worker_resident_memory_bytes"]), 0);
    // No raw newline from a label value reached the text: every line is a comment or a sample.
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        EXPECT_TRUE(line.starts_with("# HELP hookq_") || line.starts_with("# TYPE hookq_") ||
                    line.starts_with("hookq_"))
            << line;
    }
}

TEST(MetricsText, AnUninitialisedRegistryCountsNothing) {
    metrics::Registry reg;
    reg.attempt(0, 1);
    reg.outcome(0, OutcomeKind::delivered, 0, 1);
    reg.unrouted_dead();
    reg.claimed(0, 1);
    reg.transition("x", "closed", "open");
    EXPECT_EQ(samples(reg.render()).count("hookq_worker_attempts_total{route=\"-\"}"), 0u);
}

TEST(MetricsText, SnapshotGauges) {
    auto st = nlohmann::ordered_json::parse(R"({
      "queues": [{"queue": "main", "depth": 7, "inflight": 2, "retry": 3, "retry_due": 1,
                  "parked": 4, "poison": 5, "workers_live": 1, "workers_registered": 1,
                  "oldest_age_s": 2.5, "inflight_oldest_age_s": 1.25, "poison_oldest_age_s": -1,
                  "retry_overdue_s": 0.5}],
      "database": {"dead_letters": 6, "dead_letters_by_source": {"git\"hub": 6},
                   "dead_letters_oldest_s_by_source": {"git\"hub": 30.5}, "lag_s": 1.5},
      "breakers": [{"destination": "http://a:1", "state": "open"},
                   {"destination": "http://b:1", "state": "half_open"},
                   {"destination": "http://c:1", "state": "closed"}]})");
    metrics::SnapshotInfo info{true, 2.5, 0.01, true, true};
    auto s = samples(metrics::render_snapshot(st, info));
    EXPECT_EQ(s["hookq_queue_depth{queue=\"main\"}"], "7");
    EXPECT_EQ(s["hookq_queue_inflight{queue=\"main\"}"], "2");
    EXPECT_EQ(s["hookq_queue_retry{queue=\"main\"}"], "3");
    EXPECT_EQ(s["hookq_queue_retry_due{queue=\"main\"}"], "1");
    EXPECT_EQ(s["hookq_queue_parked{queue=\"main\"}"], "4");
    EXPECT_EQ(s["hookq_queue_poison{queue=\"main\"}"], "5");
    EXPECT_EQ(s["hookq_queue_workers_live{queue=\"main\"}"], "1");
    EXPECT_EQ(s["hookq_breaker_state{destination=\"http://a:1\",state=\"open\"}"], "1");
    EXPECT_EQ(s["hookq_breaker_state{destination=\"http://a:1\",state=\"closed\"}"], "0");
    EXPECT_EQ(s["hookq_breaker_state{destination=\"http://b:1\",state=\"half_open\"}"], "1");
    EXPECT_EQ(s["hookq_breaker_state{destination=\"http://b:1\",state=\"open\"}"], "0");
    EXPECT_EQ(s["hookq_breaker_state{destination=\"http://c:1\",state=\"closed\"}"], "1");
    EXPECT_EQ(s["hookq_queue_oldest_age_seconds{queue=\"main\"}"], "2.500000");
    EXPECT_EQ(s["hookq_queue_inflight_oldest_age_seconds{queue=\"main\"}"], "1.250000");
    EXPECT_EQ(s["hookq_queue_poison_oldest_age_seconds{queue=\"main\"}"], "-1.000000");
    EXPECT_EQ(s["hookq_queue_retry_overdue_seconds{queue=\"main\"}"], "0.500000");
    EXPECT_EQ(s["hookq_dead_letters_oldest_age_seconds{source=\"git\\\"hub\"}"], "30.500000");
    EXPECT_EQ(s["hookq_dead_letters{source=\"git\\\"hub\"}"], "6");
    EXPECT_EQ(s["hookq_dead_letters_pending"], "6");
    EXPECT_EQ(s["hookq_snapshot_success"], "1");
    EXPECT_EQ(s["hookq_snapshot_age_seconds"], "2.500000");

    st["redis"] = nlohmann::ordered_json::parse(R"([
      {"node": "10.0.0.1:6379", "reachable": true, "used_memory_bytes": 1048576,
       "maxmemory_bytes": 0},
      {"node": "10.0.0.2:6379", "reachable": true, "used_memory_bytes": 2048,
       "maxmemory_bytes": 4096},
      {"node": "10.0.0.3:6379", "reachable": false}])");
    s = samples(metrics::render_snapshot(st, info));
    EXPECT_EQ(s.count("hookq_redis_memory_used_bytes{node=\"10.0.0.3:6379\"}"), 0u);
    EXPECT_EQ(s["hookq_redis_memory_used_bytes{node=\"10.0.0.1:6379\"}"], "1048576.000000");
    EXPECT_EQ(s["hookq_redis_memory_max_bytes{node=\"10.0.0.1:6379\"}"], "0.000000");
    EXPECT_EQ(s["hookq_redis_memory_used_bytes{node=\"10.0.0.2:6379\"}"], "2048.000000");
    EXPECT_EQ(s["hookq_redis_memory_max_bytes{node=\"10.0.0.2:6379\"}"], "4096.000000");

    auto none = samples(metrics::render_snapshot(nullptr, metrics::SnapshotInfo{}));
    EXPECT_EQ(none["hookq_snapshot_success"], "0");
    EXPECT_EQ(none["hookq_snapshot_age_seconds"], "-1.000000");
    EXPECT_EQ(none.count("hookq_queue_depth{queue=\"main\"}"), 0u);
}

}  // namespace
}  // namespace hookq

namespace hookq {
namespace {

TEST(OpsRedisMemory, ParsesInfoMemory) {
    // As Redis 7.0 writes it: the _human, _peak and _policy lines share the prefixes.
    auto m = ops::parse_info_memory(
        "# Memory\r\nused_memory:1185136\r\nused_memory_human:1.13M\r\n"
        "used_memory_peak:1185136\r\nmaxmemory:104857600\r\nmaxmemory_human:100.00M\r\n"
        "maxmemory_policy:noeviction\r\n");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->used, 1185136);
    EXPECT_EQ(m->max, 104857600);
    EXPECT_FALSE(ops::parse_info_memory("used_memory:12\r\n"));  // no maxmemory line
    EXPECT_FALSE(ops::parse_info_memory("used_memory:x\r\nmaxmemory:0\r\n"));
    EXPECT_FALSE(ops::parse_info_memory(""));
    auto lf = ops::parse_info_memory("maxmemory:0\nused_memory:7");  // no CR, no final EOL
    ASSERT_TRUE(lf);
    EXPECT_EQ(lf->used, 7);
    EXPECT_EQ(lf->max, 0);
}

TEST(MetricsConfig, PublicAndRefresh) {
    const std::string base =
        "[postgres]\ndsn = \"d\"\n[[routes]]\nname = \"a\"\nsource = \"s\"\n"
        "url = \"http://x/\"\n[admin]\n";
    Config c = load_config_string(base, "w.toml");
    EXPECT_FALSE(c.admin.metrics_public);
    EXPECT_EQ(c.admin.metrics_refresh_ms, 5000u);
    c = load_config_string(base + "metrics_public = true\nmetrics_refresh = \"250ms\"\n", "w.toml");
    EXPECT_TRUE(c.admin.metrics_public);
    EXPECT_EQ(c.admin.metrics_refresh_ms, 250u);
    EXPECT_THROW(load_config_string(base + "metrics_refresh = \"1ms\"\n", "w.toml"), ConfigError);
    EXPECT_THROW(load_config_string(base + "metrics_public = \"yes\"\n", "w.toml"), ConfigError);
}

}  // namespace
}  // namespace hookq

namespace hookq {
namespace {

TEST(MetricsSnapshot, OldestAgeFromTheQueuesTail) {
    Envelope e;
    e.received_at_us = 1'700'000'000'000'000ULL;
    e.source = "github";
    e.method = "POST";
    e.target = "/hooks/github";
    std::string raw = e.encode();
    EXPECT_DOUBLE_EQ(metrics::oldest_age_s(raw, e.received_at_us + 2'500'000), 2.5);
    // A due retry record counts from the webhook's reception.
    RetryRecord rec;
    rec.route = "app";
    rec.attempt = 2;
    rec.envelope = raw;
    EXPECT_DOUBLE_EQ(metrics::oldest_age_s(rec.encode(), e.received_at_us + 60'000'000), 60.0);
    EXPECT_EQ(metrics::oldest_age_s("", 1), 0.0);
    EXPECT_EQ(metrics::oldest_age_s("garbage", 1), -1.0);
    EXPECT_EQ(metrics::oldest_age_s("HQR1garbage", 1), -1.0);
    // A clock behind the edge's: never negative.
    EXPECT_EQ(metrics::oldest_age_s(raw, e.received_at_us - 1000), 0.0);
}

}  // namespace
}  // namespace hookq
