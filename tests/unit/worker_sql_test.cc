#include <gtest/gtest.h>

#include "worker/router.h"
#include "worker/sql.h"

namespace hookq {
namespace {

JobPtr job_for(const Envelope& e, std::string& storage) {
    storage = e.encode();
    auto j = std::make_shared<Job>();
    j->raw = storage;
    EXPECT_EQ(decode_envelope(j->raw, j->env), DecodeError::ok);
    j->decoded = true;
    return j;
}

Envelope sample() {
    Envelope e;
    e.request_id = *Uuid::parse("018f3c2a-7b1e-7000-8000-000000000001");
    e.received_at_us = 1714564800123456;  // 2024-05-01 12:00:00.123456 UTC
    e.source = "github";
    e.dedup_key = "d1";
    e.method = "POST";
    e.target = "/hooks/github";
    e.remote_addr = "203.0.113.7";
    e.headers = {{"X-GitHub-Event", "push"}, {"Accept", "a"}, {"accept", "b"}};
    e.body = std::string("{\"x\":1}\0\xff", 9);
    return e;
}

TEST(WorkerSql, SanitizeText) {
    EXPECT_EQ(sanitize_text("plain"), "plain");
    EXPECT_EQ(sanitize_text(std::string("a\0b", 3)), "ab");
    EXPECT_EQ(sanitize_text("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(sanitize_text("bad\xff!"), "bad\xEF\xBF\xBD!");
    EXPECT_EQ(sanitize_text("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
    EXPECT_EQ(sanitize_text("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(WorkerSql, TimestampExactToTheMicrosecond) {
    EXPECT_EQ(format_timestamp_us(1714564800123456), "2024-05-01 12:00:00.123456+00");
    EXPECT_EQ(format_timestamp_us(0), "1970-01-01 00:00:00.000000+00");
}

TEST(WorkerSql, HeadersJsonJoinsRepeats) {
    std::string s;
    auto j = job_for(sample(), s);
    EXPECT_EQ(headers_json(j->env), R"({"X-GitHub-Event":"push","Accept":"a","accept":"b"})");
}

TEST(WorkerSql, BatchUpsertsEventsOncePerId) {
    std::string s1, s2;
    auto a = job_for(sample(), s1);
    auto b = job_for(sample(), s2);  // the same webhook twice (redelivery)
    a->outcomes.push_back({"r", OutcomeKind::retry, 1, 2, 5, 10, "HTTP 500", false});
    a->attempts.push_back({"r", "http://x/", 1, 10, 1500, 500, OutcomeKind::retry, ""});
    b->outcomes.push_back({"r", OutcomeKind::delivered, 2, 0, 0, 1714564801000000, "", false});
    b->attempts.push_back({"r", "http://x/", 2, 20, 900, 200, OutcomeKind::delivered, ""});
    auto st = build_batch({a.get(), b.get()}, {}, "w1");
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(st[0].rows, 1u);
    EXPECT_NE(st[0].sql.find("ON CONFLICT (received_at, id) DO UPDATE"), std::string::npos);
    EXPECT_EQ(st[0].params.size(), 14u);
    EXPECT_EQ(st[0].params[0], "018f3c2a-7b1e-7000-8000-000000000001");
    EXPECT_EQ(st[0].params[1], "2024-05-01 12:00:00.123456+00");
    EXPECT_EQ(st[0].params[9], std::string("{\"x\":1}\0\xff", 9));
    EXPECT_EQ(st[0].formats[9], 1);
    EXPECT_EQ(st[0].params[10], "delivered");
    EXPECT_EQ(st[0].params[11], "2");
    EXPECT_EQ(st[1].rows, 2u);
    EXPECT_EQ(st[1].params.size(), 20u);
    EXPECT_NE(st[1].sql.find("$20"), std::string::npos);
    EXPECT_EQ(st[1].params[6], "500");
}

TEST(WorkerSql, DeadLettersFlagsAndTransitions) {
    std::string s;
    auto a = job_for(sample(), s);
    a->outcomes.push_back({"r", OutcomeKind::dead, 1, 0, 0, 10, "HTTP 410", true});
    Transition t{"http://x:80", "closed", "open", 10, "5 failures"};
    auto st = build_batch({a.get()}, {&t}, "w1");
    ASSERT_EQ(st.size(), 4u);
    EXPECT_EQ(event_status(*a), "dead");
    EXPECT_NE(st[1].sql.find("INSERT INTO dead_letters"), std::string::npos);
    EXPECT_NE(st[2].sql.find("INSERT INTO route_flags"), std::string::npos);
    EXPECT_NE(st[3].sql.find("INSERT INTO breaker_transitions"), std::string::npos);
    EXPECT_EQ(st[3].params[2], "closed");
}

TEST(WorkerRouter, JsonField) {
    EXPECT_EQ(json_field(R"({"type":"invoice.paid"})", "type"), "invoice.paid");
    EXPECT_EQ(json_field(R"({"data":{"object":{"id":7}}})", "data.object.id"), "7");
    EXPECT_EQ(json_field(R"({"events":[{"x":1},{"action":"CREATE"}]})", "events[].action"),
              "CREATE");
    EXPECT_EQ(json_field("not json", "type"), "");
    EXPECT_EQ(json_field(R"({"type":{"nested":1}})", "type"), "");
}

TEST(WorkerRouter, MatchBySourceAndEvent) {
    Config c;
    c.routes.resize(3);
    c.routes[0].name = "push";
    c.routes[0].source = "github";
    c.routes[0].events = {"push"};
    c.routes[1].name = "all";
    c.routes[1].source = "github";
    c.routes[2].name = "stripe";
    c.routes[2].source = "stripe";
    Router r(c);
    EXPECT_EQ(r.match("github", "push").size(), 2u);
    EXPECT_EQ(r.match("github", "issues").size(), 1u);
    EXPECT_EQ(r.match("gitlab", "push").size(), 0u);
    EXPECT_EQ(r.by_name("stripe"), &c.routes[2]);
    EXPECT_EQ(r.by_name("nope"), nullptr);
}

}  // namespace
}  // namespace hookq
