// Feeds arbitrary bytes to every scheme through Verifier::verify, with two oracles besides the
// sanitizers:
//
// 1. Forgery. The input up to its first NUL is sent as each scheme's signature header, the rest as
//    the timestamp, the id, the URL's query and the body. The fuzzer never sees a MAC under the
//    configured secrets and cannot compute one, so verify() answering ok is a forgery accepted.
//    (none accepts everything by design; moysklad may accept only when the URL carries a token.)
// 2. Round trip. For the input's body and id, the headers each provider sends are computed here
//    with OpenSSL's HMAC directly, not with hookq's crypto or signing code. verify() must accept
//    them, signed with either configured secret (rotation), at any timestamp within the tolerance;
//    and must refuse them once one input-chosen bit of the MAC is flipped, once they are signed
//    with a secret that is not configured, and (as stale) once the timestamp is outside the
//    tolerance.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/signature.h"

namespace {

using namespace hookq;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

class FuzzRequest : public RequestView {
  public:
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body_text;
    std::string full_url;

    std::optional<std::string_view> header(std::string_view name) const override {
        for (const auto& [k, v] : headers) {
            if (iequals(k, name))
                return std::string_view(v);
        }
        return std::nullopt;
    }
    std::string_view body() const override { return body_text; }
    std::string_view url() const override { return full_url; }
};

constexpr int64_t kTolerance = 300;
const std::vector<std::string> kSecrets = {"secret-one", "secret-two"};
constexpr std::string_view kForeignSecret = "secret-three";
constexpr std::string_view kWhsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kForeignWhsec = "whsec_c2VjcmV0LXRocmVlLXNlY3JldC10aHJlZQ==";
constexpr std::string_view kBaseUrl = "https://example.com:8443/hooks";

std::unique_ptr<Verifier> make(Scheme s, std::vector<std::string> secrets) {
    VerifierConfig c;
    c.scheme = s;
    c.secrets = std::move(secrets);
    c.tolerance_s = kTolerance;
    c.hmac = {"X-Sig", HashAlg::sha512, Encoding::base64, "sha512="};
    std::string error;
    auto v = Verifier::create(c, error);
    if (!v)
        __builtin_trap();
    return v;
}

struct Target {
    Scheme scheme;
    std::unique_ptr<Verifier> verifier;
    const char* sig;  // the header the forgery oracle fills
    const char* ts;
    const char* id;
};

std::vector<Target> make_targets() {
    const std::vector<std::string> whsec = {std::string(kWhsec)};
    std::vector<Target> t;
    t.push_back({Scheme::github, make(Scheme::github, kSecrets), "X-Hub-Signature-256", "", ""});
    t.push_back({Scheme::stripe, make(Scheme::stripe, kSecrets), "Stripe-Signature", "", ""});
    t.push_back({Scheme::standard, make(Scheme::standard, whsec), "webhook-signature",
                 "webhook-timestamp", "webhook-id"});
    t.push_back(
        {Scheme::svix, make(Scheme::svix, whsec), "svix-signature", "svix-timestamp", "svix-id"});
    t.push_back(
        {Scheme::shopify, make(Scheme::shopify, kSecrets), "X-Shopify-Hmac-Sha256", "", ""});
    t.push_back({Scheme::slack, make(Scheme::slack, kSecrets), "X-Slack-Signature",
                 "X-Slack-Request-Timestamp", ""});
    t.push_back({Scheme::twilio, make(Scheme::twilio, kSecrets), "X-Twilio-Signature", "", ""});
    t.push_back({Scheme::moysklad, make(Scheme::moysklad, kSecrets), "X-Unused", "", ""});
    t.push_back({Scheme::hmac, make(Scheme::hmac, kSecrets), "X-Sig", "", ""});
    t.push_back({Scheme::none, make(Scheme::none, {}), "X-Unused", "", ""});
    return t;
}

// ---- The independent side: OpenSSL directly ----

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view msg) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(md, key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len) == nullptr)
        __builtin_trap();
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string hex(std::string_view raw) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string b64(std::string_view raw) {
    std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(raw.data()),
                            static_cast<int>(raw.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string whsec_key(std::string_view whsec) {
    std::string_view b = whsec.substr(6);
    std::string out(b.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(b.data()),
                            static_cast<int>(b.size()));
    if (n < 0)
        __builtin_trap();
    size_t pad = b.ends_with("==") ? 2 : b.ends_with('=') ? 1 : 0;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
}

// How the round trip is varied, taken from the input.
struct Signing {
    bool foreign = false;  // sign with a secret that is not configured
    int which_secret = 0;  // 0 or 1: rotation
    int flip_bit = -1;     // flip this bit of the raw MAC; -1: none
    int64_t ts = 0;        // the timestamp signed and sent
};

// The MAC bytes as the provider computes them, with the requested corruption.
std::string provider_mac(const EVP_MD* md, std::string_view key, std::string_view msg,
                         const Signing& s) {
    std::string mac = hmac(md, key, msg);
    if (s.flip_bit >= 0) {
        size_t bit = static_cast<size_t>(s.flip_bit) % (mac.size() * 8);
        mac[bit / 8] = static_cast<char>(mac[bit / 8] ^ (1 << (bit % 8)));
    }
    return mac;
}

// Builds the request a provider sends for `scheme`.
void sign(Scheme scheme, const Signing& s, std::string_view id, FuzzRequest& r) {
    const std::string secret =
        s.foreign ? std::string(kForeignSecret) : kSecrets[static_cast<size_t>(s.which_secret)];
    const std::string ts = std::to_string(s.ts);
    const std::string_view body = r.body_text;
    auto& h = r.headers;
    switch (scheme) {
        case Scheme::github:
            h.emplace_back("X-Hub-Signature-256",
                           "sha256=" + hex(provider_mac(EVP_sha256(), secret, body, s)));
            break;
        case Scheme::stripe:
            h.emplace_back(
                "Stripe-Signature",
                "t=" + ts + ",v1=" +
                    hex(provider_mac(EVP_sha256(), secret, ts + "." + std::string(body), s)));
            break;
        case Scheme::standard:
        case Scheme::svix: {
            const std::string key = whsec_key(s.foreign ? kForeignWhsec : kWhsec);
            const std::string p = scheme == Scheme::svix ? "svix-" : "webhook-";
            h.emplace_back(p + "id", std::string(id));
            h.emplace_back(p + "timestamp", ts);
            h.emplace_back(
                p + "signature",
                "v1," + b64(provider_mac(EVP_sha256(), key,
                                         std::string(id) + "." + ts + "." + std::string(body), s)));
            break;
        }
        case Scheme::shopify:
            h.emplace_back("X-Shopify-Hmac-Sha256",
                           b64(provider_mac(EVP_sha256(), secret, body, s)));
            break;
        case Scheme::slack:
            h.emplace_back("X-Slack-Request-Timestamp", ts);
            h.emplace_back("X-Slack-Signature",
                           "v0=" + hex(provider_mac(EVP_sha256(), secret,
                                                    "v0:" + ts + ":" + std::string(body), s)));
            break;
        case Scheme::twilio:
            // Not a form and no bodySHA256: Twilio signs the URL alone (which carries the input).
            h.emplace_back("Content-Type", "text/plain");
            h.emplace_back("X-Twilio-Signature",
                           b64(provider_mac(EVP_sha1(), secret, r.full_url, s)));
            break;
        case Scheme::hmac:
            h.emplace_back("X-Sig", "sha512=" + b64(provider_mac(EVP_sha512(), secret, body, s)));
            break;
        case Scheme::moysklad: {
            std::string token = secret;
            if (s.flip_bit >= 0)
                token[static_cast<size_t>(s.flip_bit) % token.size()] ^= 1;
            r.full_url = std::string(kBaseUrl) + "?token=" + token;
            break;
        }
        case Scheme::none:
            break;
    }
}

bool timestamped(Scheme s) {
    return s == Scheme::stripe || s == Scheme::standard || s == Scheme::svix || s == Scheme::slack;
}

void forgery_oracle(const std::vector<Target>& targets, std::string_view in, const uint8_t* data,
                    size_t size) {
    size_t nul = in.find('\0');
    std::string_view sig = in.substr(0, nul);
    std::string_view rest = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
    FuzzRequest r;
    r.body_text = rest;
    // Alternate the Twilio body flavours on the input's first byte.
    const char* content_type =
        size > 0 && (data[0] & 1) ? "application/x-www-form-urlencoded" : "text/plain";
    r.full_url = std::string(kBaseUrl) + "?token=" + std::string(rest);
    if (size > 0 && (data[0] & 2))
        r.full_url = std::string(sig);
    for (const Target& t : targets) {
        r.headers.clear();
        r.headers.emplace_back(t.sig, std::string(sig));
        if (*t.ts)
            r.headers.emplace_back(t.ts, std::string(rest));
        if (*t.id)
            r.headers.emplace_back(t.id, std::string(rest));
        r.headers.emplace_back("Content-Type", content_type);
        for (int64_t now : {int64_t{0}, int64_t{1700000000}, INT64_MAX / 2}) {
            Verdict v = t.verifier->verify(r, now);
            int status = http_status(v);
            if (status != 200 && status != 400 && status != 401)
                __builtin_trap();
            if (v != Verdict::ok || t.scheme == Scheme::none)
                continue;
            // A token is plain text, so the fuzzer can write one; a MAC it cannot.
            if (t.scheme == Scheme::moysklad &&
                (r.full_url.find("token=secret-one") != std::string::npos ||
                 r.full_url.find("token=secret-two") != std::string::npos))
                continue;
            __builtin_trap();  // accepted a request nobody with the secret signed
        }
    }
}

void round_trip_oracle(const std::vector<Target>& targets, std::string_view in, const uint8_t* data,
                       size_t size) {
    if (size < 4)
        return;
    // The body is the input itself; the id is printable, as ids are, and varies with the input.
    const std::string id = "msg_" + hex(in.substr(0, 12));
    const int64_t now = 1700000000 + data[0];
    // Anywhere within the tolerance, in either direction, including its edges.
    const int64_t skew =
        static_cast<int64_t>((data[1] << 8 | data[2]) % (2 * kTolerance + 1)) - kTolerance;
    const int flip = data[3] | (size > 4 ? data[4] << 8 : 0);
    for (const Target& t : targets) {
        if (t.scheme == Scheme::none)
            continue;
        auto verdict = [&](const Signing& s) {
            FuzzRequest r;
            r.body_text = in;
            r.full_url = std::string(kBaseUrl) + "?ref=" + hex(in.substr(0, 32));
            sign(t.scheme, s, id, r);
            return t.verifier->verify(r, now);
        };
        Signing good;
        good.which_secret = data[0] & 1;
        good.ts = now + skew;
        if (t.scheme == Scheme::standard || t.scheme == Scheme::svix)
            good.which_secret = 0;  // one whsec_ key configured
        if (verdict(good) != Verdict::ok)
            __builtin_trap();  // refused a correctly signed request

        Signing flipped = good;
        flipped.flip_bit = flip;
        if (verdict(flipped) == Verdict::ok)
            __builtin_trap();  // accepted a MAC (or token) one bit off

        Signing foreign = good;
        foreign.foreign = true;
        if (verdict(foreign) == Verdict::ok)
            __builtin_trap();  // accepted a secret that is not configured

        if (timestamped(t.scheme)) {
            Signing stale = good;
            const int64_t beyond = kTolerance + 1 + (skew + kTolerance);  // 301 to 901 s
            stale.ts = (data[0] & 2) ? now + beyond : now - beyond;
            if (verdict(stale) != Verdict::stale_timestamp)
                __builtin_trap();  // a genuine but replayed request must be refused as stale
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::vector<Target> targets = make_targets();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    forgery_oracle(targets, in, data, size);
    round_trip_oracle(targets, in, data, size);
    return 0;
}
