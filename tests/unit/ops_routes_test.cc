// What GET /api/v1/routes shows of a route's URL: never a credential or a query value.
#include <gtest/gtest.h>

#include "worker/ops/routes.h"

namespace hookq::ops {
namespace {

TEST(RouteDisplayUrl, DropsUserinfoQueryValuesAndFragment) {
    EXPECT_EQ(display_url("http://app:8080/hooks"), "http://app:8080/hooks");
    EXPECT_EQ(display_url("https://user:p%40ss@app/hooks?token=abc&v=2#frag"),
              "https://app/hooks?token=REDACTED&v=REDACTED");
    EXPECT_EQ(display_url("http://u@h:1?flag&k="), "http://h:1?flag&k=REDACTED");
    // An @ in the path or query is not userinfo.
    EXPECT_EQ(display_url("http://h/a@b?x=c@d"), "http://h/a@b?x=REDACTED");
    EXPECT_EQ(display_url("http://h?x=1@y"), "http://h?x=REDACTED");
}

}  // namespace
}  // namespace hookq::ops
