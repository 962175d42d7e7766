// The alerting rules the API applies without a database: which alerts a silence matches (the
// engine mutes by the same rule), and what a source-limited token sees and may silence.
#include <gtest/gtest.h>

#include "worker/ops/alerts.h"

namespace hookq::ops {
namespace {

using Json = nlohmann::ordered_json;

TEST(SilenceMatches, EveryMatcherMustEqualRuleOrLabel) {
    Json labels = {{"route", "orders"}, {"source", "stripe"}};
    EXPECT_TRUE(silence_matches(Json::object(), "failure_ratio", labels));  // {} matches all
    EXPECT_TRUE(silence_matches({{"rule", "failure_ratio"}}, "failure_ratio", labels));
    EXPECT_FALSE(silence_matches({{"rule", "failure_ratio"}}, "breaker_open", labels));
    EXPECT_TRUE(
        silence_matches({{"rule", "failure_ratio"}, {"route", "orders"}}, "failure_ratio", labels));
    EXPECT_FALSE(silence_matches({{"rule", "failure_ratio"}, {"route", "billing"}}, "failure_ratio",
                                 labels));
    // A label the alert does not carry is no match, not a wildcard.
    EXPECT_FALSE(silence_matches({{"queue", "stripe"}}, "failure_ratio", labels));
    EXPECT_FALSE(silence_matches({{"route", "orders"}}, "redis_down", Json::object()));
    // "rule" is the rule name, never a label that happens to be called rule.
    EXPECT_FALSE(silence_matches({{"rule", "x"}}, "failure_ratio", {{"rule", "x"}}));
    EXPECT_FALSE(silence_matches({{"route", 5}}, "failure_ratio", {{"route", "5"}}));
}

AlertScope stripe_scope() {
    AlertScope s;
    s.sources = std::vector<std::string>{"stripe"};
    s.routes = {"st"};
    s.destinations = {"http://pay:80"};
    return s;
}

TEST(AlertScope, LimitedTokenSeesAlertsOfItsSourcesOnly) {
    AlertScope all;
    EXPECT_TRUE(all.sees_labels(Json::object()));
    AlertScope s = stripe_scope();
    EXPECT_TRUE(s.sees_labels({{"source", "stripe"}}));
    EXPECT_TRUE(s.sees_labels({{"queue", "stripe"}}));
    EXPECT_TRUE(s.sees_labels({{"route", "st"}}));
    EXPECT_TRUE(s.sees_labels({{"destination", "http://pay:80"}}));
    EXPECT_TRUE(s.sees_labels({{"route", "st"}, {"source", "stripe"}, {"le", "30"}}));
    EXPECT_FALSE(s.sees_labels(Json::object()));  // redis_down{}: everyone's
    EXPECT_FALSE(s.sees_labels({{"route", "app"}}));
    EXPECT_FALSE(s.sees_labels({{"route", "st"}, {"source", "github"}}));
    EXPECT_FALSE(s.sees_labels({{"instance", "w1"}}));
}

TEST(AlertScope, LimitedTokenSilencesOnlyWhatItPins) {
    AlertScope all;
    EXPECT_TRUE(all.owns_matchers(Json::object()));
    AlertScope s = stripe_scope();
    EXPECT_TRUE(s.owns_matchers({{"rule", "failure_ratio"}, {"route", "st"}}));
    EXPECT_TRUE(s.owns_matchers({{"source", "stripe"}}));
    EXPECT_TRUE(s.owns_matchers({{"queue", "stripe"}}));
    EXPECT_FALSE(s.owns_matchers(Json::object()));
    EXPECT_FALSE(s.owns_matchers({{"rule", "redis_down"}}));
    EXPECT_FALSE(s.owns_matchers({{"route", "app"}}));
    EXPECT_FALSE(s.owns_matchers({{"route", "st"}, {"queue", "github"}}));
    // Destinations are shared between teams' routes: not a pin.
    EXPECT_FALSE(s.owns_matchers({{"destination", "http://pay:80"}}));
}

TEST(AlertRules, TheContractsNames) {
    for (const char* r :
         {"failure_ratio", "dead_letters", "queue_depth", "queue_age", "retry_overdue",
          "breaker_open", "signature_failures", "source_silent", "slow_p95", "slow_delivery",
          "fallback_used", "redis_down", "postgres_down", "health_check", "loop_detected",
          "queue_unreachable", "redis_memory"}) {
        EXPECT_TRUE(known_alert_rule(r)) << r;
    }
    EXPECT_FALSE(known_alert_rule("breaker_opened"));
    EXPECT_FALSE(known_alert_rule(""));
}

}  // namespace
}  // namespace hookq::ops
