#include "shared/uuid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <unordered_set>
#include <vector>

namespace hookq {
namespace {

constexpr uint64_t kMs = 1'700'000'000'123ULL;  // 2023-11-14, fits in 48 bits

bool less(const Uuid& a, const Uuid& b) {
    return std::lexicographical_compare(a.bytes.begin(), a.bytes.end(), b.bytes.begin(),
                                        b.bytes.end());
}

std::string key(const Uuid& u) {
    return std::string(u.bytes.begin(), u.bytes.end());
}

TEST(UuidText, FormatIsCanonicalLowercase) {
    Uuid u;
    u.bytes = {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b,
               0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x57};
    EXPECT_EQ(u.str(), "01890a5d-ac96-774b-bcce-b302099a8057");
    char buf[Uuid::kTextSize + 1];
    buf[Uuid::kTextSize] = '#';
    u.format(buf);
    EXPECT_EQ(buf[Uuid::kTextSize], '#');  // writes exactly 36 bytes, no terminator
    EXPECT_EQ(std::string_view(buf, Uuid::kTextSize), u.str());
    EXPECT_EQ(Uuid{}.str(), "00000000-0000-0000-0000-000000000000");
    Uuid ff;
    ff.bytes.fill(0xff);
    EXPECT_EQ(ff.str(), "ffffffff-ffff-ffff-ffff-ffffffffffff");
}

TEST(UuidText, ParseAcceptsBothCases) {
    auto lower = Uuid::parse("01890a5d-ac96-774b-bcce-b302099a8057");
    auto upper = Uuid::parse("01890A5D-AC96-774B-BCCE-B302099A8057");
    ASSERT_TRUE(lower && upper);
    EXPECT_EQ(*lower, *upper);
    EXPECT_EQ(lower->bytes[0], 0x01);
    EXPECT_EQ(lower->bytes[15], 0x57);
    EXPECT_EQ(upper->str(), "01890a5d-ac96-774b-bcce-b302099a8057");
}

TEST(UuidText, ParseRejectsNonCanonical) {
    for (std::string_view bad : {
             "",
             "01890a5d-ac96-774b-bcce-b302099a805",      // short
             "01890a5d-ac96-774b-bcce-b302099a80577",    // long
             "01890a5dac96774bbcceb302099a8057",         // no dashes
             "{01890a5d-ac96-774b-bcce-b302099a8057}",   // braces
             "01890a5d-ac96-774b-bcce-b302099a805g",     // non-hex
             "01890a5d_ac96-774b-bcce-b302099a8057",     // wrong separator
             "01890a5-dac96-774b-bcce-b302099a8057",     // dash misplaced
             "01890a5d-ac96-774b-bcce-b302099a805 ",     // space
             "01890a5d-ac96-774b-bcce-b302099a805\xc3",  // non-ASCII byte
             "+1890a5d-ac96-774b-bcce-b302099a8057",     // sign
             "01890a5d-ac96-774b-bcce-b302099a80-7",     // dash in a hex group
             "urn:uuid:01890a5d-ac96-774b-bcce-b30209",
         }) {
        EXPECT_FALSE(Uuid::parse(bad)) << bad;
    }
    const std::string with_nul("01890a5d-ac96-774b-bcce-b302099a805\0", 36);
    EXPECT_FALSE(Uuid::parse(with_nul));
}

TEST(UuidText, UnixMsFromV7Layout) {
    auto u = Uuid::parse("01890a5d-ac96-774b-bcce-b302099a8057");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->unix_ms(), 0x01890a5dac96ULL);
    Uuid7Generator g(1);
    EXPECT_EQ(g.next(kMs).unix_ms(), kMs);
}

TEST(Uuid7, VersionAndVariantBits) {
    Uuid7Generator g(42);
    for (int i = 0; i < 10000; ++i) {
        const Uuid u = g.next(kMs + i / 3);
        EXPECT_EQ(u.bytes[6] >> 4, 7) << i;
        EXPECT_EQ(u.bytes[8] >> 6, 2) << i;
        const std::string s = u.str();
        EXPECT_EQ(s[14], '7');
        EXPECT_TRUE(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
    }
}

TEST(Uuid7, DefaultConstructedGeneratorWorks) {
    Uuid7Generator a, b;
    const Uuid x = a.next(kMs), y = b.next(kMs);
    EXPECT_EQ(x.bytes[6] >> 4, 7);
    EXPECT_NE(x, y);  // seeded independently from the CSPRNG
}

TEST(Uuid7, StrictlyIncreasingWithinOneMillisecond) {
    Uuid7Generator g(7);
    Uuid prev = g.next(kMs);
    // 100k ids in one ms overflow the 12-bit counter many times; the timestamp runs ahead instead.
    for (int i = 0; i < 100000; ++i) {
        const Uuid u = g.next(kMs);
        ASSERT_TRUE(less(prev, u)) << i << ": " << prev.str() << " !< " << u.str();
        ASSERT_GE(u.unix_ms(), kMs);
        prev = u;
    }
    // At least 2048 ids fit in each ms, so 100k cannot run ahead by more than ~49 ms.
    EXPECT_LE(prev.unix_ms(), kMs + 100000 / 2048 + 1);
}

TEST(Uuid7, StrictlyIncreasingAcrossMilliseconds) {
    Uuid7Generator g(8);
    Uuid prev = g.next(kMs);
    for (int i = 1; i <= 100000; ++i) {
        const uint64_t ms = kMs + i / 17;
        const Uuid u = g.next(ms);
        ASSERT_TRUE(less(prev, u)) << i;
        EXPECT_EQ(u.unix_ms(), ms);  // never needs to run ahead at 17 ids per ms
        prev = u;
    }
}

TEST(Uuid7, MonotonicWhenClockStepsBack) {
    Uuid7Generator g(9);
    const Uuid a = g.next(kMs + 1000);
    const Uuid b = g.next(kMs);  // NTP stepped the clock back a second
    EXPECT_TRUE(less(a, b));
    EXPECT_EQ(b.unix_ms(), kMs + 1000);
}

TEST(Uuid7, CounterStartsInLowerHalf) {
    Uuid7Generator g(10);
    for (uint64_t ms = kMs; ms < kMs + 1000; ++ms) {
        const Uuid u = g.next(ms);
        const unsigned counter = ((u.bytes[6] & 0x0f) << 8) | u.bytes[7];
        EXPECT_LT(counter, 0x800u);
    }
}

TEST(Uuid7, ParseFormatRoundTrip) {
    Uuid7Generator g(11);
    for (int i = 0; i < 10000; ++i) {
        const Uuid u = g.next(kMs + i);
        auto back = Uuid::parse(u.str());
        ASSERT_TRUE(back);
        EXPECT_EQ(*back, u);
    }
}

TEST(Uuid7, DeterministicForASeed) {
    Uuid7Generator a(123), b(123);
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(a.next(kMs), b.next(kMs));
    }
}

TEST(Uuid7, UniqueAcrossGeneratorsWithDifferentSeeds) {
    Uuid7Generator a(1), b(2);
    std::unordered_set<std::string> seen;
    constexpr int kN = 100000;
    seen.reserve(2 * kN);
    for (int i = 0; i < kN; ++i) {
        // Same clock for both, as two nginx workers on one host would see.
        const uint64_t ms = kMs + i / 50;
        ASSERT_TRUE(seen.insert(key(a.next(ms))).second) << i;
        ASSERT_TRUE(seen.insert(key(b.next(ms))).second) << i;
    }
}

TEST(Uuid7, RandomBitsLookRandom) {
    // Cheap sanity against a stuck PRNG: each of the 62 rand_b bits is set about half the time.
    Uuid7Generator g(12);
    constexpr int kN = 20000;
    int ones[64] = {};
    for (int i = 0; i < kN; ++i) {
        const Uuid u = g.next(kMs);
        for (int bit = 0; bit < 62; ++bit) {
            const int byte = 15 - bit / 8;
            ones[bit] += (u.bytes[byte] >> (bit % 8)) & 1;
        }
    }
    for (int bit = 0; bit < 62; ++bit) {
        EXPECT_GT(ones[bit], kN * 45 / 100) << bit;
        EXPECT_LT(ones[bit], kN * 55 / 100) << bit;
    }
}

}  // namespace
}  // namespace hookq
