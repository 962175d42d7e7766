#include <gtest/gtest.h>

#include "shared/signature_impl.h"

namespace hookq::sig {
namespace {

TEST(PaypalTime, Rfc3339ToUnixSeconds) {
    EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_iso8601("2026-11-30T17:05:00Z"), 1796058300);
    EXPECT_EQ(parse_iso8601("2026-11-30T17:05:00.123456Z"), 1796058300);
    EXPECT_EQ(parse_iso8601("2026-11-30T19:05:00+02:00"), 1796058300);
    EXPECT_EQ(parse_iso8601("2026-11-30T12:35:00-04:30"), 1796058300);
    EXPECT_EQ(parse_iso8601("2024-02-29T00:00:00Z"), 1709164800);  // a leap day
    EXPECT_EQ(parse_iso8601("2026-11-30t17:05:00z"), 1796058300);
}

TEST(PaypalTime, RefusesWhatIsNotRfc3339) {
    for (std::string_view bad :
         {"", "2026-11-30", "2026-11-30T17:05:00", "2026-11-30 17:05:00Z", "2026-13-01T00:00:00Z",
          "2026-11-30T24:00:00Z", "2026-11-30T17:05:00.Z", "2026-11-30T17:05:00+0200",
          "2026-11-30T17:05:00+02:00 ", "yesterday", "2026-11-30T17:05:00UTC"}) {
        EXPECT_FALSE(parse_iso8601(bad)) << bad;
    }
}

}  // namespace
}  // namespace hookq::sig
