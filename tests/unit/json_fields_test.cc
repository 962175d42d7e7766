#include "shared/json_fields.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace hookq {
namespace {

JsonPointer ptr(std::string_view text) {
    std::string error;
    auto p = JsonPointer::parse(text, error);
    EXPECT_TRUE(p) << text << ": " << error;
    return p.value_or(JsonPointer());
}

std::vector<std::optional<std::string>> pick(std::string_view json,
                                             std::initializer_list<std::string_view> pointers) {
    std::vector<JsonPointer> ps;
    for (auto p : pointers) {
        ps.push_back(ptr(p));
    }
    std::vector<std::optional<std::string>> out(ps.size(), std::string("stale"));
    extract_json_fields(json, ps, out);
    return out;
}

using Values = std::vector<std::optional<std::string>>;

TEST(JsonPointer, ParsesTokensAndEscapes) {
    EXPECT_EQ(ptr("/a/b").tokens(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(ptr("/a~1b/c~0d/~01").tokens(), (std::vector<std::string>{"a/b", "c~d", "~1"}));
    EXPECT_EQ(ptr("/").tokens(), (std::vector<std::string>{""}));
    EXPECT_EQ(ptr("/a//b").tokens(), (std::vector<std::string>{"a", "", "b"}));
}

TEST(JsonPointer, RefusesWhatIsNotOne) {
    for (std::string_view bad : {"", "a/b", "#/a", "/a~", "/a~2", "/~x"}) {
        std::string error;
        EXPECT_FALSE(JsonPointer::parse(bad, error)) << bad;
        EXPECT_FALSE(error.empty()) << bad;
    }
}

TEST(JsonPointer, ArrayIndexesAreCanonical) {
    EXPECT_TRUE(JsonPointer::is_index("0", 0));
    EXPECT_TRUE(JsonPointer::is_index("12", 12));
    EXPECT_FALSE(JsonPointer::is_index("01", 1));
    EXPECT_FALSE(JsonPointer::is_index("-", 0));
    EXPECT_FALSE(JsonPointer::is_index("+1", 1));
    EXPECT_FALSE(JsonPointer::is_index("", 0));
    EXPECT_FALSE(JsonPointer::is_index("1", 0));
}

TEST(JsonFields, ScalarsAsWrittenOrUnescaped) {
    EXPECT_EQ(pick(R"({"s":"a\u00e9\"b","i":-42,"u":18446744073709551615,"f":1.50,"e":1e3,)"
                   R"("t":true,"n":null})",
                   {"/s", "/i", "/u", "/f", "/e", "/t", "/n"}),
              (Values{"a\xc3\xa9\"b", "-42", "18446744073709551615", "1.50", "1e3", "true",
                      std::nullopt}));
}

TEST(JsonFields, MoySkladStyleNesting) {
    std::string_view body =
        R"({"events":[{"meta":{"type":"product","href":"https://x/p/1"},)"
        R"("action":"UPDATE","accountId":"acc"},)"
        R"({"meta":{"type":"product","href":"https://x/p/2"},"action":"CREATE"}]})";
    EXPECT_EQ(pick(body, {"/events/0/action", "/events/1/meta/href", "/events/0/accountId",
                          "/events/2/action", "/events/01/action"}),
              (Values{"UPDATE", "https://x/p/2", "acc", std::nullopt, std::nullopt}));
}

TEST(JsonFields, ContainersAndMissingGiveNothing) {
    EXPECT_EQ(pick(R"({"a":{"b":1},"c":[1,2]})", {"/a", "/c", "/a/x", "/c/5", "/z"}),
              (Values{std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt}));
    EXPECT_EQ(pick(R"([10,[20,21],{"k":30}])", {"/1/1", "/2/k", "/0"}), (Values{"21", "30", "10"}));
}

TEST(JsonFields, KeysWithSlashesAndTildes) {
    EXPECT_EQ(pick(R"({"a/b":{"c~d":"x"},"":{"":"empty"}})", {"/a~1b/c~0d", "//"}),
              (Values{"x", "empty"}));
}

TEST(JsonFields, ValuesBeforeASyntaxErrorOnly) {
    EXPECT_EQ(pick(R"({"a":"1", "b": nope, "c":"3"})", {"/a", "/c"}), (Values{"1", std::nullopt}));
    EXPECT_EQ(pick("", {"/a"}), (Values{std::nullopt}));
    EXPECT_EQ(pick("not json", {"/a"}), (Values{std::nullopt}));
}

TEST(JsonFields, StopsReadingOnceEveryFieldIsFound) {
    // The garbage after the field is never reached: what was found is well-formed.
    EXPECT_EQ(pick(R"({"id":"x", "rest": [[[[ garbage)", {"/id"}), (Values{"x"}));
}

TEST(JsonFields, DeepNestingDoesNotRecurse) {
    std::string deep(100000, '[');
    EXPECT_EQ(pick(deep, {"/0"}), (Values{std::nullopt}));
}

TEST(JsonFields, RepeatedKeysTakeTheFirst) {
    EXPECT_EQ(pick(R"({"a":"1","a":"2"})", {"/a"}), (Values{"1"}));
}

}  // namespace
}  // namespace hookq
