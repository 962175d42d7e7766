// load_secret: the three spellings, the one-newline rule, and errors that never leak the secret.
#include <gtest/gtest.h>

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
    EXPECT_EQ(load("not-a-file:/x"), "not-a-file:/x");
    EXPECT_EQ(load(" spaced "), " spaced ");
}

TEST_F(SecretTest, FileStripsOneTrailingNewline) {
    EXPECT_EQ(load("file:" + write("a", "s3cret\n")), "s3cret");
    EXPECT_EQ(load("file:" + write("b", "s3cret\r\n")), "s3cret");
    EXPECT_EQ(load("file:" + write("c", "s3cret")), "s3cret");
    EXPECT_EQ(load("file:" + write("d", "s3cret\n\n")), "s3cret\n");
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
