#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/pipeline/router.h"

namespace hookq {
namespace {

// A MoySklad batch: two events of one account.
const char* kBatch = R"({"events":[
  {"meta":{"type":"product","href":"https://x/p/1"},"action":"UPDATE","accountId":"acc-1"},
  {"meta":{"type":"customerorder","href":"https://x/o/9"},"action":"CREATE","accountId":"acc-1"}
]})";

bool matches(std::vector<FieldMatch> conditions, const char* body = kBatch) {
    return fields_match(nlohmann::json::parse(body), conditions);
}

TEST(RouteMatch, EveryConditionMustHold) {
    EXPECT_TRUE(matches({{"events[].meta.type", {"product"}}, {"events[].accountId", {"acc-1"}}}));
    EXPECT_FALSE(matches({{"events[].meta.type", {"product"}}, {"events[].accountId", {"acc-2"}}}));
    EXPECT_TRUE(matches({}));
}

TEST(RouteMatch, AnyElementOfAnArrayAndAnyListedValue) {
    EXPECT_TRUE(matches({{"events[].action", {"CREATE"}}}));  // the second event
    EXPECT_TRUE(matches({{"events[].action", {"DELETE", "UPDATE"}}}));
    EXPECT_FALSE(matches({{"events[].action", {"DELETE"}}}));
}

TEST(RouteMatch, ScalarsAsTextAndNothingElse) {
    EXPECT_TRUE(matches({{"n", {"3"}}, {"ok", {"true"}}}, R"({"n":3,"ok":true})"));
    EXPECT_FALSE(matches({{"o", {"{}"}}}, R"({"o":{}})"));
    EXPECT_FALSE(matches({{"missing", {""}}}, R"({})"));
    EXPECT_FALSE(matches({{"a[].b", {"x"}}}, R"({"a":{"b":"x"}})"));  // [] wants an array
}

TEST(RouteMatch, RouterAppliesConditionsPerRoute) {
    Config cfg = load_config_string(R"(
[worker]
id = "w"
[redis]
address = "127.0.0.1:6379"
[postgres]
dsn = "host=x"
[[routes]]
name = "products"
source = "moysklad"
url = "http://127.0.0.1:1/p"
match = { "events[].meta.type" = "product", "events[].action" = ["CREATE", "UPDATE"] }
[[routes]]
name = "orders-acc2"
source = "moysklad"
url = "http://127.0.0.1:1/o"
match = { "events[].meta.type" = "customerorder", "events[].accountId" = "acc-2" }
[[routes]]
name = "all"
source = "moysklad"
url = "http://127.0.0.1:1/all"
)",
                                    "w.toml");
    Router router(cfg);
    auto names = [&](std::string_view body) {
        std::vector<std::string> out;
        for (const Route* r : router.match("moysklad", "", body)) {
            out.push_back(r->name);
        }
        return out;
    };
    EXPECT_EQ(names(kBatch), (std::vector<std::string>{"products", "all"}));
    EXPECT_EQ(names("not json"), (std::vector<std::string>{"all"}));
}

TEST(RouteMatch, BadConditionsNameTheLine) {
    auto error_of = [](const std::string& match) {
        try {
            load_config_string(
                "[worker]\nid = \"w\"\n[redis]\naddress = \"127.0.0.1:6379\"\n"
                "[postgres]\ndsn = \"host=x\"\n[[routes]]\nname = \"r\"\n"
                "source = \"s\"\nurl = \"http://127.0.0.1:1/\"\n" +
                    match + "\n",
                "w.toml");
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(error_of(R"(match = { "events..action" = "x" })"),
              "w.toml:11:11: [[routes]] 'r': 'match' key \"events..action\" is not a field path "
              "such as \"events[].action\"");
    EXPECT_EQ(error_of(R"(match = { "a" = [] })"),
              "w.toml:11:17: [[routes]] 'r': 'match' \"a\" must be a string or a non-empty array "
              "of strings");
    EXPECT_NE(error_of(R"(match = { "a" = 3 })").find("must be an array of strings"),
              std::string::npos);
    EXPECT_NE(error_of(R"(match = "a")").find("'match' must be a table"), std::string::npos);
}

}  // namespace
}  // namespace hookq
