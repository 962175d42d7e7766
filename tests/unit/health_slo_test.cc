// Destination health check and [slo] configuration, SLO threshold classification and the probe
// verdict: pure logic, no servers.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include "worker/config.h"
#include "worker/jobs/health_checks.h"
#include "worker/metrics.h"
#include "worker/ops/slo.h"

namespace hookq {
namespace {

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
        load_config_string(text, "w.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(HealthCheckConfig, DefaultsAndValues) {
    Config c = load_config_string(kBase, "w.toml");
    EXPECT_TRUE(c.routes[0].health_url.empty());
    c = load_config_string(std::string(kBase) + R"(health_url = "http://app.internal:8000/healthz"
)",
                           "w.toml");
    const Route& r = c.routes[0];
    EXPECT_EQ(r.health_url, "http://app.internal:8000/healthz");
    EXPECT_EQ(r.health_interval_ms, 300000u);
    EXPECT_EQ(r.health_timeout_ms, 5000u);
    EXPECT_EQ(r.health_expect_lo, 200);
    EXPECT_EQ(r.health_expect_hi, 399);
    for (auto [spec, lo, hi] : {std::tuple{"204", 204, 204},
                                {"\"2xx\"", 200, 299},
                                {"\"200..204\"", 200, 204},
                                {"\"200-299\"", 200, 299}}) {
        c = load_config_string(std::string(kBase) +
                                   "health_url = \"http://a/h\"\nhealth_expect = " + spec +
                                   "\nhealth_interval = \"10s\"\nhealth_timeout = \"2s\"\n",
                               "w.toml");
        EXPECT_EQ(c.routes[0].health_expect_lo, lo) << spec;
        EXPECT_EQ(c.routes[0].health_expect_hi, hi) << spec;
        EXPECT_EQ(c.routes[0].health_interval_ms, 10000u);
        EXPECT_EQ(c.routes[0].health_timeout_ms, 2000u);
    }
}

TEST(HealthCheckConfig, BadValuesNameTheLine) {
    std::string base = std::string(kBase) + "health_url = \"http://a/h\"\n";  // line 9
    EXPECT_EQ(error_of(base + "health_interval = \"2h\"\n"),
              "w.toml:10:19: 'health_interval' must be between 1s and 3600s");
    EXPECT_EQ(error_of(base + "health_timeout = \"31s\"\n"),
              "w.toml:10:18: 'health_timeout' must be between 1s and 30s");
    EXPECT_EQ(error_of(base + "health_interval = \"2s\"\n"),
              "w.toml:10:19: [[routes]] 'gh': 'health_timeout' must not be longer than "
              "'health_interval'");
    EXPECT_NE(error_of(base + "health_expect = \"2zz\"\n")
                  .find("w.toml:10:17: [[routes]] 'gh': "
                        "'health_expect' must be"),
              std::string::npos);
    EXPECT_NE(error_of(base + "health_expect = \"399..200\"\n").find("'health_expect' must be"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "health_url = \"ftp://a/h\"\n")
                  .find("w.toml:9:14: [[routes]] 'gh': 'health_url' must be an http"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "health_interval = \"1m\"\n")
                  .find("'health_interval' needs 'health_url'"),
              std::string::npos);
}

TEST(SloConfig, DefaultsFromTheIssue) {
    Config c = load_config_string(kBase, "w.toml");
    const SloThresholds& t = c.slo.global;
    EXPECT_DOUBLE_EQ(t.error_rate_degraded, 0.01);
    EXPECT_DOUBLE_EQ(t.error_rate_unhealthy, 0.05);
    EXPECT_EQ(t.lag_degraded_ms, 120000u);
    EXPECT_EQ(t.lag_unhealthy_ms, 600000u);
    EXPECT_EQ(t.failures_degraded, 5u);
    EXPECT_EQ(t.failures_unhealthy, 20u);
    EXPECT_EQ(t.window_ms, 300000u);
}

TEST(SloConfig, OverridesStartFromTheGlobalThresholds) {
    Config c = load_config_string(std::string(kBase) + R"(
[slo]
error_rate_degraded = 0.02
failures_unhealthy = 50
window = "10m"
[slo.routes.gh]
failures_degraded = 1
[slo.sources.github]
lag_degraded = "30s"
)",
                                  "w.toml");
    EXPECT_DOUBLE_EQ(c.slo.global.error_rate_degraded, 0.02);
    EXPECT_EQ(c.slo.global.window_ms, 600000u);
    const SloThresholds& r = c.slo.for_route("gh");
    EXPECT_EQ(r.failures_degraded, 1u);
    EXPECT_EQ(r.failures_unhealthy, 50u);
    EXPECT_DOUBLE_EQ(r.error_rate_degraded, 0.02);
    EXPECT_EQ(r.window_ms, 600000u);
    EXPECT_EQ(c.slo.for_source("github").lag_degraded_ms, 30000u);
    EXPECT_EQ(c.slo.for_source("other").lag_degraded_ms, 120000u);
    EXPECT_EQ(c.slo.for_route("other").failures_degraded, 5u);
}

