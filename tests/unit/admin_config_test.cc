#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "shared/crypto.h"
#include "worker/config.h"

namespace hookq {
namespace {

const char* kBase = R"(
[postgres]
dsn = "dbname=hookq"

[[routes]]
name = "gh"
source = "github"
url = "http://app.internal/hooks/github"

[[routes]]
name = "st"
source = "stripe"
url = "http://app.internal/hooks/stripe"
)";

constexpr const char* kToken = "0123456789abcdef0123456789abcdef";

Config load(const std::string& admin) {
    return load_config_string(std::string(kBase) + admin, "w.toml");
}

std::string error_of(const std::string& admin) {
    try {
        load(admin);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

std::string digest(std::string_view s) {
    unsigned char d[32];
    crypto::sha256(s, d);
    return std::string(reinterpret_cast<const char*>(d), 32);
}

class AdminConfigTest : public ::testing::Test {
  protected:
    void SetUp() override { setenv("HOOKQ_TEST_ADMIN_TOKEN", kToken, 1); }
    void TearDown() override { unsetenv("HOOKQ_TEST_ADMIN_TOKEN"); }
};

TEST_F(AdminConfigTest, AbsentOrEmptyListenIsDisabled) {
    EXPECT_EQ(load("").admin.listen, "");
    auto c = load("[admin]\nlisten = \"\"\n");
    EXPECT_EQ(c.admin.listen, "");
    EXPECT_EQ(c.admin.port, 0);
}

TEST_F(AdminConfigTest, DefaultsToLoopback) {
    auto c = load("[admin]\n");
    EXPECT_EQ(c.admin.host, "127.0.0.1");
    EXPECT_EQ(c.admin.port, 9187);
    c = load("[admin]\nlisten = \"[::1]:9000\"\n");
    EXPECT_EQ(c.admin.host, "::1");
    EXPECT_EQ(c.admin.port, 9000);
    c = load("[admin]\nlisten = \"unix:/run/hookq/admin.sock\"\n");
    EXPECT_EQ(c.admin.unix_path, "/run/hookq/admin.sock");
    EXPECT_TRUE(c.admin.host.empty());
}

TEST_F(AdminConfigTest, BadListenNamesTheLine) {
    for (const char* bad : {"admin.example.com:9187", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                            "127.0.0.1:x", "unix:relative.sock", ":9187"}) {
        std::string e = error_of(std::string("[admin]\nlisten = \"") + bad + "\"\n");
        EXPECT_NE(e.find("w.toml:15:"), std::string::npos) << bad << ": " << e;
        EXPECT_NE(e.find("'listen'"), std::string::npos) << bad << ": " << e;
    }
}

TEST_F(AdminConfigTest, TokensFromEnvAndFile) {
    std::string path = ::testing::TempDir() + "/hookq-admin-token";
    {
        std::ofstream f(path);
        f << "ffffffffffffffffffffffffffffffff\n";
    }
    auto c = load(R"(
[admin]
listen = "127.0.0.1:9999"
[[admin.tokens]]
name = "ops"
role = "admin"
token = "env:HOOKQ_TEST_ADMIN_TOKEN"
[[admin.tokens]]
name = "gh-team"
role = "viewer"
token = "file:)" + path +
                  R"("
sources = ["github"]
)");
    ASSERT_EQ(c.admin.tokens.size(), 2u);
    EXPECT_EQ(c.admin.tokens[0].name, "ops");
    EXPECT_EQ(c.admin.tokens[0].role, "admin");
    EXPECT_EQ(c.admin.tokens[0].sha256, digest(kToken));
    EXPECT_TRUE(c.admin.tokens[0].sources.empty());
    EXPECT_EQ(c.admin.tokens[1].sha256, digest("ffffffffffffffffffffffffffffffff"));
    EXPECT_EQ(c.admin.tokens[1].sources, std::vector<std::string>{"github"});
}

TEST_F(AdminConfigTest, BadTokensStopTheWorkerWithFileAndLine) {
    auto tok = [](const std::string& body) { return "[admin]\n[[admin.tokens]]\n" + body; };
    struct Case {
        std::string text, line, says;
    };
    std::vector<Case> cases = {
        {tok("name = \"a\"\nrole = \"root\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"),
         "w.toml:17:", "'role' must be \"viewer\" or \"admin\""},
        {tok("name = \"a\"\nrole = \"admin\"\n"), "w.toml:15:", "needs 'token'"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_NOT_SET_ANYWHERE\"\n"),
         "w.toml:18:", "HOOKQ_NOT_SET_ANYWHERE is not set"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"file:/nonexistent/tok\"\n"),
         "w.toml:18:", "cannot open secret file"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"literal:short\"\n"),
         "w.toml:18:", "at least 16 characters"},
        {tok("name = \"a b\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"),
         "w.toml:15:", "needs a 'name'"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"
             "sources = [\"gihub\"]\n"),
         "w.toml:19:", "unknown source 'gihub'"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"
             "sources = []\n"),
         "w.toml:19:", "'sources' is empty"},
        {tok("name = \"a\"\nrol = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"),
         "w.toml:17:", "unknown key 'rol'"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"
             "[[admin.tokens]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"literal:" +
             std::string(kToken) + "\"\n"),
         "w.toml:20:", "duplicate admin token name 'a'"},
        {tok("name = \"a\"\nrole = \"admin\"\ntoken = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n"
             "[[admin.tokens]]\nname = \"b\"\nrole = \"viewer\"\ntoken = \"literal:" +
             std::string(kToken) + "\"\n"),
         "w.toml:22:", "the same token as another entry"},
        {"[admin]\ntokens = \"x\"\n", "w.toml:15:", "must be an array of tables"},
        {"[admin]\nport = 1\n", "w.toml:15:", "unknown key 'port' in [admin]"},
    };
    for (const auto& c : cases) {
        std::string e = error_of(c.text);
        EXPECT_EQ(e.rfind(c.line, 0), 0u) << c.text << "\n=> " << e;
        EXPECT_NE(e.find(c.says), std::string::npos) << c.text << "\n=> " << e;
        EXPECT_EQ(e.find(kToken), std::string::npos) << "the token leaked: " << e;
    }
}

