// Feeds arbitrary bytes to every scheme's header parser through Verifier::verify. The input is
// split at the first NUL: the signature header, then the timestamp (which also becomes the id, the
// URL's query and the body), so the fuzzer can steer both. Any crash, sanitizer report or hang is a
// bug.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/signature.h"

namespace {

using namespace hookq;

class FuzzRequest : public RequestView {
  public:
    std::string sig_name, ts_name, id_name;
    std::string_view sig, ts, content_type;
    std::string full_url;

    std::optional<std::string_view> header(std::string_view name) const override {
        if (name == sig_name)
            return sig;
        if (!ts_name.empty() && name == ts_name)
            return ts;
        if (!id_name.empty() && name == id_name)
            return ts;
        if (name == "Content-Type")
            return content_type;
        return std::nullopt;
    }
    std::string_view body() const override { return ts; }
    std::string_view url() const override { return full_url; }
};

struct Target {
    std::unique_ptr<Verifier> verifier;
    const char* sig;
    const char* ts;
    const char* id;
};

std::vector<Target> make_targets() {
    auto make = [](Scheme s, std::vector<std::string> secrets) {
        VerifierConfig c;
        c.scheme = s;
        c.secrets = std::move(secrets);
        c.hmac = {"X-Sig", HashAlg::sha512, Encoding::base64, "sha512="};
        c.token_header = s == Scheme::moysklad ? "" : "X-Token";
        std::string error;
        auto v = Verifier::create(c, error);
        if (!v)
            __builtin_trap();
        return v;
    };
    const std::vector<std::string> two = {"secret-one", "secret-two"};
    const std::vector<std::string> whsec = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    std::vector<Target> t;
    t.push_back({make(Scheme::github, two), "X-Hub-Signature-256", "", ""});
    t.push_back({make(Scheme::stripe, two), "Stripe-Signature", "", ""});
    t.push_back(
        {make(Scheme::standard, whsec), "webhook-signature", "webhook-timestamp", "webhook-id"});
    t.push_back({make(Scheme::svix, whsec), "svix-signature", "svix-timestamp", "svix-id"});
    t.push_back({make(Scheme::shopify, two), "X-Shopify-Hmac-Sha256", "", ""});
    t.push_back({make(Scheme::slack, two), "X-Slack-Signature", "X-Slack-Request-Timestamp", ""});
    t.push_back({make(Scheme::twilio, two), "X-Twilio-Signature", "", ""});
    t.push_back({make(Scheme::moysklad, two), "X-Unused", "", ""});
    t.push_back({make(Scheme::hmac, two), "X-Sig", "", ""});
    t.push_back({make(Scheme::none, {}), "X-Unused", "", ""});
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::vector<Target> targets = make_targets();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    size_t nul = in.find('\0');
    FuzzRequest r;
    r.sig = in.substr(0, nul);
    r.ts = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
    // Alternate the Twilio body flavours on the input's first byte.
    r.content_type = size > 0 && (data[0] & 1) ? "application/x-www-form-urlencoded" : "text/plain";
    r.full_url = "https://example.com:8443/hooks?token=";
    r.full_url.append(r.ts);
    if (size > 0 && (data[0] & 2))
        r.full_url = std::string(r.sig);
    for (const Target& t : targets) {
        r.sig_name = t.sig;
        r.ts_name = t.ts;
        r.id_name = t.id;
        for (int64_t now : {int64_t{0}, int64_t{1700000000}, INT64_MAX / 2}) {
            Verdict v = t.verifier->verify(r, now);
            if (http_status(v) != 200 && http_status(v) != 400 && http_status(v) != 401) {
                __builtin_trap();
            }
        }
    }
    return 0;
}
