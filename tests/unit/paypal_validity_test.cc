// PayPal certificates are checked against the clock on every request, with the bounds read when
// they were loaded: a certificate that expires (or, after the clock steps back, is not yet valid)
// stops verifying without a reload.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shared/crypto.h"
#include "shared/signature.h"
#include "tests/unit/fake_request.h"

namespace hookq {
namespace {

constexpr const char* kWebhookId = "8PT597110X687430LKGECATA";

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

Key rsa_key() {
    EVP_PKEY* k = nullptr;
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr), EVP_PKEY_CTX_free);
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 1024) != 1 ||
        EVP_PKEY_keygen(ctx.get(), &k) != 1)
        ADD_FAILURE() << "RSA key generation failed";
    return Key(k, EVP_PKEY_free);
}

Cert make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, int64_t from,
               int64_t until, long serial) {
    Cert c(X509_new(), X509_free);
    X509_set_version(c.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
    ASN1_TIME_set(X509_getm_notBefore(c.get()), static_cast<time_t>(from));
    ASN1_TIME_set(X509_getm_notAfter(c.get()), static_cast<time_t>(until));
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(c.get(), key);
    if (issuer == nullptr) {
        // A CA OpenSSL accepts as an issuer.
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, c.get(), c.get(), nullptr, nullptr, 0);
        for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                                  std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"}}) {
            X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
            X509_add_ext(c.get(), ext, -1);
            X509_EXTENSION_free(ext);
        }
    }
    X509_sign(c.get(), issuer_key, EVP_sha256());
    return c;
}

std::string pem(X509* c) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(bio.get(), c);
    char* p = nullptr;
    long n = BIO_get_mem_data(bio.get(), &p);
    return std::string(p, static_cast<size_t>(n));
}

std::string rfc3339(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// PayPal's example body, at PayPal's kind of URL.
struct Req : testing::FakeRequest {
    Req() {
        body_bytes = R"({"id":"WH-1"})";
        full_url = "https://example.com/hooks/paypal";
    }
};

// What PayPal sends at `when`, signed with `key`.
Req signed_at(EVP_PKEY* key, int64_t when) {
    Req r;
    std::string time = rfc3339(when);
    uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(r.body_bytes.data()),
                      static_cast<uInt>(r.body_bytes.size()));
    std::string message = "tid-1|" + time + "|" + kWebhookId + "|" + std::to_string(crc);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    unsigned char sig[512];
    size_t len = sizeof sig;
    EXPECT_EQ(EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key), 1);
    EXPECT_EQ(
        EVP_DigestSign(md.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()),
        1);
    r.headers = {{"PAYPAL-TRANSMISSION-ID", "tid-1"},
                 {"PAYPAL-TRANSMISSION-TIME", time},
                 {"PAYPAL-TRANSMISSION-SIG", crypto::base64_encode(sig, len)},
                 {"PAYPAL-CERT-URL", "https://api.paypal.com/v1/notifications/certs/CERT-1"},
                 {"PAYPAL-AUTH-ALGO", "SHA256withRSA"}};
    return r;
}

class PaypalValidity : public ::testing::Test {
  protected:
    void SetUp() override {
        now_ = static_cast<int64_t>(std::time(nullptr));
        ca_key_ = rsa_key();
        ca_ = make_cert("hookq unit test CA", ca_key_.get(), nullptr, ca_key_.get(), now_ - 86400,
                        now_ + 86400, 1);
        char path[] = "/tmp/hookq-paypal-ca-XXXXXX";
        int fd = mkstemp(path);
        ASSERT_GE(fd, 0);
        std::string ca_pem = pem(ca_.get());
        ASSERT_EQ(write(fd, ca_pem.data(), ca_pem.size()), static_cast<ssize_t>(ca_pem.size()));
        close(fd);
        ca_path_ = path;
    }
    void TearDown() override { std::remove(ca_path_.c_str()); }

    std::unique_ptr<Verifier> verifier(std::vector<std::string> certs) {
        VerifierConfig cfg;
        cfg.scheme = Scheme::paypal;
        cfg.secrets = {kWebhookId};
        cfg.paypal_certs = std::move(certs);
        cfg.paypal_ca_file = ca_path_;
        std::string error;
        auto v = Verifier::create(cfg, error);
        EXPECT_TRUE(v) << error;
        return v;
    }

    int64_t now_ = 0;
    Key ca_key_{nullptr, EVP_PKEY_free};
    Cert ca_{nullptr, X509_free};
    std::string ca_path_;
};

TEST_F(PaypalValidity, RefusedOnceTheClockLeavesTheCertificatesValidity) {
    Key key = rsa_key();
    const int64_t from = now_ - 100, until = now_ + 100;
    Cert leaf = make_cert("messageverificationcerts.paypal.com", key.get(), ca_.get(),
                          ca_key_.get(), from, until, 2);
    auto v = verifier({pem(leaf.get())});
    ASSERT_TRUE(v);
    auto at = [&](int64_t t) { return v->verify(signed_at(key.get(), t), t); };
    EXPECT_EQ(at(now_), Verdict::ok);
    EXPECT_EQ(at(from), Verdict::ok);
    EXPECT_EQ(at(until), Verdict::ok);
    EXPECT_EQ(at(until + 1), Verdict::certificate_expired);
    EXPECT_EQ(at(until + 86400 * 365), Verdict::certificate_expired);
    EXPECT_EQ(at(from - 1), Verdict::certificate_not_yet_valid);
    EXPECT_EQ(http_status(Verdict::certificate_expired), 401);
    EXPECT_EQ(http_status(Verdict::certificate_not_yet_valid), 401);

    // A forgery is not told apart by the certificate's validity.
    Key other = rsa_key();
    EXPECT_EQ(v->verify(signed_at(other.get(), until + 1), until + 1), Verdict::bad_signature);
}

TEST_F(PaypalValidity, TheChainBoundsTheCertificate) {
    // The leaf outlives its CA: it stops verifying when the CA expires, as OpenSSL would say.
    Key key = rsa_key();
    Cert leaf = make_cert("messageverificationcerts.paypal.com", key.get(), ca_.get(),
                          ca_key_.get(), now_ - 100, now_ + 86400 * 30, 3);
    auto v = verifier({pem(leaf.get())});
    ASSERT_TRUE(v);
    const int64_t ca_until = now_ + 86400;
    EXPECT_EQ(v->verify(signed_at(key.get(), ca_until), ca_until), Verdict::ok);
    EXPECT_EQ(v->verify(signed_at(key.get(), ca_until + 1), ca_until + 1),
              Verdict::certificate_expired);
}

TEST_F(PaypalValidity, DuringRotationTheCurrentCertificateStillVerifies) {
    Key old_key = rsa_key(), new_key = rsa_key();
    const int64_t old_until = now_ + 60;
    Cert old_cert = make_cert("messageverificationcerts.paypal.com", old_key.get(), ca_.get(),
                              ca_key_.get(), now_ - 100, old_until, 4);
    Cert new_cert = make_cert("messageverificationcerts.paypal.com", new_key.get(), ca_.get(),
                              ca_key_.get(), now_ - 100, now_ + 3600, 5);
    auto v = verifier({pem(old_cert.get()), pem(new_cert.get())});
    ASSERT_TRUE(v);
    const int64_t later = old_until + 10;
    EXPECT_EQ(v->verify(signed_at(new_key.get(), later), later), Verdict::ok);
    EXPECT_EQ(v->verify(signed_at(old_key.get(), later), later), Verdict::certificate_expired);
}

}  // namespace
}  // namespace hookq
