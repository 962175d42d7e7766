// Signature schemes: the providers' published examples, then the same battery of attacks and
// malformations against every scheme, then what is particular to each.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <new>

#include "shared/crypto.h"
#include "shared/signature.h"
#include "tests/unit/fake_request.h"

// Counts operator new calls so the test below can prove the request path does not allocate. This is
// the only replacement of the global operator new in hookq_unit_tests; it forwards to
// malloc/free (noinline, or GCC's -Wmismatched-new-delete sees through them).
namespace {
thread_local size_t g_allocations = 0;
}
[[gnu::noinline]] void* operator new(std::size_t n) {
    ++g_allocations;
    if (void* p = std::malloc(n ? n : 1))
        return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace hookq {
namespace {

using Req = testing::FakeRequest;

constexpr int64_t kNow = 1700000000;
const std::string kWhsecA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const std::string kWhsecB = "whsec_c2Vjb25kIHN0YW5kYXJkIHdlYmhvb2tzIGtleSE=";

VerifierConfig config(Scheme s, std::vector<std::string> secrets = {}, HmacHeaderSpec h = {},
                      int64_t tolerance_s = 300) {
    VerifierConfig c;
    c.scheme = s;
    c.secrets = std::move(secrets);
    c.hmac = std::move(h);
    c.tolerance_s = tolerance_s;
    return c;
}

std::unique_ptr<Verifier> make(const VerifierConfig& cfg) {
    std::string error;
    auto v = Verifier::create(cfg, error);
    EXPECT_NE(v, nullptr) << error;
    return v;
}

Req signed_req(const VerifierConfig& cfg, std::string body, std::string url, int64_t ts = kNow) {
    Req r;
    r.body_bytes = std::move(body);
    r.full_url = std::move(url);
    for (auto& [k, v] : sign_request(cfg, r.body_bytes, r.full_url, ts, "delivery-1")) {
        r.headers.emplace_back(k, v);
    }
    return r;
}

// ---------------------------------------------------------------- published examples

TEST(SignaturePublished, GitHubDocsExample) {
    VerifierConfig cfg = config(Scheme::github, {"It's a Secret to Everybody"});
    Req r;
    r.body_bytes = "Hello, World!";
    r.set("X-Hub-Signature-256",
          "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    EXPECT_EQ(make(cfg)->verify(r, kNow), Verdict::ok);
    EXPECT_EQ(sign_request(cfg, r.body_bytes, "", kNow, "").front().second,
              r.get("X-Hub-Signature-256"));
}

// The example in the Standard Webhooks / Svix verification docs.
TEST(SignaturePublished, StandardWebhooksExample) {
    const std::string body = R"({"test": 2432232314})";
    for (Scheme s : {Scheme::standard, Scheme::svix}) {
        const std::string p = s == Scheme::svix ? "svix-" : "webhook-";
        VerifierConfig cfg = config(s, {kWhsecA});
        Req r;
        r.body_bytes = body;
        r.set(p + "id", "msg_p5jXN8AQM9LWM0D4loKWxJek");
        r.set(p + "timestamp", "1614265330");
        r.set(p + "signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        EXPECT_EQ(make(cfg)->verify(r, 1614265330), Verdict::ok);
        EXPECT_EQ(make(cfg)->verify(r, 1614265330 + 301), Verdict::stale_timestamp);
    }
    auto key = crypto::base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    ASSERT_TRUE(key);
    EXPECT_EQ(standard_webhooks_signature(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// Twilio's security docs: auth token 12345, a voice callback's parameters.
TEST(SignaturePublished, TwilioDocsExample) {
    VerifierConfig cfg = config(Scheme::twilio, {"12345"});
    Req r;
    r.full_url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    r.set("Content-Type", "application/x-www-form-urlencoded");
    r.body_bytes =
        "To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B12349013030&"
        "Caller=%2B12349013030";
    r.set("X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    auto v = make(cfg);
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.full_url = "https://mycompany.com:443/myapp.php?foo=1&bar=2";  // the SDK accepts both
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.full_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
}

// ---------------------------------------------------------------- every scheme

struct Case {
    const char* name;
    VerifierConfig cfg;
    VerifierConfig rotated;  // the same scheme with a different first secret
    std::string sig_header;
    std::string url = "https://example.com/hooks/x?a=1";
};

std::vector<Case> cases() {
    auto pair = [](Scheme s, std::string a, std::string b, HmacHeaderSpec h = {}) {
        return std::pair{config(s, {a}, h), config(s, {b}, h)};
    };
    std::vector<Case> out;
    auto add = [&](const char* name, Scheme s, std::string header, std::string a = "secret-one",
                   std::string b = "secret-two", HmacHeaderSpec h = {}) {
        auto [cfg, rot] = pair(s, a, b, h);
        out.push_back({name, cfg, rot, header});
    };
    add("github", Scheme::github, "X-Hub-Signature-256");
    add("stripe", Scheme::stripe, "Stripe-Signature", "whsec_one", "whsec_two");
    add("standard", Scheme::standard, "webhook-signature", kWhsecA, kWhsecB);
    add("svix", Scheme::svix, "svix-signature", kWhsecA, kWhsecB);
    add("shopify", Scheme::shopify, "X-Shopify-Hmac-Sha256");
    add("slack", Scheme::slack, "X-Slack-Signature");
    add("twilio", Scheme::twilio, "X-Twilio-Signature");
    add("hmac_sha256_hex", Scheme::hmac, "X-Signature", "k1", "k2",
        {"X-Signature", HashAlg::sha256, Encoding::hex, "sha256="});
    add("hmac_sha1_b64", Scheme::hmac, "X-Sig", "k1", "k2",
        {"X-Sig", HashAlg::sha1, Encoding::base64, ""});
    add("hmac_sha512_hex", Scheme::hmac, "X-Sig", "k1", "k2",
        {"X-Sig", HashAlg::sha512, Encoding::hex, ""});
    add("hmac_sha512_b64", Scheme::hmac, "X-Sig", "k1", "k2",
        {"X-Sig", HashAlg::sha512, Encoding::base64, "v1:"});
    Case json = out[6];
    json.name = "twilio_json";
    json.url = "https://example.com/hooks/x?bodySHA256=";  // hash appended per body
    out.push_back(json);
    return out;
}

class SigScheme : public ::testing::TestWithParam<Case> {
  protected:
    Req request(std::string body, const VerifierConfig* cfg = nullptr, int64_t ts = kNow) {
        const Case& c = GetParam();
        std::string url = c.url;
        if (url.ends_with("bodySHA256="))
            url += crypto::sha256_hex(body);
        return signed_req(cfg ? *cfg : c.cfg, std::move(body), url, ts);
    }
    Verdict verify(const Req& r, const VerifierConfig* cfg = nullptr, int64_t now = kNow) {
        return make(cfg ? *cfg : GetParam().cfg)->verify(r, now);
    }
    const std::string& header() { return GetParam().sig_header; }
};

TEST_P(SigScheme, ValidRequestVerifies) {
    EXPECT_EQ(verify(request(R"({"event":"ping"})")), Verdict::ok);
}

TEST_P(SigScheme, EmptyBodyVerifies) {
    EXPECT_EQ(verify(request("")), Verdict::ok);
}

TEST_P(SigScheme, TamperedBodyIsBad) {
    Req r = request(R"({"amount":100})");
    r.body_bytes = R"({"amount":900})";
    EXPECT_EQ(verify(r), Verdict::bad_signature);
}

TEST_P(SigScheme, WrongSecretIsBad) {
    EXPECT_EQ(verify(request("payload"), &GetParam().rotated), Verdict::bad_signature);
}

TEST_P(SigScheme, AnyConfiguredSecretMayMatch) {
    VerifierConfig both = GetParam().cfg;
    both.secrets.push_back(GetParam().rotated.secrets.front());
    EXPECT_EQ(verify(request("payload", &GetParam().rotated), &both), Verdict::ok);
    EXPECT_EQ(verify(request("payload"), &both), Verdict::ok);
}

TEST_P(SigScheme, MissingOrEmptyHeaderIsMissing) {
    Req r = request("payload");
    r.set(header(), "");
    EXPECT_EQ(verify(r), Verdict::missing_signature);
    r.erase(header());
    EXPECT_EQ(verify(r), Verdict::missing_signature);
}

TEST_P(SigScheme, GarbageIsMalformed) {
    Req r = request("payload");
    for (const char* g :
         {"garbage", "%%%", "sha256=", "v1,", "t=,v1=", "\x01\x02\xff", "=,=,=", "v0=zz"}) {
        r.set(header(), g);
        EXPECT_EQ(verify(r), Verdict::malformed_signature) << g;
    }
}

TEST_P(SigScheme, TruncatedSignatureIsMalformed) {
    Req r = request("payload");
    std::string sig = r.get(header());
    for (size_t cut : {1, 2, 4}) {
        r.set(header(), sig.substr(0, sig.size() - cut));
        EXPECT_EQ(verify(r), Verdict::malformed_signature) << cut;
    }
}

TEST_P(SigScheme, LargeBodyVerifies) {
    std::string body(256 * 1024, 'x');
    for (size_t i = 0; i < body.size(); i += 1000)
        body[i] = static_cast<char>(i % 251);
    Req r = request(body);
    EXPECT_EQ(verify(r), Verdict::ok);
    r.body_bytes.back() ^= 1;
    EXPECT_EQ(verify(r), Verdict::bad_signature);
}

TEST_P(SigScheme, RawBytesAreSignedNotText) {
    const std::string nul("a\0b\0\0c", 6);
    const std::string not_utf8("\xff\xfe\xc3\x28\x80\x00", 6);
    for (const std::string& body : {nul, not_utf8}) {
        Req r = request(body);
        EXPECT_EQ(verify(r), Verdict::ok);
        r.body_bytes = body.substr(0, 1);  // a verifier that stops at a NUL would accept this
        EXPECT_EQ(verify(r), Verdict::bad_signature);
    }
}

INSTANTIATE_TEST_SUITE_P(All, SigScheme, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Everything but Twilio runs on nginx's request path without touching the heap.
TEST_P(SigScheme, VerifyDoesNotAllocate) {
    if (GetParam().cfg.scheme == Scheme::twilio)
        GTEST_SKIP() << "twilio sorts params on the heap";
    auto v = make(GetParam().cfg);
    Req good = request(std::string(4096, 'b'));
    Req bad = good;
    bad.body_bytes[0] = 'c';
    Req garbage = good;
    garbage.set(header(), "v1=,v1,AAAA t=1");
    const size_t before = g_allocations;
    EXPECT_EQ(v->verify(good, kNow), Verdict::ok);
    EXPECT_EQ(v->verify(bad, kNow), Verdict::bad_signature);
    EXPECT_NE(v->verify(garbage, kNow), Verdict::ok);
    EXPECT_EQ(g_allocations, before);
}

// ---------------------------------------------------------------- timestamps

struct TsCase {
    const char* name;
    Scheme scheme;
    std::string secret, sig_header, ts_header;
};

class SigTimestamp : public ::testing::TestWithParam<TsCase> {
  protected:
    VerifierConfig cfg() const { return config(GetParam().scheme, {GetParam().secret}); }
    Verdict at(int64_t signed_at, int64_t now) const {
        return make(cfg())->verify(signed_req(cfg(), "body", "", signed_at), now);
    }
};

TEST_P(SigTimestamp, ToleranceBothWays) {
    EXPECT_EQ(at(kNow, kNow), Verdict::ok);
    EXPECT_EQ(at(kNow - 300, kNow), Verdict::ok);
    EXPECT_EQ(at(kNow + 300, kNow), Verdict::ok);
    EXPECT_EQ(at(kNow - 301, kNow), Verdict::stale_timestamp);
    EXPECT_EQ(at(kNow + 301, kNow), Verdict::stale_timestamp);
    EXPECT_EQ(at(0, kNow), Verdict::stale_timestamp);
}

TEST_P(SigTimestamp, ConfiguredTolerance) {
    VerifierConfig c = cfg();
    c.tolerance_s = 10;
    EXPECT_EQ(make(c)->verify(signed_req(c, "b", "", kNow - 11), kNow), Verdict::stale_timestamp);
    EXPECT_EQ(make(c)->verify(signed_req(c, "b", "", kNow - 10), kNow), Verdict::ok);
}

// "Stale" is reserved for genuine but old requests; a forgery with an old timestamp is just bad.
TEST_P(SigTimestamp, StaleForgeryIsBadSignature) {
    Req r = signed_req(cfg(), "body", "", kNow - 1000);
    r.body_bytes = "other";
    EXPECT_EQ(make(cfg())->verify(r, kNow), Verdict::bad_signature);
}

TEST_P(SigTimestamp, TimestampMustBeNumeric) {
    const TsCase& c = GetParam();
    auto v = make(cfg());
    for (const char* bad :
         {"", "abc", "17e8", "-1", "0x10", "1700000000.5", "99999999999999999999"}) {
        Req r = signed_req(cfg(), "body", "", kNow);
        if (c.ts_header.empty()) {  // stripe: inside the signature header
            std::string h = r.get(c.sig_header);
            r.set(c.sig_header, "t=" + std::string(bad) + h.substr(h.find(',')));
        } else {
            r.set(c.ts_header, bad);
        }
        EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature) << bad;
    }
    if (!c.ts_header.empty()) {
        Req r = signed_req(cfg(), "body", "", kNow);
        r.erase(c.ts_header);
        EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    }
}

INSTANTIATE_TEST_SUITE_P(
    All, SigTimestamp,
    ::testing::Values(TsCase{"stripe", Scheme::stripe, "whsec_x", "Stripe-Signature", ""},
                      TsCase{"standard", Scheme::standard, kWhsecA, "webhook-signature",
                             "webhook-timestamp"},
                      TsCase{"svix", Scheme::svix, kWhsecA, "svix-signature", "svix-timestamp"},
                      TsCase{"slack", Scheme::slack, "slack-secret", "X-Slack-Signature",
                             "X-Slack-Request-Timestamp"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- per scheme

TEST(SigGithub, PrefixAndHexRules) {
    VerifierConfig cfg = config(Scheme::github, {"s"});
    auto v = make(cfg);
    Req r = signed_req(cfg, "body", "");
    const std::string hex = r.get("X-Hub-Signature-256").substr(7);
    r.set("X-Hub-Signature-256", "sha1=" + hex);
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    r.set("X-Hub-Signature-256", hex);
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    r.set("X-Hub-Signature-256", "sha256=" + hex.substr(1));  // odd length
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    r.set("X-Hub-Signature-256", "sha256=" + hex + "00");  // too long
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    std::string upper = hex;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    r.set("X-Hub-Signature-256", "sha256=" + upper);
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    std::string flipped = hex;
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    r.set("X-Hub-Signature-256", "sha256=" + flipped);
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
}

TEST(SigStripe, HeaderGrammar) {
    VerifierConfig cfg = config(Scheme::stripe, {"whsec_abc"});
    VerifierConfig other = config(Scheme::stripe, {"whsec_other"});
    auto v = make(cfg);
    auto v1_of = [](const Req& r) {
        std::string h = r.get("Stripe-Signature");
        return h.substr(h.find("v1=") + 3);
    };
    Req r = signed_req(cfg, "body", "");
    const std::string good = v1_of(r), bad = v1_of(signed_req(other, "body", ""));
    const std::string t = "t=" + std::to_string(kNow);
    auto with = [&](std::string h) {
        r.set("Stripe-Signature", h);
        return v->verify(r, kNow);
    };
    EXPECT_EQ(with(t + ",v1=" + bad + ",v1=" + good), Verdict::ok);
    EXPECT_EQ(with(t + ",v1=" + good + ",v1=" + bad), Verdict::ok);
    EXPECT_EQ(with("v1=" + good + "," + t), Verdict::ok);  // order is free
    EXPECT_EQ(with(t + ",v0=" + bad + ",v1=" + good + ",foo=bar,x"), Verdict::ok);
    EXPECT_EQ(with(t + ", v1=" + good), Verdict::ok);
    EXPECT_EQ(with(t + ",v1=zz" + good.substr(2) + ",v1=" + good), Verdict::ok);
    EXPECT_EQ(with(t + ",v1=" + bad), Verdict::bad_signature);
    EXPECT_EQ(with(t + ",v1=" + bad + ",v1=" + bad), Verdict::bad_signature);
    EXPECT_EQ(with(t + ",v0=" + good), Verdict::malformed_signature);
    EXPECT_EQ(with("v1=" + good), Verdict::malformed_signature);
    EXPECT_EQ(with(t + ",v1=" + good.substr(1)), Verdict::malformed_signature);
    EXPECT_EQ(with(t + "," + t + ",v1=" + good), Verdict::malformed_signature);
    // The secret is used literally, whsec_ prefix included.
    VerifierConfig bare = config(Scheme::stripe, {"abc"});
    r.set("Stripe-Signature", t + ",v1=" + good);
    EXPECT_EQ(make(bare)->verify(r, kNow), Verdict::bad_signature);
}

TEST(SigStandard, HeadersAndVersions) {
    VerifierConfig cfg = config(Scheme::standard, {kWhsecA});
    auto v = make(cfg);
    Req r = signed_req(cfg, "body", "");
    const std::string good = r.get("webhook-signature");
    auto with_sig = [&](std::string s) {
        r.set("webhook-signature", s);
        return v->verify(r, kNow);
    };
    EXPECT_EQ(with_sig("v1a,abc " + good), Verdict::ok);
    EXPECT_EQ(with_sig("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + good), Verdict::ok);
    EXPECT_EQ(with_sig(good + "  v2,xyz"), Verdict::ok);
    EXPECT_EQ(with_sig("v1a," + good.substr(3)), Verdict::malformed_signature);
    EXPECT_EQ(with_sig("v1," + good.substr(3, 40)), Verdict::malformed_signature);
    EXPECT_EQ(with_sig("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), Verdict::bad_signature);
    with_sig(good);
    r.set("webhook-id", "other-id");
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
    r.erase("webhook-id");
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    // A bare base64 secret is the same key as its whsec_ form.
    VerifierConfig bare = config(Scheme::standard, {kWhsecA.substr(6)});
    Req r2 = signed_req(cfg, "body", "");
    EXPECT_EQ(make(bare)->verify(r2, kNow), Verdict::ok);
}

TEST(SigSvix, AcceptsWebhookHeadersLikeTheSdk) {
    VerifierConfig svix = config(Scheme::svix, {kWhsecA});
    VerifierConfig standard = config(Scheme::standard, {kWhsecA});
    EXPECT_EQ(make(svix)->verify(signed_req(standard, "b", ""), kNow), Verdict::ok);
    // ... but the standard scheme does not read svix- headers.
    EXPECT_EQ(make(standard)->verify(signed_req(svix, "b", ""), kNow), Verdict::missing_signature);
}

TEST(SigShopify, Base64Rules) {
    VerifierConfig cfg = config(Scheme::shopify, {"shpss_x"});
    auto v = make(cfg);
    Req r = signed_req(cfg, "body", "");
    const std::string sig = r.get("X-Shopify-Hmac-Sha256");
    for (const std::string& bad : std::vector<std::string>{
             sig.substr(0, 43), sig + "=", "not base64!", sig.substr(0, 40) + "====", "AAAA"}) {
        r.set("X-Shopify-Hmac-Sha256", bad);
        EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature) << bad;
    }
    std::string hex_sig = crypto::hex_encode(
        reinterpret_cast<const unsigned char*>(crypto::base64_decode(sig)->data()), 32);
    r.set("X-Shopify-Hmac-Sha256", hex_sig);
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
}

TEST(SigSlack, PrefixAndChallenge) {
    VerifierConfig cfg = config(Scheme::slack, {"8f742231b10e8888abcd99yyyzzz85a5"});
    auto v = make(cfg);
    Req r = signed_req(cfg, "token=x&team_id=T1", "");
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.set("X-Slack-Signature", "v1=" + r.get("X-Slack-Signature").substr(3));
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);

    EXPECT_EQ(
        slack_url_verification_challenge(
            R"({"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"})"),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    EXPECT_EQ(slack_url_verification_challenge(R"({"type":"event_callback","challenge":"x"})"),
              std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge(R"({"type":"url_verification"})"), std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge(R"({"type":"url_verification","challenge":1})"),
              std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge("not json"), std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge(std::string("{\"type\":\0", 9)), std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge("[1,2]"), std::nullopt);
    EXPECT_EQ(slack_url_verification_challenge(""), std::nullopt);
}

TEST(SigTwilio, FormParamsAreDecodedSortedAndDeduplicated) {
    VerifierConfig cfg = config(Scheme::twilio, {"token"});
    auto v = make(cfg);
    const std::string url = "https://example.com/twilio?x=1";
    Req r = signed_req(cfg, "B=2&A=1&A=0&A=1&C=a+b%20c%2B&D", url);
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    // The same parameters spelled differently on the wire sign the same way.
    r.body_bytes = "A=0&C=a%20b+c%2b&A=1&B=2&D=";
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.body_bytes = "A=0&A=1&A=0&C=a%20b+c%2b&B=2&&D";  // equal pairs count once, as in the SDK
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.body_bytes = "A=0&C=a%20b+c%2b&B=2&D";
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
    r.body_bytes = "A=0&A=1&C=a%20b+c%2b&B=3&D";
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
    // The params only count for a form; the URL is then all that is signed.
    Req plain = signed_req(cfg, "", url);
    plain.set("Content-Type", "text/plain");
    plain.body_bytes = "anything";
    EXPECT_EQ(v->verify(plain, kNow), Verdict::ok);
    r = signed_req(cfg, "A=1", url);
    r.set("Content-Type", "Application/X-WWW-Form-Urlencoded; charset=utf-8");
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
}

// The control for the VerifyDoesNotAllocate tests: the counter does see the library's allocations.
TEST(SigTwilio, AllocationCounterWorks) {
    VerifierConfig cfg = config(Scheme::twilio, {"token"});
    auto v = make(cfg);
    Req r = signed_req(cfg, "A=1&B=2", "https://example.com/t");
    const size_t before = g_allocations;
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    EXPECT_GT(g_allocations, before);
}

TEST(SigTwilio, PortSpellings) {
    VerifierConfig cfg = config(Scheme::twilio, {"token"});
    auto v = make(cfg);
    struct {
        const char *signed_url, *seen_url;
        Verdict want;
    } rows[] = {
        {"https://example.com/t", "https://example.com:443/t", Verdict::ok},
        {"https://example.com:443/t", "https://example.com/t", Verdict::ok},
        {"http://example.com:80/t?a=b", "http://example.com/t?a=b", Verdict::ok},
        {"https://example.com:8443/t", "https://example.com:8443/t", Verdict::ok},
        {"https://example.com/t", "https://example.com:8443/t", Verdict::ok},  // as the SDK does
        {"https://example.com:8443/t", "https://example.com/t", Verdict::bad_signature},
        {"https://u:p@[::1]:443/t", "https://u:p@[::1]/t", Verdict::ok},
        {"https://example.com/t", "http://example.com/t", Verdict::bad_signature},
    };
    for (const auto& row : rows) {
        Req r = signed_req(cfg, "A=1", row.signed_url);
        r.full_url = row.seen_url;
        EXPECT_EQ(v->verify(r, kNow), row.want) << row.signed_url << " seen as " << row.seen_url;
    }
}

TEST(SigTwilio, JsonBodyHashInUrl) {
    VerifierConfig cfg = config(Scheme::twilio, {"token"});
    auto v = make(cfg);
    const std::string body = R"({"a":1})";
    Req r = signed_req(cfg, body, "https://e.com/t?bodySHA256=" + crypto::sha256_hex(body));
    EXPECT_EQ(r.get("Content-Type"), "application/json");
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.full_url = "https://e.com/t?bodySHA256=zz";
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    r = signed_req(cfg, body, "https://e.com/t?bodySHA256=" + crypto::sha256_hex("other"));
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);  // signed URL, body not the one hashed
}

TEST(SigMoysklad, SharedToken) {
    VerifierConfig open = config(Scheme::moysklad);
    Req r;
    r.full_url = "https://e.com/ms?requestId=abc";
    EXPECT_EQ(make(open)->verify(r, kNow), Verdict::ok);

    VerifierConfig cfg = config(Scheme::moysklad, {"tok-1", "tok-2"});
    auto v = make(cfg);
    EXPECT_EQ(v->verify(r, kNow), Verdict::missing_signature);
    r.full_url = "https://e.com/ms?requestId=abc&token=";
    EXPECT_EQ(v->verify(r, kNow), Verdict::missing_signature);
    r.full_url = "https://e.com/ms?requestId=abc&token=tok-2";
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.full_url = "https://e.com/ms?token=tok-1#frag";
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.full_url = "https://e.com/ms?token=tok-3";
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
    r.full_url = "https://e.com/ms?token=tok-1x";
    EXPECT_EQ(v->verify(r, kNow), Verdict::bad_signature);
    EXPECT_EQ(v->default_dedup().kind, DedupSource::query_arg);
    EXPECT_EQ(v->default_dedup().name, "requestId");

    VerifierConfig hdr = config(Scheme::moysklad, {"tok-1"});
    hdr.token_header = "X-Token";
    auto vh = make(hdr);
    r.full_url = "https://e.com/ms?token=tok-1";
    EXPECT_EQ(vh->verify(r, kNow), Verdict::missing_signature);  // only the header counts
    r.set("X-Token", "tok-1");
    EXPECT_EQ(vh->verify(r, kNow), Verdict::ok);
    EXPECT_EQ(sign_request(hdr, "", "", kNow, "").at(0).second, "tok-1");
}

TEST(SigHmac, PrefixMustMatch) {
    VerifierConfig cfg =
        config(Scheme::hmac, {"k"}, {"X-Sig", HashAlg::sha256, Encoding::hex, "sha256="});
    auto v = make(cfg);
    Req r = signed_req(cfg, "b", "");
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    r.set("X-Sig", "SHA256=" + r.get("X-Sig").substr(7));
    EXPECT_EQ(v->verify(r, kNow), Verdict::malformed_signature);
    VerifierConfig sha1 = cfg;
    sha1.hmac.alg = HashAlg::sha1;  // a sha256-sized value is the wrong length for sha1
    EXPECT_EQ(make(sha1)->verify(signed_req(cfg, "b", ""), kNow), Verdict::malformed_signature);
}

TEST(SigMoysklad, VerifyDoesNotAllocate) {
    auto v = make(config(Scheme::moysklad, {"tok-1", "tok-2"}));
    Req r;
    r.full_url = "https://e.com/ms?requestId=abc&token=tok-2";
    const size_t before = g_allocations;
    EXPECT_EQ(v->verify(r, kNow), Verdict::ok);
    EXPECT_EQ(g_allocations, before);
}

TEST(SigNone, AlwaysOk) {
    VerifierConfig cfg = config(Scheme::none);
    Req r;
    EXPECT_EQ(make(cfg)->verify(r, kNow), Verdict::ok);
    EXPECT_TRUE(sign_request(cfg, "b", "", kNow, "id").empty());
}

// ---------------------------------------------------------------- configuration and names

TEST(SigConfig, CreateRejectsUnusableConfigs) {
    std::string error;
    EXPECT_EQ(Verifier::create(config(Scheme::github), error), nullptr);
    EXPECT_NE(error.find("secret"), std::string::npos);
    EXPECT_EQ(Verifier::create(config(Scheme::github, {"a", ""}), error), nullptr);
    EXPECT_NE(error.find("#2"), std::string::npos);
    EXPECT_EQ(Verifier::create(config(Scheme::hmac, {"a"}), error), nullptr);
    EXPECT_EQ(Verifier::create(config(Scheme::stripe, {"a"}, {}, 0), error), nullptr);
    // A bad whsec_ key is reported without echoing it.
    EXPECT_EQ(Verifier::create(config(Scheme::standard, {"whsec_topsecret!!"}), error), nullptr);
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(error.find("topsecret"), std::string::npos) << error;
    EXPECT_EQ(Verifier::create(config(Scheme::svix, {"whsec_"}), error), nullptr);
    EXPECT_NE(Verifier::create(config(Scheme::none), error), nullptr);
}

TEST(SigConfig, NamesStatusesAndDedup) {
    for (int i = 0; i <= static_cast<int>(Scheme::none); ++i) {
        auto s = static_cast<Scheme>(i);
        EXPECT_EQ(scheme_from_name(scheme_name(s)), s);
    }
    EXPECT_EQ(scheme_from_name("GitHub"), std::nullopt);
    EXPECT_EQ(scheme_from_name(""), std::nullopt);
    EXPECT_EQ(http_status(Verdict::ok), 200);
    EXPECT_EQ(http_status(Verdict::missing_signature), 401);
    EXPECT_EQ(http_status(Verdict::malformed_signature), 400);
    EXPECT_EQ(http_status(Verdict::bad_signature), 401);
    EXPECT_EQ(http_status(Verdict::stale_timestamp), 401);
    EXPECT_EQ(to_string(Verdict::stale_timestamp), "stale_timestamp");

    auto dedup = [](Scheme s, std::string secret = "x") {
        return make(config(s, {secret}, {"X", HashAlg::sha256, Encoding::hex, ""}))
            ->default_dedup();
    };
    EXPECT_EQ(dedup(Scheme::github).name, "X-GitHub-Delivery");
    EXPECT_EQ(dedup(Scheme::standard, kWhsecA).name, "webhook-id");
    EXPECT_EQ(dedup(Scheme::svix, kWhsecA).name, "svix-id");
    EXPECT_EQ(dedup(Scheme::shopify).name, "X-Shopify-Webhook-Id");
    EXPECT_EQ(dedup(Scheme::twilio).name, "I-Twilio-Idempotency-Token");
    EXPECT_EQ(dedup(Scheme::stripe).kind, DedupSource::body_sha256);
    EXPECT_EQ(dedup(Scheme::slack).kind, DedupSource::body_sha256);
    EXPECT_EQ(dedup(Scheme::hmac).kind, DedupSource::body_sha256);
    EXPECT_EQ(dedup(Scheme::none).kind, DedupSource::body_sha256);
    EXPECT_EQ(dedup(Scheme::github).kind, DedupSource::header);
}

TEST(SigQueryArg, RawValuesOfTheUrlQuery) {
    Req r;
    r.full_url = "https://e.com/p?a=1&b=x%20y&flag&c=&a=2&e=f=g#a=frag";
    EXPECT_EQ(r.query_arg("a"), "1");
    EXPECT_EQ(r.query_arg("b"), "x%20y");
    EXPECT_EQ(r.query_arg("flag"), "");
    EXPECT_EQ(r.query_arg("c"), "");
    EXPECT_EQ(r.query_arg("e"), "f=g");
    EXPECT_EQ(r.query_arg("d"), std::nullopt);
    EXPECT_EQ(r.query_arg("A"), std::nullopt);
    r.full_url = "https://e.com/p";
    EXPECT_EQ(r.query_arg("a"), std::nullopt);
    r.full_url = "https://e.com/p?";
    EXPECT_EQ(r.query_arg(""), std::nullopt);
}

TEST(SigSign, ProviderHeaders) {
    auto names = [](const VerifierConfig& cfg) {
        std::vector<std::string> n;
        for (auto& [k, v] : sign_request(cfg, "b", "https://e.com/t", kNow, "id-1"))
            n.push_back(k);
        return n;
    };
    using V = std::vector<std::string>;
    EXPECT_EQ(names(config(Scheme::github, {"s"})),
              (V{"X-Hub-Signature-256", "X-GitHub-Delivery"}));
    EXPECT_EQ(names(config(Scheme::svix, {kWhsecA})),
              (V{"svix-id", "svix-timestamp", "svix-signature"}));
    EXPECT_EQ(names(config(Scheme::slack, {"s"})),
              (V{"X-Slack-Request-Timestamp", "X-Slack-Signature"}));
    auto stripe = sign_request(config(Scheme::stripe, {"s"}), "b", "", kNow, "");
    EXPECT_TRUE(stripe.at(0).second.starts_with("t=1700000000,v1="));
}

}  // namespace
}  // namespace hookq
