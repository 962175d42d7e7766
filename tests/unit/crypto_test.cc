// crypto:: against RFC test vectors and against OpenSSL's own HMAC().
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <random>

#include "shared/crypto.h"

namespace hookq::crypto {
namespace {

std::string hmac_hex(HashAlg alg, std::string_view key,
                     std::initializer_list<std::string_view> parts) {
    unsigned char out[kMaxDigestSize];
    hmac(alg, key, parts, out);
    return hex_encode(out, digest_size(alg));
}

TEST(Crypto, Rfc4231AndRfc2202) {
    const std::string key(20, '\x0b');
    EXPECT_EQ(hmac_hex(HashAlg::sha256, key, {"Hi There"}),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(hmac_hex(HashAlg::sha512, key, {"Hi There"}),
              "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
              "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
    EXPECT_EQ(hmac_hex(HashAlg::sha1, key, {"Hi There"}),
              "b617318655057264e28bc0b6fb378c8ef146be00");
    // Key longer than the block: hashed first.
    EXPECT_EQ(hmac_hex(HashAlg::sha256, std::string(131, '\xaa'),
                       {"Test Using Larger Than Block-Size Key - Hash Key First"}),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    // Parts are concatenated.
    EXPECT_EQ(hmac_hex(HashAlg::sha256, key, {"Hi", " ", "", "There"}),
              hmac_hex(HashAlg::sha256, key, {"Hi There"}));
}

TEST(Crypto, HmacKeyMatchesOpenSsl) {
    std::mt19937 rng(42);
    auto bytes = [&](size_t n) {
        std::string s(n, '\0');
        for (char& c : s)
            c = static_cast<char>(rng());
        return s;
    };
    for (auto [alg, md] : {std::pair{HashAlg::sha1, EVP_sha1()},
                           {HashAlg::sha256, EVP_sha256()},
                           {HashAlg::sha512, EVP_sha512()}}) {
        for (size_t klen : {0, 1, 32, 63, 64, 65, 127, 128, 129, 300}) {
            const std::string key = bytes(klen);
            HmacKey k(alg, key);
            HmacKey copy = k;
            for (size_t mlen : {0, 1, 55, 56, 64, 111, 112, 128, 1000, 70000}) {
                const std::string msg = bytes(mlen);
                unsigned char want[EVP_MAX_MD_SIZE], got[kMaxDigestSize];
                unsigned int n = 0;
                HMAC(md, key.data(), static_cast<int>(key.size()),
                     reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), want, &n);
                ASSERT_EQ(n, k.size());
                copy.mac({msg.substr(0, mlen / 3), msg.substr(mlen / 3)}, got);
                EXPECT_EQ(hex_encode(got, n), hex_encode(want, n)) << klen << " " << mlen;
            }
        }
    }
}

TEST(Crypto, Digests) {
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(sha256_hex(std::string("\0", 1)),
              "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    EXPECT_EQ(digest_size(HashAlg::sha1), 20u);
    EXPECT_EQ(digest_size(HashAlg::sha512), 64u);
}

TEST(Crypto, Hex) {
    const unsigned char b[] = {0x00, 0x7f, 0xab, 0xff};
    EXPECT_EQ(hex_encode(b, 4), "007fabff");
    EXPECT_EQ(hex_decode("007FabfF"), std::string("\x00\x7f\xab\xff", 4));
    EXPECT_EQ(hex_decode(""), "");
    EXPECT_EQ(hex_decode("abc"), std::nullopt);
    EXPECT_EQ(hex_decode("zz"), std::nullopt);
    EXPECT_EQ(hex_decode("0g"), std::nullopt);
    EXPECT_EQ(hex_decode(" 00"), std::nullopt);
    unsigned char out[2];
    EXPECT_EQ(hex_decode("000000", out, 2), std::nullopt);  // does not fit
    EXPECT_EQ(hex_decode("0102", out, 2), 2u);
}

TEST(Crypto, Base64Rfc4648) {
    const std::pair<const char*, const char*> v[] = {{"", ""},
                                                     {"f", "Zg=="},
                                                     {"fo", "Zm8="},
                                                     {"foo", "Zm9v"},
                                                     {"foob", "Zm9vYg=="},
                                                     {"fooba", "Zm9vYmE="},
                                                     {"foobar", "Zm9vYmFy"}};
    for (auto [plain, enc] : v) {
        std::string p(plain);
        EXPECT_EQ(base64_encode(reinterpret_cast<const unsigned char*>(p.data()), p.size()), enc);
        EXPECT_EQ(base64_decode(enc), p);
    }
    const unsigned char all[] = {0xfb, 0xff, 0xbf};
    EXPECT_EQ(base64_encode(all, 3), "+/+/");
}

TEST(Crypto, Base64IsStrict) {
    for (const char* bad : {"Zg", "Zg=", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zm9v\n",
                            "Zm9v YmFy", "-_-_", "Zm=v", "=Zm9", "Zm9vY===", "Zg==Zg=="}) {
        EXPECT_EQ(base64_decode(bad), std::nullopt) << bad;
    }
    unsigned char out[3];
    EXPECT_EQ(base64_decode("Zm9vYmFy", out, 3), std::nullopt);
    EXPECT_EQ(base64_decode("Zm9v", out, 3), 3u);
}

TEST(Crypto, EqualCt) {
    EXPECT_TRUE(equal_ct("", ""));
    EXPECT_TRUE(equal_ct(std::string("a\0b", 3), std::string("a\0b", 3)));
    EXPECT_FALSE(equal_ct(std::string("a\0b", 3), std::string("a\0c", 3)));
    EXPECT_FALSE(equal_ct("abc", "ab"));
    EXPECT_FALSE(equal_ct("", "a"));
}

}  // namespace
}  // namespace hookq::crypto
