#include "shared/units.h"

#include <gtest/gtest.h>

#include <string>

namespace hookq {
namespace {

constexpr uint64_t kS = 1000;
constexpr uint64_t kMin = 60 * kS;
constexpr uint64_t kH = 60 * kMin;
constexpr uint64_t kD = 24 * kH;
constexpr uint64_t kInt64Max = 9223372036854775807ULL;

TEST(UnitsDuration, SingleUnits) {
    EXPECT_EQ(parse_duration_ms("250ms"), 250u);
    EXPECT_EQ(parse_duration_ms("30s"), 30 * kS);
    EXPECT_EQ(parse_duration_ms("5m"), 5 * kMin);
    EXPECT_EQ(parse_duration_ms("72h"), 72 * kH);
    EXPECT_EQ(parse_duration_ms("7d"), 7 * kD);
    EXPECT_EQ(parse_duration_ms("1w"), 7 * kD);
    EXPECT_EQ(parse_duration_ms("1M"), 30 * kD);
    EXPECT_EQ(parse_duration_ms("1y"), 365 * kD);
    EXPECT_EQ(parse_duration_ms("0"), 0u);
    EXPECT_EQ(parse_duration_ms("0ms"), 0u);
    EXPECT_EQ(parse_duration_ms("007s"), 7 * kS);
}

TEST(UnitsDuration, BareNumberIsSeconds) {
    EXPECT_EQ(parse_duration_ms("90"), 90 * kS);
    EXPECT_EQ(parse_duration_ms("1"), kS);
}

TEST(UnitsDuration, CombinationsInDecreasingOrder) {
    EXPECT_EQ(parse_duration_ms("1h30m"), kH + 30 * kMin);
    EXPECT_EQ(parse_duration_ms("1d12h"), kD + 12 * kH);
    EXPECT_EQ(parse_duration_ms("1m30s500ms"), kMin + 30 * kS + 500);
    EXPECT_EQ(parse_duration_ms("1y1M1w1d1h1m1s1ms"),
              365 * kD + 30 * kD + 7 * kD + kD + kH + kMin + kS + 1);
    // nginx reads a trailing bare number after larger units as seconds.
    EXPECT_EQ(parse_duration_ms("1m30"), kMin + 30 * kS);
}

TEST(UnitsDuration, RejectsBadOrder) {
    for (const char* bad : {"30m1h", "1m1m", "1s1m", "1ms1s", "5s5", "1ms1", "1h1d", "1d1w"}) {
        EXPECT_FALSE(parse_duration_ms(bad)) << bad;
    }
}

TEST(UnitsDuration, RejectsGarbage) {
    for (const char* bad : {"",     " ",   "1 h", " 1h",  "1h ", "1h 30m", "-1s",  "+1s", "1x",
                            "s",    "ms",  "h1",  "1.5s", "1S",  "1H",     "1D",   "1W",  "1Y",
                            "1mss", "1sm", "1hh", "0x10", "1e3", "10 ",    "1_000"}) {
        EXPECT_FALSE(parse_duration_ms(bad)) << '"' << bad << '"';
    }
    EXPECT_FALSE(parse_duration_ms(std::string("1s\0", 3)));
}

TEST(UnitsDuration, Overflow) {
    EXPECT_EQ(parse_duration_ms("9223372036854775807ms"), kInt64Max);
    EXPECT_FALSE(parse_duration_ms("9223372036854775808ms"));
    EXPECT_FALSE(parse_duration_ms("18446744073709551616ms"));  // 2^64
    EXPECT_FALSE(parse_duration_ms("99999999999999999999999999ms"));
    EXPECT_EQ(parse_duration_ms("9223372036854775s"), 9223372036854775000ULL);
    EXPECT_FALSE(parse_duration_ms("9223372036854776s"));
    EXPECT_FALSE(parse_duration_ms("9223372036854776"));
    EXPECT_FALSE(parse_duration_ms("300000000y"));
    // Each component fits; their sum does not.
    EXPECT_FALSE(parse_duration_ms("9223372036854775s9223372036854775807ms"));
}

TEST(UnitsSize, Values) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("1024"), 1024u);
    EXPECT_EQ(parse_size("512k"), 512u * 1024);
    EXPECT_EQ(parse_size("512K"), 512u * 1024);
    EXPECT_EQ(parse_size("1m"), 1024u * 1024);
    EXPECT_EQ(parse_size("1M"), 1024u * 1024);
    EXPECT_EQ(parse_size("2g"), 2ULL << 30);
    EXPECT_EQ(parse_size("2G"), 2ULL << 30);
    EXPECT_EQ(parse_size("0k"), 0u);
}

TEST(UnitsSize, RejectsGarbage) {
    for (const char* bad : {"", "k", "K", "-1", "+1", "1 k", " 1k", "1k ", "1kb", "1KB", "1t", "1T",
                            "1.5m", "1mk", "0x10", "1e3", "1b", "abc", "1 "}) {
        EXPECT_FALSE(parse_size(bad)) << '"' << bad << '"';
    }
}

TEST(UnitsSize, Overflow) {
    EXPECT_EQ(parse_size("9223372036854775807"), kInt64Max);
    EXPECT_FALSE(parse_size("9223372036854775808"));
    EXPECT_FALSE(parse_size("18446744073709551616"));
    EXPECT_EQ(parse_size("8589934591g"), 8589934591ULL << 30);
    EXPECT_FALSE(parse_size("8589934592g"));
    EXPECT_FALSE(parse_size("9007199254740992k"));
}

}  // namespace
}  // namespace hookq
