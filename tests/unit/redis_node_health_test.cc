#include "worker/store/redis_node_health.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

using hookq::cluster::NodeHealth;
using V = NodeHealth::Verdict;

namespace {

constexpr uint64_t kTimeout = 2000;

TEST(NodeHealth, UpUntilACallFails) {
    NodeHealth h(kTimeout);
    EXPECT_EQ(h.may_call("a:1", 0), V::go);
    EXPECT_FALSE(h.answered("a:1"));
    EXPECT_FALSE(h.is_down("a:1", 0));
}

TEST(NodeHealth, ARefusedNodeIsSkippedThenProbedByOneCallerAtATime) {
    NodeHealth h(kTimeout);
    EXPECT_TRUE(h.failed("a:1", 0, 1000));  // starts an outage: logged once
    EXPECT_FALSE(h.failed("a:1", 0, 1000));
    EXPECT_EQ(h.may_call("b:2", 1000), V::go);  // other nodes are not affected
    // Refused twice in a row: 50 ms, then 100 ms.
    EXPECT_EQ(h.may_call("a:1", 1099), V::skip);
    EXPECT_TRUE(h.is_down("a:1", 1099));
    EXPECT_EQ(h.may_call("a:1", 1100), V::probe);
    EXPECT_EQ(h.may_call("a:1", 1100), V::skip);  // one probe at a time
    EXPECT_TRUE(h.answered("a:1"));               // ends the outage: logged once
    EXPECT_FALSE(h.answered("a:1"));
    EXPECT_EQ(h.may_call("a:1", 1100), V::go);
}

TEST(NodeHealth, QuickFailuresBackOffUpToOneSecond) {
    NodeHealth h(kTimeout);
    uint64_t now = 0;
    h.failed("a:1", 0, now);
    uint64_t expect = 50;
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(h.may_call("a:1", now + expect - 1), V::skip) << i;
        now += expect;
        ASSERT_EQ(h.may_call("a:1", now), V::probe) << i;
        h.failed("a:1", 1, now);
        expect = std::min<uint64_t>(expect * 2, 1000);
    }
    EXPECT_EQ(expect, 1000u);
}

TEST(NodeHealth, AHungNodeIsProbedAtMostEveryFiveSeconds) {
    NodeHealth h(kTimeout);
    EXPECT_TRUE(h.slow(kTimeout));
    EXPECT_TRUE(h.slow(kTimeout / 2));
    EXPECT_FALSE(h.slow(kTimeout / 2 - 1));
    uint64_t now = 0;
    h.failed("a:1", kTimeout, now);
    for (uint64_t expect : {1000, 2000, 4000, 5000, 5000}) {
        EXPECT_EQ(h.may_call("a:1", now + expect - 1), V::skip) << expect;
        now += expect;
        ASSERT_EQ(h.may_call("a:1", now), V::probe) << expect;
        now += kTimeout;  // the probe waits out the timeout too
        h.failed("a:1", kTimeout, now);
    }
    // A quick refusal after a hang (the process was killed) comes back to the short backoff.
    now += 5000;
    ASSERT_EQ(h.may_call("a:1", now), V::probe);
    h.failed("a:1", 0, now);
    EXPECT_EQ(h.may_call("a:1", now + 1000), V::probe);
}

TEST(NodeHealth, AProbeNobodyReportsLapses) {
    NodeHealth h(kTimeout);
    h.failed("a:1", 0, 0);
    ASSERT_EQ(h.may_call("a:1", 50), V::probe);
    EXPECT_EQ(h.may_call("a:1", 50 + 2 * kTimeout + 999), V::skip);
    EXPECT_EQ(h.may_call("a:1", 50 + 2 * kTimeout + 1000), V::probe);
}

TEST(NodeHealth, ManyNodesDownAtOnce) {
    NodeHealth h(kTimeout);
    h.failed("a:1", 0, 0);
    h.failed("b:2", 0, 0);
    EXPECT_TRUE(h.answered("a:1"));
    EXPECT_TRUE(h.is_down("b:2", 10));
    EXPECT_EQ(h.may_call("a:1", 10), V::go);
    EXPECT_TRUE(h.answered("b:2"));
    EXPECT_FALSE(h.is_down("b:2", 10));
}

TEST(NodeHealth, WithAProberNoCallerProbes) {
    NodeHealth h(kTimeout);
    h.set_prober(true);
    h.failed("a:1", kTimeout, 0);
    uint64_t next = 0;
    EXPECT_TRUE(h.due(999, next).empty());
    EXPECT_EQ(next, 1000u);
    // Past the backoff a caller is still told to skip, and keyless calls still avoid the node: the
    // probe is the prober's.
    EXPECT_EQ(h.may_call("a:1", 5000), V::skip);
    EXPECT_TRUE(h.is_down("a:1", 5000));
    EXPECT_EQ(h.due(1000, next), std::vector<std::string>{"a:1"});
    EXPECT_EQ(next, UINT64_MAX);
    // Under way: not due again until it reports, or lapses.
    EXPECT_TRUE(h.due(1001, next).empty());
    EXPECT_EQ(next, 1000 + 2 * kTimeout + 1000);
    h.failed("a:1", kTimeout, 1000 + kTimeout);  // hung again: 2 s more
    EXPECT_TRUE(h.due(1000 + kTimeout + 1999, next).empty());
    EXPECT_EQ(h.due(1000 + kTimeout + 2000, next), std::vector<std::string>{"a:1"});
    EXPECT_TRUE(h.answered("a:1"));
    EXPECT_EQ(h.may_call("a:1", 9000), V::go);
    EXPECT_TRUE(h.due(9000, next).empty());
    EXPECT_EQ(next, UINT64_MAX);
    // Without the prober, callers probe again.
    h.set_prober(false);
    h.failed("a:1", 0, 9000);
    EXPECT_EQ(h.may_call("a:1", 9050), V::probe);
}

TEST(NodeHealth, AnOutageWakesTheProber) {
    NodeHealth h(kTimeout);
    h.set_prober(true);
    uint64_t next = 0;
    ASSERT_TRUE(h.due(0, next).empty());
    ASSERT_EQ(next, UINT64_MAX);
    // The outage starts between the prober's look and its sleep: the sleep must not miss it.
    h.failed("a:1", 0, 0);
    h.wait_until(UINT64_MAX);  // returns at once
    std::thread prober([&] { h.wait_until(UINT64_MAX); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    h.failed("b:2", 0, 0);
    prober.join();
    std::thread stopping([&] { h.wait_until(UINT64_MAX); });
    h.wake();
    stopping.join();
}

}  // namespace