// A token file other users can read is a warning naming the file (never its content); the
// worker logs it at start. Group-readable counts only when the group is not the worker's own.
TEST_F(AdminConfigTest, TokenFileReadableByOthersIsAWarning) {
    const std::string secret = "0123456789abcdef0123456789abcdefXY";
    std::string path = ::testing::TempDir() + "/hookq-admin-token-mode";
    {
        std::ofstream f(path);
        f << secret << "\n";
    }
    auto with_mode = [&](mode_t m) {
        EXPECT_EQ(::chmod(path.c_str(), m), 0);
        std::string admin = "[admin]\n[[admin.tokens]]\nname = \"ops\"\nrole = \"admin\"\n";
        return load(admin + "token = \"file:" + path + "\"\n").warnings;
    };
    EXPECT_TRUE(with_mode(0600).empty());
    EXPECT_TRUE(with_mode(0400).empty());
    // The usual root:hookq 0640: the file's group is the worker's own.
    EXPECT_TRUE(with_mode(0640).empty());
    auto w = with_mode(0644);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find(path), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("'ops'"), std::string::npos) << w[0];
    EXPECT_NE(w[0].find("every user"), std::string::npos) << w[0];
    EXPECT_EQ(w[0].find(secret), std::string::npos) << w[0];
    EXPECT_EQ(with_mode(0604).size(), 1u);
    // env: and literal tokens have no file to check.
    EXPECT_TRUE(load("[admin]\n[[admin.tokens]]\nname = \"ops\"\nrole = \"admin\"\n"
                     "token = \"env:HOOKQ_TEST_ADMIN_TOKEN\"\n")
                    .warnings.empty());
    // Another group (needs root to chown; skipped otherwise).
    if (::chown(path.c_str(), static_cast<uid_t>(-1), ::getegid() == 65534 ? 0 : 65534) == 0) {
        auto g = with_mode(0640);
        ASSERT_EQ(g.size(), 1u);
        EXPECT_NE(g[0].find("its group"), std::string::npos) << g[0];
    }
    ::unlink(path.c_str());
}

}  // namespace
}  // namespace hookq