TEST(SloConfig, BadValuesNameTheLine) {
    EXPECT_EQ(error_of(std::string(kBase) + "[slo]\nerror_rate_degraded = 2\n"),
              "w.toml:10:23: 'error_rate_degraded' must be between 0.0001 and 1");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo]\nfailures_degraded = 30\n"),
              "w.toml:9:1: [slo]: 'failures_unhealthy' must not be below 'failures_degraded'");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo]\nlag_unhealthy = \"1m\"\n"),
              "w.toml:10:17: [slo]: 'lag_unhealthy' must not be below 'lag_degraded'");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo]\nwindow = \"10s\"\n"),
              "w.toml:10:10: 'window' must be between 60s and 1d");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo]\nerror_rat = 0.1\n"),
              "w.toml:10:1: unknown key 'error_rat' in [slo]");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo.routes.nope]\nfailures_degraded = 1\n"),
              "w.toml:9:13: [slo.routes.nope]: no route 'nope' is configured");
    EXPECT_EQ(error_of(std::string(kBase) + "[slo.sources.github]\nsources = 1\n"),
              "w.toml:10:1: unknown key 'sources' in [slo.sources.github]");
}

using ops::classify;
using ops::SloInput;
using ops::SloLevel;

TEST(SloClassify, EachThresholdRaisesTheLevel) {
    SloThresholds t;  // 1% / 5%, 2 / 10 min, 5 / 20 failures
    EXPECT_EQ(classify({}, t).level, SloLevel::healthy);
    EXPECT_FALSE(classify({}, t).error_rate);

    auto level = [&](SloInput in) { return classify(in, t).level; };
    // Error rate: 0.5% healthy, exactly 1% degraded, 5% unhealthy (few failures each).
    EXPECT_EQ(level({1000, 5, {}, {}}), SloLevel::degraded);  // 5 failures: degraded by count
    EXPECT_EQ(level({1000, 4, {}, {}}), SloLevel::healthy);
    EXPECT_EQ(level({200, 2, {}, {}}), SloLevel::degraded);
    EXPECT_EQ(level({100, 4, {}, {}}), SloLevel::degraded);
    EXPECT_EQ(level({80, 4, {}, {}}), SloLevel::unhealthy);
    // Failures alone: 20 of 1,000,000 is a tiny rate, still unhealthy.
    EXPECT_EQ(level({1000000, 19, {}, {}}), SloLevel::degraded);
    EXPECT_EQ(level({1000000, 20, {}, {}}), SloLevel::unhealthy);
    // Lag (end-to-end p95) and the queue's oldest webhook against 2 / 10 minutes.
    EXPECT_EQ(level({0, 0, 119.9, {}}), SloLevel::healthy);
    EXPECT_EQ(level({0, 0, 120, {}}), SloLevel::degraded);
    EXPECT_EQ(level({0, 0, 600, {}}), SloLevel::unhealthy);
    EXPECT_EQ(level({0, 0, {}, 300}), SloLevel::degraded);
    EXPECT_EQ(level({0, 0, 1, 700}), SloLevel::unhealthy);
}

TEST(SloClassify, ReasonsNameValueAndWindow) {
    SloThresholds t;
    t.failures_degraded = 2;
    t.failures_unhealthy = 4;
    t.window_ms = 600000;
    auto v = classify({10, 3, 130, {}}, t);
    EXPECT_EQ(v.level, SloLevel::unhealthy);  // 30% >= 5%
    ASSERT_TRUE(v.error_rate);
    EXPECT_DOUBLE_EQ(*v.error_rate, 0.3);
    ASSERT_EQ(v.reasons.size(), 3u);
    EXPECT_EQ(v.reasons[0], "error rate 30.0% over 10m (3 of 10 attempts failed)");
    EXPECT_EQ(v.reasons[1], "3 failed attempts over 10m");
    EXPECT_EQ(v.reasons[2], "end-to-end p95 over 10m is 130 s");
    // A route's threshold raised: the same numbers are healthy.
    t.error_rate_degraded = t.error_rate_unhealthy = 0.5;
    t.failures_degraded = t.failures_unhealthy = 10;
    t.lag_degraded_ms = t.lag_unhealthy_ms = 3600000;
    EXPECT_EQ(classify({10, 3, 130, {}}, t).level, SloLevel::healthy);
}

