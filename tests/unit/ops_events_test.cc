// The event search's pure parts: the opaque cursor, time parsing, query checking and the UTF-8 test
// that decides between a text and a base64 body.
#include <functional>

#include <gtest/gtest.h>

#include "worker/ops/events.h"

namespace hookq::ops {
namespace {

constexpr const char* kId = "01936f4e-8a2b-7c3d-9e4f-0123456789ab";

bool bad_request(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.kind == Error::bad_request;
    }
    return false;
}

TEST(EventCursor, RoundTrips) {
    EventCursor c{1796040000123456, kId};
    std::string text = encode_cursor(c);
    EXPECT_EQ(text.find_first_of("+/= "), std::string::npos) << text;  // safe in a URL as is
    EventCursor back = decode_cursor(text);
    EXPECT_EQ(back.received_at_us, c.received_at_us);
    EXPECT_EQ(back.id, c.id);
}

TEST(EventCursor, TamperedIsBadRequest) {
    std::string good = encode_cursor({1796040000123456, kId});
    std::vector<std::string> tampered = {
        "",
        "zz",
        "not a cursor",
        good.substr(0, good.size() - 3),  // truncated
        good + "A",                       // one char too many
        good + "===",
        std::string(500, 'A'),
        "djEuMTIzLm5vdC1hLXV1aWQ",                                     // "v1.123.not-a-uuid"
        "djIuMTIzLjAxOTM2ZjRlLThhMmItN2MzZC05ZTRmLTAxMjM0NTY3ODlhYg",  // version v2
    };
    // Flip each character in turn: every variant decodes to the same cursor or is refused.
    for (size_t i = 0; i < good.size(); ++i) {
        std::string t = good;
        t[i] = t[i] == 'A' ? 'B' : 'A';
        tampered.push_back(t);
    }
    for (const auto& t : tampered) {
        try {
            EventCursor c = decode_cursor(t);
            EXPECT_EQ(encode_cursor(c), t) << "accepted a tampered cursor: " << t;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind, Error::bad_request) << t;
            EXPECT_NE(std::string(e.what()).find("cursor"), std::string::npos);
        } catch (...) {
            ADD_FAILURE() << "not an ops::Error for " << t;
        }
    }
}

TEST(EventQuery, ParsesTimes) {
    EXPECT_EQ(parse_time("1970-01-01"), 0);
    EXPECT_EQ(parse_time("2026-11-30T12:00:00Z"), int64_t{1796040000} * 1000000);
    EXPECT_EQ(parse_time("2026-11-30T12:00:00.25Z"), int64_t{1796040000} * 1000000 + 250000);
    EXPECT_EQ(parse_time("2026-11-30T14:00:00+02:00"), int64_t{1796040000} * 1000000);
    EXPECT_EQ(parse_time("2026-11-30 12:00:00z"), int64_t{1796040000} * 1000000);
    for (const char* bad : {"", "yesterday", "2026-02-31", "2026-13-01", "2026-11-30T25:00:00Z",
                            "2026-11-30T12:00:00", "2026-11-30T12:00:00Zjunk", "1796040000",
                            "2026-11-30T12:00:00.Z"}) {
        EXPECT_FALSE(parse_time(bad).has_value()) << bad;
    }
}

TEST(EventQuery, NamesTheBadParameter) {
    auto message = [](std::map<std::string, std::string> args) {
        try {
            parse_event_query(args);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(message({{"limit", "0"}}).find("limit"), std::string::npos);
    EXPECT_NE(message({{"limit", "1001"}}).find("limit"), std::string::npos);
    EXPECT_NE(message({{"limit", "x"}}).find("limit"), std::string::npos);
    EXPECT_NE(message({{"status", "gone"}}).find("status"), std::string::npos);
    EXPECT_NE(message({{"from", "noon"}}).find("from"), std::string::npos);
    EXPECT_NE(message({{"request_id", "42"}}).find("request_id"), std::string::npos);
    EXPECT_NE(message({{"sorce", "x"}}).find("sorce"), std::string::npos);
    EXPECT_NE(message({{"from", "2026-12-01"}, {"to", "2026-11-01"}}).find("before"),
              std::string::npos);
    EXPECT_TRUE(bad_request([] { parse_event_query({{"cursor", "zz"}}); }));
    auto q = parse_event_query({{"limit", "1000"}, {"status", "dead"}, {"request_id", kId}});
    EXPECT_EQ(q.limit, 1000);
    EXPECT_EQ(q.status, "dead");
    EXPECT_EQ(q.request_id, kId);
}

TEST(EventBody, Utf8) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("{\"a\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}"));
    EXPECT_FALSE(valid_utf8("\xff"));
    EXPECT_FALSE(valid_utf8("ab\xc3"));            // truncated
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
    EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

}  // namespace
}  // namespace hookq::ops
