#include "worker/store/redis_node_health.h"

#include <gtest/gtest.h>

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

}  // namespace
