// Breaker and retry deadlines are Redis's clock, carried between TIME samples by the local
// monotonic clock: a host whose wall clock is off by minutes must still agree with Redis.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "worker/clock.h"
#include "worker/pipeline/clock.h"

namespace hookq {
namespace {

uint64_t wall_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

TEST(RedisClock, BeforeTheFirstSampleItIsThisHostsWallClock) {
    RedisClock c;
    EXPECT_FALSE(c.synced());
    uint64_t w = wall_us();
    uint64_t now = c.now_us();
    EXPECT_LT(now > w ? now - w : w - now, 50'000u);
}

TEST(RedisClock, FollowsRedisWhateverThisHostSays) {
    RedisClock c;
    // Redis is ten minutes behind this host; its answer came back 2 ms after the request.
    int64_t sent = RedisClock::mono_us();
    int64_t recv = sent + 2000;
    uint64_t redis_us = wall_us() - 600'000'000;
    c.sync(redis_us, sent, recv);
    EXPECT_TRUE(c.synced());
    // Read at the midpoint of the round trip, so now = redis + (now - midpoint).
    int64_t mid = (sent + recv) / 2;
    int64_t expect = static_cast<int64_t>(redis_us) + (RedisClock::mono_us() - mid);
    int64_t got = static_cast<int64_t>(c.now_us());
    EXPECT_LT(std::abs(got - expect), 50'000);
    EXPECT_LT(c.now_ms(), wall_us() / 1000 - 590'000);  // not this host's wall clock
}

TEST(RedisClock, AdvancesWithTheMonotonicClockBetweenSamples) {
    RedisClock c;
    int64_t t = RedisClock::mono_us();
    c.sync(1'000'000'000'000, t, t);
    uint64_t a = c.now_us();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t b = c.now_us();
    EXPECT_GE(b - a, 20'000u);
    EXPECT_GE(a, 1'000'000'000'000u);
}

// Every timestamp the API, hookqctl and alerts show goes through rfc3339(); the old copies
// differed only in how many fraction digits they kept, so this holds each kind.
TEST(Rfc3339, WholeSecondsMillisecondsOrMicroseconds) {
    const int64_t us = 1764512700123456;  // 2025-11-30T14:25:00.123456Z
    EXPECT_EQ(rfc3339(us), "2025-11-30T14:25:00Z");
    EXPECT_EQ(rfc3339(us, 3), "2025-11-30T14:25:00.123Z");
    EXPECT_EQ(rfc3339(us, 6), "2025-11-30T14:25:00.123456Z");
    EXPECT_EQ(rfc3339(0, 6), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(rfc3339(999, 3), "1970-01-01T00:00:00.000Z");  // truncated, as a clock reads
}

TEST(Rfc3339, BeforeTheEpochRoundsDown) {
    // A replay's "since 100000d" resolves to before 1970; a negative remainder once printed as
    // "00:00:00.-00001".
    EXPECT_EQ(rfc3339(-1, 6), "1969-12-31T23:59:59.999999Z");
    EXPECT_EQ(rfc3339(-1'500'000), "1969-12-31T23:59:58Z");
    EXPECT_EQ(rfc3339(-1'500'000, 3), "1969-12-31T23:59:58.500Z");
}

}  // namespace
}  // namespace hookq