TEST(HealthProbe, Verdict) {
    auto ok = judge_probe(CURLE_OK, 204, 12.5, 200, 399, 5000, "", "http://a/h");
    EXPECT_TRUE(ok.ok);
    EXPECT_EQ(ok.http_status, 204);
    EXPECT_TRUE(ok.error.empty());
    auto bad = judge_probe(CURLE_OK, 503, 3, 200, 399, 5000, "", "http://a/h");
    EXPECT_FALSE(bad.ok);
    EXPECT_EQ(bad.error, "HTTP 503 (expected 200..399)");
    auto only = judge_probe(CURLE_OK, 302, 3, 200, 200, 5000, "", "http://a/h");
    EXPECT_FALSE(only.ok);
    EXPECT_EQ(only.error, "HTTP 302 (expected 200)");
    auto slow = judge_probe(CURLE_OPERATION_TIMEDOUT, 0, 1000, 200, 399, 1000, "x", "http://a/h");
    EXPECT_FALSE(slow.ok);
    EXPECT_EQ(slow.http_status, 0);
    EXPECT_EQ(slow.error, "timed out after 1000 ms");
    auto refused = judge_probe(CURLE_COULDNT_CONNECT, 0, 1, 200, 399, 1000,
                               "Failed to connect to a port 80", "http://a/h");
    EXPECT_EQ(refused.error, "Couldn't connect to server: Failed to connect to a port 80");
    // libcurl's message quoting the URL's credentials is dropped, its generic text kept.
    auto creds = judge_probe(CURLE_URL_MALFORMAT, 0, 0, 200, 399, 1000,
                             "bad URL http://admin:s3cret@a/h", "http://admin:s3cret@a/h");
    EXPECT_EQ(creds.error.find("s3cret"), std::string::npos);
    EXPECT_EQ(creds.error.find("admin"), std::string::npos);
    EXPECT_FALSE(creds.error.empty());
    auto pass = judge_probe(CURLE_COULDNT_RESOLVE_HOST, 0, 0, 200, 399, 1000, "no host s3cret",
                            "http://admin:s3cret@a/h");
    EXPECT_EQ(pass.error, "Couldn't resolve host name");
}

TEST(HealthSloMetrics, StateSetAndProbedRoutesOnly) {
    auto checks = nlohmann::ordered_json::parse(R"({"routes": [
        {"route": "a", "status": "failing", "duration_ms": 1500.0, "consecutive_failures": 4},
        {"route": "b", "status": "ok", "duration_ms": 12.0, "consecutive_failures": 0},
        {"route": "c", "status": "unknown", "duration_ms": null, "consecutive_failures": 0}]})");
    auto slo = nlohmann::ordered_json::parse(R"({"sources": [{"name": "s", "status": "healthy"}],
        "routes": [{"name": "a", "status": "degraded"}]})");
    std::string t = metrics::render_health_slo(checks, slo);
    for (const char* line : {
             "hookq_destination_health_up{route=\"a\"} 0\n",
             "hookq_destination_health_up{route=\"b\"} 1\n",
             "hookq_destination_health_duration_seconds{route=\"a\"} 1.500000\n",
             "hookq_destination_health_consecutive_failures{route=\"a\"} 4\n",
             "hookq_slo_status{kind=\"source\",name=\"s\",status=\"healthy\"} 1\n",
             "hookq_slo_status{kind=\"source\",name=\"s\",status=\"degraded\"} 0\n",
             "hookq_slo_status{kind=\"route\",name=\"a\",status=\"healthy\"} 0\n",
             "hookq_slo_status{kind=\"route\",name=\"a\",status=\"degraded\"} 1\n",
             "hookq_slo_status{kind=\"route\",name=\"a\",status=\"unhealthy\"} 0\n",
         }) {
        EXPECT_NE(t.find(line), std::string::npos) << line << t;
    }
    EXPECT_EQ(t.find("route=\"c\""), std::string::npos) << t;  // not probed yet: no series
    // No snapshot yet: nothing at all.
    EXPECT_EQ(metrics::render_health_slo(nullptr, nullptr), "");
}

}  // namespace
}  // namespace hookq
