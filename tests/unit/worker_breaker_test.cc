#include <gtest/gtest.h>

#include "shared/redis_keys.h"
#include "worker/pipeline/breaker.h"

namespace hookq {
namespace {

Route make_route(std::string name, std::string dest, uint64_t timeout_ms) {
    Route r;
    r.name = std::move(name);
    r.destination = std::move(dest);
    r.timeout_ms = timeout_ms;
    return r;
}

TEST(BreakerLease, LongestTimeoutOfTheDestinationPlusMargin) {
    std::vector<Route> routes{
        make_route("a", "http://app:80", 2000), make_route("b", "http://app:80", 7000),
        make_route("c", "http://app:80", 1000), make_route("d", "https://other:443", 1500)};
    auto leases = probe_leases(routes, 2000);
    ASSERT_EQ(leases.size(), 2u);
    EXPECT_EQ(leases.at("http://app:80"), 9000u);
    EXPECT_EQ(leases.at("https://other:443"), 3500u);
}

TEST(BreakerLease, DefaultMarginIsAddedToTheTimeout) {
    auto leases = probe_leases({make_route("a", "http://app:80", 10000)});
    EXPECT_EQ(leases.at("http://app:80"), 10000 + kProbeLeaseMarginMs);
}

TEST(BreakerLease, TokenNamesWorkerAndProbe) {
    EXPECT_EQ(probe_token("w1", 42), "w1:42");
    EXPECT_NE(probe_token("w1", 42), probe_token("w2", 42));
    EXPECT_NE(probe_token("w1", 42), probe_token("w1", 43));
}

TEST(BreakerAcquire, ParsesProbeAndPark) {
    auto p = parse_acquire({"probe", "half_open", "0", "open>half_open"});
    EXPECT_EQ(p.action, AcquireResult::probe);
    EXPECT_EQ(p.state, BreakerState::half_open);
    EXPECT_EQ(p.transition, "open>half_open");
    auto k = parse_acquire({"park", "half_open", "1700000000123", ""});
    EXPECT_EQ(k.action, AcquireResult::park);
    EXPECT_EQ(k.until_ms, 1700000000123u);
    // A malformed reply fails open.
    EXPECT_EQ(parse_acquire({"park"}).action, AcquireResult::allow);
}

TEST(BreakerParked, KeysKeepTheQueueHashTag) {
    EXPECT_EQ(keys::parked("github", "https://app:443"), "hookq:{github}:parked:https://app:443");
    EXPECT_EQ(keys::parked_destinations("github"), "hookq:{github}:parked_destinations");
}

}  // namespace
}  // namespace hookq
