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
    EXPECT_EQ(error_of(std::string(kBase) + "timeout = \"301s\"\n"),
              "w.toml:9:11: 'timeout' must be between 1s and 300s");
    EXPECT_EQ(error_of(std::string(kBase) + "timeout = \"soon\"\n"),
              "w.toml:9:11: 'timeout' must be a duration such as \"10s\"");
    // Seconds whose milliseconds would wrap around to 5,384 ms, which is in range.
    EXPECT_EQ(error_of(std::string(kBase) + "timeout = 18446744073709557\n"),
              "w.toml:9:11: 'timeout' must be between 1s and 300s");
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

TEST(WorkerConfig, Retention) {
    Config d = load_config_string(kBase, "w.toml");
    EXPECT_EQ(d.retention.events_ms, 90ull * 86400 * 1000);
    EXPECT_EQ(d.retention.audit_ms, 365ull * 86400 * 1000);
    EXPECT_EQ(d.retention.interval_ms, 3600ull * 1000);
    Config c = load_config_string(std::string(kBase) +
                                      "[retention]\nevents = \"30d\"\nattempts = \"off\"\n"
                                      "dead_letters = 0\naudit = \"2y\"\ninterval = \"off\"\n",
                                  "w.toml");
    EXPECT_EQ(c.retention.events_ms, 30ull * 86400 * 1000);
    EXPECT_EQ(c.retention.attempts_ms, 0u);
    EXPECT_EQ(c.retention.dead_letters_ms, 0u);
    EXPECT_EQ(c.retention.interval_ms, 0u);
    EXPECT_EQ(c.retention.audit_ms, 2ull * 365 * 86400 * 1000);
    std::string r = std::string(kBase) + "[retention]\n";
    EXPECT_EQ(error_of(r + "events = \"12h\"\n"),
              "w.toml:10:10: 'events' must be between 1d and 36500d");
    EXPECT_EQ(error_of(r + "interval = \"1s\"\n"),
              "w.toml:10:12: 'interval' must be between 10s and 36500d");
    EXPECT_EQ(error_of(r + "event = \"1d\"\n"), "w.toml:10:1: unknown key 'event' in [retention]");
}

// Each of these was accepted before: a brace splits a queue's keys over hash slots, "6379abc" was
// read as 6379, and a CR/LF in a URL only failed at delivery, as a dead letter per webhook.
TEST(WorkerConfig, RefusesBracesBadPortsAndControlCharacters) {
    std::string redis_at = "[redis]\naddress = \"ADDR\"\n";
    auto with_redis = [&](const std::string& addr) {
        std::string r = redis_at;
        r.replace(r.find("ADDR"), 4, addr);
        return error_of(r + kBase);
    };
    for (const char* bad : {"127.0.0.1:6379abc", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:",
                            "127.0.0.1", ":6379", "127.0.0.1: 6379", "127.0.0.1:+6379"}) {
        EXPECT_EQ(with_redis(bad),
                  "w.toml:2:11: 'address' must be host:port (port 1-65535) or "
                  "unix:/path/to/socket")
            << bad;
    }
    EXPECT_EQ(with_redis("127.0.0.1:65535"), "");
    Config v6 =
        load_config_string("[redis]\naddress = \"[::1]:6380\"\n" + std::string(kBase), "w.toml");
    EXPECT_EQ(v6.redis_host, "::1");
    EXPECT_EQ(v6.redis_port, 6380);

    std::string braces = kBase;
    braces.replace(braces.find("\"github\""), 8, "\"git{hub}\"");
    EXPECT_EQ(error_of(braces),
              "w.toml:7:10: [[routes]] 'gh': 'source' must not contain '{' or '}'");
    EXPECT_NE(error_of("[worker]\nqueues = [\"a}\"]\n" + std::string(kBase)).find("w.toml:2:"),
              std::string::npos);

    // A NUL is dropped when stored as text, so "gh" and "gh\u0000" would share their rows.
    std::string nul = kBase;
    nul.replace(nul.find("\"gh\""), 4, "\"gh\\u0000\"");
    EXPECT_EQ(error_of(nul),
              "w.toml:6:8: [[routes]]: 'name' must not contain control characters (byte 0x00 at "
              "offset 2)");
    std::string tab = kBase;
    tab.replace(tab.find("\"github\""), 8, "\"git\\thub\"");
    EXPECT_EQ(error_of(tab),
              "w.toml:7:10: [[routes]] 'gh': 'source' must not contain control characters (byte "
              "0x09 at offset 3)");

    std::string crlf = kBase;
    crlf.replace(crlf.find("/hooks/github"), 13, "/hooks/github\\r\\nX-Evil: 1");
    EXPECT_EQ(error_of(crlf),
              "w.toml:8:7: [[routes]] 'gh': 'url' must not contain spaces or control characters "
              "(byte 0x0d at offset 32)");
    EXPECT_NE(error_of(std::string(kBase) + "fallback_url = \"http://b/\\u0001\"\n")
                  .find("w.toml:9:16: [[routes]] 'gh': 'fallback_url' must not contain"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "fallback_url = \"http://b/a b\"\n").find("0x20"),
              std::string::npos);
}

TEST(WorkerConfig, ForwardingOptions) {
    const Route d = load_config_string(kBase, "w.toml").routes[0];
    EXPECT_TRUE(d.forward_headers);
    EXPECT_TRUE(d.forward_query);
    EXPECT_TRUE(d.forward_allow.empty());
    EXPECT_TRUE(d.forward_deny.empty());  // unsigned: the provider's webhook-* headers pass
    EXPECT_TRUE(d.redact_query.contains("TOKEN"));
    EXPECT_TRUE(d.redact_query.contains("access_token"));

    Config c = load_config_string(std::string(kBase) + R"(
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
forward_headers_allow = ["X-Hub-Signature-256", "x-github-event"]
forward_headers_deny = ["Cookie"]
forward_query = false
redact_query = ["requestId"]
)",
                                  "w.toml");
    const Route& r = c.routes[0];
    EXPECT_TRUE(r.forward_allow.contains("x-hub-signature-256"));
    EXPECT_TRUE(r.forward_allow.contains("X-GITHUB-EVENT"));
    EXPECT_TRUE(r.forward_deny.contains("cookie"));
    EXPECT_TRUE(r.forward_deny.contains("Webhook-Signature"));  // hookq signs this route
    EXPECT_FALSE(r.forward_query);
    EXPECT_TRUE(r.redact_query.contains("requestid"));
    EXPECT_FALSE(r.redact_query.contains("token"));  // the list replaces the default

    for (const char* name : {"Host", "connection", "Proxy-Authorization", "X-Hookq-Source",
                             "X-Request-ID", "Content-Length", "Transfer-Encoding", "Expect"}) {
        EXPECT_TRUE(never_forwarded(name)) << name;
    }
    for (const char* name : {"X-Hub-Signature-256", "User-Agent", "Stripe-Signature", "X-Proxy"}) {
        EXPECT_FALSE(never_forwarded(name)) << name;
    }
    EXPECT_EQ(error_of(std::string(kBase) + "forward_headers_allow = [\"Host\"]\n"),
              "w.toml:9:25: [[routes]] 'gh': 'forward_headers_allow': Host is never forwarded "
              "(hop-by-hop, or set by hookq)");
    EXPECT_NE(error_of(std::string(kBase) + "forward_headers_deny = [\"X Bad\"]\n")
                  .find("'forward_headers_deny' entries must be header names"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(kBase) + "forward_headers = \"yes\"\n").find("true or false"),
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
