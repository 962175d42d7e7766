#include <gtest/gtest.h>

#include "worker/config.h"

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

TEST(WorkerConfig, DefaultsFromTheIssue) {
    Config c = load_config_string(kBase, "w.toml");
    ASSERT_EQ(c.routes.size(), 1u);
    const Route& r = c.routes[0];
    EXPECT_EQ(r.timeout_ms, 10000u);
    EXPECT_EQ(r.retry.max_attempts, 3u);
    EXPECT_EQ(r.retry.initial_ms, 1000u);
    EXPECT_DOUBLE_EQ(r.retry.multiplier, 2.0);
    EXPECT_EQ(r.retry.max_delay_ms, 30000u);
    EXPECT_TRUE(r.retry.jitter);
    EXPECT_EQ(r.destination, "http://app.internal:80");
    EXPECT_EQ(c.breaker.failure_threshold, 5u);
    EXPECT_EQ(c.breaker.window_ms, 300000u);
    EXPECT_EQ(c.breaker.open_ms, 60000u);
    EXPECT_EQ(c.breaker.close_after, 3u);
    EXPECT_EQ(c.queues, std::vector<std::string>{"github"});
    EXPECT_FALSE(c.worker_id.empty());
}

TEST(WorkerConfig, RouteOverridesAndSecret) {
    Config c = load_config_string(std::string(kBase) + R"(
timeout = "2s"
rate_limit = "120/min"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
fallback_url = "https://backup.internal/x"
events = ["push"]
[routes.retry]
max_attempts = 7
initial = "250ms"
)",
                                  "w.toml");
    const Route& r = c.routes[0];
    EXPECT_EQ(r.timeout_ms, 2000u);
    EXPECT_EQ(r.retry.max_attempts, 7u);
    EXPECT_EQ(r.retry.initial_ms, 250u);
    ASSERT_TRUE(r.rate_limit);
    EXPECT_DOUBLE_EQ(r.rate_limit->per_second, 2.0);
    EXPECT_EQ(r.signing_key.size(), 24u);
    EXPECT_EQ(r.events, std::vector<std::string>{"push"});
}

TEST(WorkerConfig, HeartbeatOutlivesOneRedisTimeout) {
    EXPECT_EQ(error_of("[worker]\nheartbeat_ttl = \"2s\"\n" + std::string(kBase)),
              "w.toml:2:17: [worker] 'heartbeat_ttl' must be at least 1.5 times [redis] 'timeout' "
              "(2000ms against 2000ms)");
    EXPECT_EQ(error_of("[redis]\ntimeout = \"11s\"\n" + std::string(kBase)),
              "w.toml:2:11: [worker] 'heartbeat_ttl' must be at least 1.5 times [redis] 'timeout' "
              "(15000ms against 11000ms)");
    Config c = load_config_string(
        "[worker]\nheartbeat_ttl = \"3s\"\ndrain_timeout = \"1m\"\n" + std::string(kBase),
        "w.toml");
    EXPECT_EQ(c.heartbeat_ttl_ms, 3000u);
    EXPECT_EQ(c.drain_timeout_ms, 60000u);
}

TEST(WorkerConfig, MaxInflightBytes) {
    EXPECT_EQ(load_config_string(kBase, "w.toml").max_inflight_bytes, 256u << 20);
    EXPECT_EQ(load_config_string("[worker]\nmax_inflight_bytes = \"64k\"\n" + std::string(kBase),
                                 "w.toml")
                  .max_inflight_bytes,
              64u * 1024);
    EXPECT_EQ(
        load_config_string("[worker]\nmax_inflight_bytes = 4096\n" + std::string(kBase), "w.toml")
            .max_inflight_bytes,
        4096u);
    EXPECT_EQ(error_of("[worker]\nmax_inflight_bytes = \"lots\"\n" + std::string(kBase)),
              "w.toml:2:22: 'max_inflight_bytes' must be a size such as \"256m\"");
    EXPECT_EQ(error_of("[worker]\nmax_inflight_bytes = 10\n" + std::string(kBase)),
              "w.toml:2:22: 'max_inflight_bytes' must be between 1024 and 1099511627776 bytes");
}

TEST(WorkerConfig, ErrorsNameFileLineAndKey) {
    EXPECT_EQ(error_of(std::string(kBase) + "timout = \"3s\"\n"),
              "w.toml:9:1: unknown key 'timout' in [[routes]] 'gh'");
    EXPECT_EQ(error_of(std::string(kBase) + "timeout = \"31s\"\n"),
              "w.toml:9:11: 'timeout' must be between 1s and 30s");
    EXPECT_EQ(error_of(std::string(kBase) + "timeout = \"soon\"\n"),
              "w.toml:9:11: 'timeout' must be a duration such as \"10s\"");
    EXPECT_NE(error_of("[worker]\nmax_inflight = 0\n[postgres]\ndsn='x'\n").find("w.toml:2:"),
              std::string::npos);
    EXPECT_NE(error_of("[worker\n").find("w.toml:1:"), std::string::npos);
    EXPECT_NE(error_of("[postgres]\ndsn = 'x'\n").find("no [[routes]]"), std::string::npos);
    EXPECT_NE(
        error_of(std::string(kBase) + "[[routes]]\nname = \"gh\"\nsource=\"x\"\nurl=\"http://a\"\n")
            .find("duplicate route name"),
        std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "rate_limit = \"lots\"\n").find("rate_limit"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "secret = \"plain\"\n").find("whsec_"),
              std::string::npos);
}

TEST(WorkerConfig, UrlDestination) {
    EXPECT_EQ(url_destination("http://Example.com/x?y"), "http://example.com:80");
    EXPECT_EQ(url_destination("https://example.com"), "https://example.com:443");
    EXPECT_EQ(url_destination("http://u:p@127.0.0.1:8080/a"), "http://127.0.0.1:8080");
    EXPECT_EQ(url_destination("http://[::1]:9000/a"), "http://[::1]:9000");
    EXPECT_FALSE(url_destination("ftp://x/"));
    EXPECT_FALSE(url_destination("http:///path"));
    EXPECT_FALSE(url_destination("http://h:99999/"));
}

TEST(WorkerConfig, ParseRate) {
    EXPECT_DOUBLE_EQ(*parse_rate("100/min"), 100.0 / 60);
    EXPECT_DOUBLE_EQ(*parse_rate("10/s"), 10.0);
    EXPECT_DOUBLE_EQ(*parse_rate("36/h"), 0.01);
    EXPECT_FALSE(parse_rate("0/s"));
    EXPECT_FALSE(parse_rate("/s"));
    EXPECT_FALSE(parse_rate("5/day"));
}

}  // namespace
}  // namespace hookq
