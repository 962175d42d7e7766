// load_secret: the spellings, the refusals of what is ambiguous, the one-line rule, the bounds on a
// secret file, and errors that never leak the secret.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "shared/secret.h"

namespace hookq {
namespace {

class SecretTest : public ::testing::Test {
  protected:
    std::filesystem::path dir_;
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("hookq-secret-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string write(const std::string& name, const std::string& content) {
        auto p = dir_ / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
    std::optional<std::string> load(const std::string& spec) { return load_secret(spec, error_); }
    std::string error_;
};

TEST_F(SecretTest, Literal) {
    EXPECT_EQ(load("whsec_abc"), "whsec_abc");
    EXPECT_EQ(load(" spaced "), " spaced ");
    EXPECT_EQ(load("whsec_a/b+c=="), "whsec_a/b+c==");  // base64 may hold '/' after the start
    EXPECT_EQ(load("p@ss:word"), "p@ss:word");          // '@' is no source name
    EXPECT_EQ(load("literal:whsec_abc"), "whsec_abc");
    EXPECT_EQ(load("literal:/etc/hookq/x.secret"), "/etc/hookq/x.secret");
    EXPECT_EQ(load("literal:fiel:/x"), "fiel:/x");
    EXPECT_EQ(load("literal:file:/x"), "file:/x");
}

// The README's path without "file:" used to become the HMAC key, which anyone who read the README
// could sign with.
TEST_F(SecretTest, BareValueThatLooksLikeAPathIsRefused) {
    const std::string real = write("gh", "s3cret\n");
    for (const std::string& spec :
         {real, std::string("/etc/hookq/github.secret"), std::string("./gh.secret"),
          std::string("../gh.secret"), std::string("~/gh.secret")}) {
        EXPECT_EQ(load(spec), std::nullopt) << spec;
        EXPECT_NE(error_.find("file:"), std::string::npos) << error_;
        EXPECT_NE(error_.find("literal:"), std::string::npos) << error_;
        EXPECT_EQ(error_.find(spec), std::string::npos) << "echoes the value: " << error_;
    }
}

TEST_F(SecretTest, UnknownSourceIsRefused) {
    for (const std::string spec : {"fiel:/x", "File:/etc/hookq/x", "vault:secret/x",
                                   "not-a-file:/x", "envv:NAME", "s3cret-value:with-colon"}) {
        EXPECT_EQ(load(spec), std::nullopt) << spec;
        EXPECT_NE(error_.find("unknown source"), std::string::npos) << error_;
        EXPECT_EQ(error_.find(spec), std::string::npos) << "echoes the value: " << error_;
        EXPECT_EQ(error_.find(spec.substr(0, spec.find(':'))), std::string::npos) << error_;
    }
}

TEST_F(SecretTest, EmptyLiteralPrefixIsAnError) {
    EXPECT_EQ(load("literal:"), std::nullopt);
    EXPECT_NE(error_.find("literal:"), std::string::npos) << error_;
}

TEST_F(SecretTest, MultiLineSecretsAreRefused) {
    const std::string two = write("two", "old-secret\nnew-secret\n");
    EXPECT_EQ(load("file:" + two), std::nullopt);
    EXPECT_NE(error_.find(two), std::string::npos) << error_;
    EXPECT_NE(error_.find("more than one line"), std::string::npos) << error_;
    EXPECT_EQ(error_.find("old-secret"), std::string::npos) << error_;
    EXPECT_EQ(load("file:" + write("blank", "s3cret\n\n")), std::nullopt);
    EXPECT_EQ(load("file:" + write("cr", "s3cret\rx")), std::nullopt);
    EXPECT_EQ(load("literal:a\nb"), std::nullopt);
    EXPECT_EQ(load("a\nb"), std::nullopt);
    ::setenv("HOOKQ_TEST_SECRET", "from-env\n", 1);
    EXPECT_EQ(load("env:HOOKQ_TEST_SECRET"), std::nullopt);
    EXPECT_NE(error_.find("HOOKQ_TEST_SECRET"), std::string::npos) << error_;
    EXPECT_EQ(error_.find("from-env"), std::string::npos) << error_;
    ::unsetenv("HOOKQ_TEST_SECRET");
}

TEST_F(SecretTest, FileSizeIsBounded) {
    const std::string exact = write("exact", std::string(kMaxSecretFileBytes, 'k'));
    EXPECT_EQ(load("file:" + exact), std::string(kMaxSecretFileBytes, 'k'));
    const std::string big = write("big", std::string(kMaxSecretFileBytes + 1, 'k'));
    EXPECT_EQ(load("file:" + big), std::nullopt);
    EXPECT_NE(error_.find(big), std::string::npos) << error_;
    EXPECT_NE(error_.find("larger than 4096 bytes"), std::string::npos) << error_;
}

// "file:/dev/zero" used to be read until memory ran out; a FIFO blocked the reload forever.
TEST_F(SecretTest, NonRegularFilesAreRefused) {
    EXPECT_EQ(load("file:/dev/zero"), std::nullopt);
    EXPECT_NE(error_.find("\"/dev/zero\" is not a regular file"), std::string::npos) << error_;
    EXPECT_EQ(load("file:/dev/null"), std::nullopt);
    EXPECT_NE(error_.find("not a regular file"), std::string::npos) << error_;
    const std::string fifo = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(load("file:" + fifo), std::nullopt);
    EXPECT_NE(error_.find("not a regular file"), std::string::npos) << error_;
    EXPECT_EQ(load("file:" + dir_.string()), std::nullopt);
    EXPECT_NE(error_.find("not a regular file"), std::string::npos) << error_;
}

TEST_F(SecretTest, WorldReadableFileWarns) {
    const std::string p = write("mode", "s3cret\n");
    std::string warning = "stale";
    ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
    EXPECT_EQ(load_secret("file:" + p, error_, &warning), "s3cret");
    EXPECT_EQ(warning, "");
    ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
    EXPECT_EQ(load_secret("file:" + p, error_, &warning), "s3cret");
    EXPECT_NE(warning.find(p), std::string::npos) << warning;
    EXPECT_NE(warning.find("readable by every user"), std::string::npos) << warning;
    EXPECT_EQ(warning.find("s3cret\""), std::string::npos) << warning;
    // Literal and env secrets have no file mode to warn about.
    EXPECT_EQ(load_secret("literal:x", error_, &warning), "x");
    EXPECT_EQ(warning, "");
}

TEST_F(SecretTest, FileStripsOneTrailingNewline) {
    EXPECT_EQ(load("file:" + write("a", "s3cret\n")), "s3cret");
    EXPECT_EQ(load("file:" + write("b", "s3cret\r\n")), "s3cret");
    EXPECT_EQ(load("file:" + write("c", "s3cret")), "s3cret");
    EXPECT_EQ(load("file:" + write("e", "s3cret \n")), "s3cret ");
    EXPECT_EQ(load("file:" + write("f", std::string("a\0b\n", 4))), std::string("a\0b", 3));
}

TEST_F(SecretTest, FileErrorsNameThePathNotTheContent) {
    const std::string missing = (dir_ / "missing").string();
    EXPECT_EQ(load("file:" + missing), std::nullopt);
    EXPECT_NE(error_.find(missing), std::string::npos) << error_;

    const std::string empty = write("empty", "\n");
    EXPECT_EQ(load("file:" + empty), std::nullopt);
    EXPECT_NE(error_.find(empty), std::string::npos) << error_;

    EXPECT_EQ(load("file:"), std::nullopt);
    EXPECT_FALSE(error_.empty());
    EXPECT_EQ(load("file:" + dir_.string()), std::nullopt);  // a directory
    EXPECT_NE(error_.find(dir_.string()), std::string::npos) << error_;

    const std::string unreadable = write("unreadable", "s3cret\n");
    ::chmod(unreadable.c_str(), 0);
    if (::geteuid() != 0) {  // root reads it anyway
        EXPECT_EQ(load("file:" + unreadable), std::nullopt);
        EXPECT_NE(error_.find(unreadable), std::string::npos) << error_;
    }
}

TEST_F(SecretTest, Env) {
    ::setenv("HOOKQ_TEST_SECRET", "from-env", 1);
    EXPECT_EQ(load("env:HOOKQ_TEST_SECRET"), "from-env");
    ::setenv("HOOKQ_TEST_SECRET", "", 1);
    EXPECT_EQ(load("env:HOOKQ_TEST_SECRET"), std::nullopt);
    EXPECT_NE(error_.find("HOOKQ_TEST_SECRET"), std::string::npos);
    ::unsetenv("HOOKQ_TEST_SECRET");
    EXPECT_EQ(load("env:HOOKQ_TEST_SECRET"), std::nullopt);
    EXPECT_NE(error_.find("HOOKQ_TEST_SECRET"), std::string::npos);
    EXPECT_EQ(load("env:"), std::nullopt);
}

TEST_F(SecretTest, EmptyLiteralIsAnError) {
    EXPECT_EQ(load(""), std::nullopt);
    EXPECT_FALSE(error_.empty());
}

}  // namespace
}  // namespace hookq
