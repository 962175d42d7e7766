#include "worker/pipeline/fanout.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "worker/pipeline/ordering.h"

namespace hookq {
namespace {

TEST(Fanout, SplitsTheArrayAndKeepsTheRestInOrder) {
    auto bodies = fanout::split_bodies(
        R"({"z":1,"events":[{"action":"CREATE"},{"action":"UPDATE"}],"auditContext":{"uid":"u"}})",
        "events");
    ASSERT_TRUE(bodies);
    ASSERT_EQ(bodies->size(), 2u);
    EXPECT_EQ((*bodies)[0], R"({"z":1,"events":[{"action":"CREATE"}],"auditContext":{"uid":"u"}})");
    EXPECT_EQ((*bodies)[1], R"({"z":1,"events":[{"action":"UPDATE"}],"auditContext":{"uid":"u"}})");
}

TEST(Fanout, NestedPath) {
    auto bodies = fanout::split_bodies(R"({"data":{"items":[1,2,3]}})", "data.items");
    ASSERT_TRUE(bodies);
    EXPECT_EQ(bodies->back(), R"({"data":{"items":[3]}})");
}

TEST(Fanout, NothingToSplitIsNullopt) {
    for (const char* body : {"", "not json", "[1,2]", R"({"events":[]})", R"({"events":{"a":1}})",
                             R"({"other":[1]})", R"({"events":"x"})"}) {
        EXPECT_FALSE(fanout::split_bodies(body, "events")) << body;
    }
    std::string big = R"({"events":[)";
    for (size_t i = 0; i <= fanout::kMaxEvents; ++i) {
        big += i ? ",1" : "1";
    }
    big += "]}";
    EXPECT_FALSE(fanout::split_bodies(big, "events"));
}

TEST(Fanout, ChildIdsAreStableDistinctAndKeepTheParentsTime) {
    Uuid parent = *Uuid::parse("01a22e14-f000-7abc-8def-0123456789ab");
    Uuid a = fanout::child_id(parent, "r", 0);
    EXPECT_EQ(a, fanout::child_id(parent, "r", 0));
    EXPECT_NE(a, fanout::child_id(parent, "r", 1));
    EXPECT_NE(a, fanout::child_id(parent, "other", 0));
    std::string s = a.str();
    EXPECT_EQ(s.substr(0, 13), "01a22e14-f000");
    EXPECT_EQ(s[14], '8');                                          // version 8
    EXPECT_NE(std::string("89ab").find(s[19]), std::string::npos);  // RFC 9562 variant
}

TEST(Fanout, ChildRecordIsARetryRecordForTheRoute) {
    Envelope parent;
    parent.request_id = *Uuid::parse("01a22e14-f000-7abc-8def-0123456789ab");
    parent.received_at_us = 42;
    parent.source = "moysklad";
    parent.dedup_key = "req-1";
    parent.method = "POST";
    parent.target = "/hooks/moysklad?requestId=req-1";
    parent.headers = {{"Content-Type", "application/json"}, {"Content-Length", "99"}};
    parent.body = R"({"events":[1,2]})";
    std::string raw = parent.encode();
    EnvelopeView view;
    ASSERT_EQ(decode_envelope(raw, view), DecodeError::ok);
    auto rec = RetryRecord::decode(fanout::child_record(view, "r", 1, 2, "{}", 7));
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->route, "r");
    EXPECT_EQ(rec->attempt, 1u);
    EXPECT_EQ(rec->first_attempt_us, 7u);
    EnvelopeView child;
    ASSERT_EQ(decode_envelope(rec->envelope, child), DecodeError::ok);
    EXPECT_EQ(child.request_id, fanout::child_id(parent.request_id, "r", 1));
    EXPECT_EQ(child.received_at_us, 42u);
    EXPECT_EQ(child.dedup_key, "req-1#1");
    EXPECT_EQ(child.body, "{}");
    EXPECT_EQ(child.header("Content-Length"), "");
    EXPECT_EQ(child.header(fanout::kParentHeader), parent.request_id.str());
    EXPECT_EQ(child.header(fanout::kPartHeader), "2/2");
}

TEST(Ordering, EntityIsAFixedSizeDigest) {
    EXPECT_EQ(ordering::entity("https://api.moysklad.ru/x").size(), 32u);
    EXPECT_NE(ordering::entity("a"), ordering::entity("b"));
    EXPECT_EQ(ordering::waiting_entry("id", 12, "rec"), "id|12|rec");
}

}  // namespace
}  // namespace hookq
