#include <gtest/gtest.h>

#include "worker/pipeline/breaker.h"
#include "worker/pipeline/decide.h"
#include "worker/pipeline/retry.h"

namespace hookq {
namespace {

AttemptResult http(int status, std::optional<uint64_t> retry_after = std::nullopt) {
    AttemptResult r;
    r.http_status = status;
    r.retry_after_ms = retry_after;
    return r;
}

TEST(WorkerRetry, ExponentialCeilingAndFullJitter) {
    RetryPolicy p;  // 1 s, x2, 30 s cap
    EXPECT_EQ(backoff_ceiling_ms(p, 1), 1000u);
    EXPECT_EQ(backoff_ceiling_ms(p, 2), 2000u);
    EXPECT_EQ(backoff_ceiling_ms(p, 5), 16000u);
    EXPECT_EQ(backoff_ceiling_ms(p, 6), 30000u);
    EXPECT_EQ(backoff_ceiling_ms(p, 60), 30000u);
    EXPECT_EQ(backoff_delay_ms(p, 3, 0.0), 0u);
    EXPECT_EQ(backoff_delay_ms(p, 3, 0.5), 2000u);
    EXPECT_EQ(backoff_delay_ms(p, 3, 0.999999), 4000u);
    p.jitter = false;
    EXPECT_EQ(backoff_delay_ms(p, 3, 0.1), 4000u);
}

TEST(WorkerRetry, RetryAfter) {
    EXPECT_EQ(parse_retry_after_ms(" 120 ", 0), 120000u);
    EXPECT_EQ(parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000u);
    EXPECT_EQ(parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0u);
    EXPECT_FALSE(parse_retry_after_ms("", 0));
    EXPECT_FALSE(parse_retry_after_ms("soon", 0));
}

TEST(WorkerDecide, Classification) {
    RetryPolicy p;
    for (int s : {200, 201, 204, 299}) {
        EXPECT_EQ(decide(http(s), 1, p, 0.5).kind, OutcomeKind::delivered) << s;
    }
    for (int s : {408, 425, 429, 500, 502, 503, 504}) {
        Decision d = decide(http(s), 1, p, 0.5);
        EXPECT_EQ(d.kind, OutcomeKind::retry) << s;
        EXPECT_TRUE(d.breaker_failure) << s;
    }
    for (int s : {301, 400, 401, 403, 404, 422}) {
        Decision d = decide(http(s), 1, p, 0.5);
        EXPECT_EQ(d.kind, OutcomeKind::dead) << s;
        EXPECT_FALSE(d.breaker_failure) << s;
        EXPECT_FALSE(d.flag_route) << s;
    }
    Decision gone = decide(http(410), 1, p, 0.5);
    EXPECT_EQ(gone.kind, OutcomeKind::dead);
    EXPECT_TRUE(gone.flag_route);
    EXPECT_FALSE(gone.breaker_failure);

    AttemptResult t;
    t.transport = Transport::timeout;
    EXPECT_EQ(decide(t, 1, p, 0.5).kind, OutcomeKind::retry);
    t.transport = Transport::connect_error;
    EXPECT_EQ(decide(t, 2, p, 0.5).kind, OutcomeKind::retry);
    Decision last = decide(t, 3, p, 0.5);
    EXPECT_EQ(last.kind, OutcomeKind::dead);
    EXPECT_NE(last.reason.find("attempts exhausted"), std::string::npos);
    EXPECT_TRUE(last.breaker_failure);
}

// A 2xx whose body is then cut short (on purpose, by the timeout or by the peer) was delivered: the
// application answered. Counting it as a timeout meant duplicate deliveries and a false dead
// letter.
TEST(WorkerDecide, StatusLineDecidesWhateverHappensToTheBody) {
    RetryPolicy p;
    for (Transport t : {Transport::ok, Transport::timeout, Transport::other_error}) {
        AttemptResult r = attempt_result(t, 200, "Failure writing output to destination");
        EXPECT_EQ(r.transport, Transport::ok);
        EXPECT_EQ(r.http_status, 200);
        EXPECT_EQ(decide(r, 1, p, 0.5).kind, OutcomeKind::delivered);
        AttemptResult e = attempt_result(t, 503, "Operation timed out");
        EXPECT_EQ(decide(e, 1, p, 0.5).reason, "HTTP 503");
    }
    AttemptResult none = attempt_result(Transport::timeout, 0, "Operation timed out");
    EXPECT_EQ(none.transport, Transport::timeout);
    EXPECT_EQ(decide(none, 1, p, 0.5).reason, "timeout: Operation timed out");
}

TEST(WorkerDecide, BodyExcerptIsBoundedAndClean) {
    EXPECT_EQ(body_excerpt("db down\r\n\x01x\t", 1024), "db down   x");
    EXPECT_EQ(body_excerpt(std::string(5000, 'a'), 1024), std::string(1024, 'a'));
    // "é" is two bytes: a cut between them drops the whole character.
    EXPECT_EQ(body_excerpt("ab\xc3\xa9", 3), "ab");
    EXPECT_EQ(body_excerpt("ab\xc3\xa9", 4), "ab\xc3\xa9");
    EXPECT_EQ(body_excerpt("a\xe2\x82\xac", 3), "a");
    EXPECT_EQ(body_excerpt("", 10), "");
}

TEST(WorkerDecide, RetryAfterHonouredAndCapped) {
    RetryPolicy p;
    EXPECT_EQ(decide(http(429, 5000), 1, p, 0.0).delay_ms, 5000u);
    EXPECT_EQ(decide(http(503, 3600000), 1, p, 0.0).delay_ms, 30000u);
    // The backoff still applies when the server asks for less.
    EXPECT_EQ(decide(http(429, 10), 2, p, 1.0).delay_ms, 2000u);
}

TEST(WorkerBreaker, ParseAcquire) {
    auto a = parse_acquire({"park", "open", "1700000000000", ""});
    EXPECT_EQ(a.action, AcquireResult::park);
    EXPECT_EQ(a.state, BreakerState::open);
    EXPECT_EQ(a.until_ms, 1700000000000u);
    auto p = parse_acquire({"probe", "half_open", "0", "open>half_open"});
    EXPECT_EQ(p.action, AcquireResult::probe);
    EXPECT_EQ(p.transition, "open>half_open");
    EXPECT_EQ(parse_acquire({}).action, AcquireResult::allow);  // fail open
}

TEST(WorkerBreaker, CacheAvoidsRoundTrips) {
    BreakerCache c(100);
    uint64_t until = 0;
    EXPECT_EQ(c.check("d", 1000, until), BreakerCache::Local::ask_redis);
    c.update("d", BreakerState::closed, 0, 1000);
    EXPECT_EQ(c.check("d", 1050, until), BreakerCache::Local::allow);
    EXPECT_EQ(c.check("d", 1100, until), BreakerCache::Local::ask_redis);
    c.update("d", BreakerState::open, 5000, 1100);
    uint64_t checked = 0;
    EXPECT_EQ(c.check("d", 2099, until, &checked), BreakerCache::Local::park);
    EXPECT_EQ(until, 5000u);
    EXPECT_EQ(checked, 1100u);  // what the park's staleness is judged by
    // Open is trusted for a second only: someone else may have closed it (a reset).
    EXPECT_EQ(c.check("d", 2100, until), BreakerCache::Local::ask_redis);
    c.update("d", BreakerState::open, 5000, 4500);
    EXPECT_EQ(c.check("d", 4999, until), BreakerCache::Local::park);
    EXPECT_EQ(c.check("d", 5000, until), BreakerCache::Local::ask_redis);
    c.update("d", BreakerState::closed, 0, 6000);
    EXPECT_FALSE(c.report_needed("d", true, false));
    EXPECT_TRUE(c.report_needed("d", false, false));
    EXPECT_TRUE(c.report_needed("d", true, true));
}

}  // namespace
}  // namespace hookq
