#include <gtest/gtest.h>

#include "shared/crypto.h"
#include "worker/admin/auth.h"
#include "worker/ops/common.h"

namespace hookq::admin {
namespace {

AdminToken token(std::string name, std::string_view secret) {
    unsigned char d[32];
    crypto::sha256(secret, d);
    AdminToken t;
    t.name = std::move(name);
    t.role = "viewer";
    t.sha256.assign(reinterpret_cast<const char*>(d), 32);
    return t;
}

TEST(AdminAuth, BearerTokenPicksItsEntry) {
    std::vector<AdminToken> tokens = {token("a", "aaaaaaaaaaaaaaaaaaaa"),
                                      token("b", "bbbbbbbbbbbbbbbbbbbb")};
    EXPECT_EQ(authenticate(tokens, "Bearer aaaaaaaaaaaaaaaaaaaa"), &tokens[0]);
    EXPECT_EQ(authenticate(tokens, "bearer  bbbbbbbbbbbbbbbbbbbb "), &tokens[1]);
    EXPECT_EQ(authenticate(tokens, "Bearer bbbbbbbbbbbbbbbbbbb"), nullptr);    // a prefix
    EXPECT_EQ(authenticate(tokens, "Bearer bbbbbbbbbbbbbbbbbbbbb"), nullptr);  // longer
    EXPECT_EQ(authenticate(tokens, "Basic aaaaaaaaaaaaaaaaaaaa"), nullptr);
    EXPECT_EQ(authenticate(tokens, "aaaaaaaaaaaaaaaaaaaa"), nullptr);
    EXPECT_EQ(authenticate(tokens, "Bearer "), nullptr);
    EXPECT_EQ(authenticate(tokens, ""), nullptr);
    EXPECT_EQ(authenticate({}, "Bearer aaaaaaaaaaaaaaaaaaaa"), nullptr);
}

TEST(AdminAuth, WritesFromOtherSitesAreRefused) {
    std::string why;
    // Non-browser clients send neither header.
    EXPECT_TRUE(browser_safe_write("", "127.0.0.1:9187", "", why));
    EXPECT_TRUE(browser_safe_write("http://127.0.0.1:9187", "127.0.0.1:9187", "same-origin", why));
    EXPECT_TRUE(browser_safe_write("HTTP://Admin.Local", "admin.local:80", "", why));
    EXPECT_TRUE(browser_safe_write("https://admin.local:443", "admin.local", "none", why));

    EXPECT_FALSE(browser_safe_write("http://evil.example", "127.0.0.1:9187", "", why));
    EXPECT_NE(why.find("evil.example"), std::string::npos) << why;
    EXPECT_FALSE(browser_safe_write("http://127.0.0.1:8000", "127.0.0.1:9187", "", why));
    EXPECT_FALSE(browser_safe_write("null", "127.0.0.1:9187", "", why));
    EXPECT_FALSE(browser_safe_write("", "127.0.0.1:9187", "cross-site", why));
    EXPECT_NE(why.find("cross-site"), std::string::npos) << why;
    EXPECT_FALSE(browser_safe_write("", "127.0.0.1:9187", "same-site", why));
    EXPECT_FALSE(browser_safe_write("http://127.0.0.1:9187", "", "", why));
}

}  // namespace
}  // namespace hookq::admin

namespace hookq::ops {
namespace {

TEST(OpsScope, SourcesBecomeAQuotedTextArray) {
    EXPECT_EQ(pg_text_array({}), "{}");
    EXPECT_EQ(pg_text_array({"github", "a\"b", "c\\d", "x,y"}),
              R"({"github","a\"b","c\\d","x,y"})");
    Scope all;
    EXPECT_FALSE(all.sql_array().has_value());
    EXPECT_TRUE(all.allows("anything"));
    Scope some{std::vector<std::string>{"stripe"}};
    EXPECT_EQ(some.sql_array(), std::optional<std::string>("{\"stripe\"}"));
    EXPECT_TRUE(some.allows("stripe"));
    EXPECT_FALSE(some.allows("github"));
}

}  // namespace
}  // namespace hookq::ops
