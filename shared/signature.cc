// Verifier construction, dispatch and the small helpers every scheme uses. The schemes themselves
// live in signature_hmac.cc and signature_twilio.cc; signing (the provider's side) in
// signature_sign.cc.
#include "shared/signature.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>

#include "shared/signature_impl.h"

namespace hookq {

namespace sig {
Verdict verify_hmac_scheme(const State& st, const RequestView& req, int64_t now) noexcept;
Verdict verify_moysklad(const State& st, const RequestView& req) noexcept;
Verdict verify_paypal(const State& st, const RequestView& req, int64_t now) noexcept;
bool load_paypal_certs(State& st, const VerifierConfig& cfg, std::string& error);
}  // namespace sig

namespace {

constexpr std::string_view kSchemeNames[] = {"github",  "stripe", "standard", "svix",
                                             "shopify", "slack",  "twilio",   "moysklad",
                                             "hmac",    "none",   "paypal"};

}  // namespace

std::optional<Scheme> scheme_from_name(std::string_view name) noexcept {
    for (size_t i = 0; i < std::size(kSchemeNames); ++i) {
        if (kSchemeNames[i] == name)
            return static_cast<Scheme>(i);
    }
    return std::nullopt;
}

std::string_view scheme_name(Scheme s) noexcept {
    auto i = static_cast<size_t>(s);
    return i < std::size(kSchemeNames) ? kSchemeNames[i] : std::string_view("unknown");
}

std::string_view to_string(Verdict v) noexcept {
    switch (v) {
        case Verdict::ok:
            return "ok";
        case Verdict::missing_signature:
            return "missing_signature";
        case Verdict::malformed_signature:
            return "malformed_signature";
        case Verdict::bad_signature:
            return "bad_signature";
        case Verdict::stale_timestamp:
            return "stale_timestamp";
        case Verdict::certificate_expired:
            return "certificate_expired";
        case Verdict::certificate_not_yet_valid:
            return "certificate_not_yet_valid";
    }
    return "unknown";
}

int http_status(Verdict v) noexcept {
    switch (v) {
        case Verdict::ok:
            return 200;
        case Verdict::malformed_signature:
            return 400;
        case Verdict::missing_signature:
        case Verdict::bad_signature:
        case Verdict::stale_timestamp:
        case Verdict::certificate_expired:
        case Verdict::certificate_not_yet_valid:
            return 401;
    }
    return 401;
}

std::optional<std::string_view> RequestView::query_arg(std::string_view name) const {
    std::string_view u = url();
    size_t q = u.find('?');
    if (q == std::string_view::npos)
        return std::nullopt;
    u.remove_prefix(q + 1);
    u = u.substr(0, u.find('#'));
    while (!u.empty()) {
        size_t amp = u.find('&');
        std::string_view pair = u.substr(0, amp);
        u = amp == std::string_view::npos ? std::string_view() : u.substr(amp + 1);
        size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        }
    }
    return std::nullopt;
}

struct Verifier::Impl : sig::State {};

Verifier::Verifier() : impl_(std::make_unique<Impl>()) {}
Verifier::~Verifier() = default;

std::unique_ptr<Verifier> Verifier::create(const VerifierConfig& cfg, std::string& error) {
    const std::string scheme(scheme_name(cfg.scheme));
    const bool timestamped = cfg.scheme == Scheme::stripe || cfg.scheme == Scheme::standard ||
                             cfg.scheme == Scheme::svix || cfg.scheme == Scheme::slack ||
                             cfg.scheme == Scheme::paypal;
    // No "0 = unlimited" as in Stripe's SDK: a signed request replayable forever is not an option.
    if (timestamped && cfg.tolerance_s <= 0) {
        error = scheme + ": timestamp tolerance must be positive";
        return nullptr;
    }
    const bool needs_secret = cfg.scheme != Scheme::none && cfg.scheme != Scheme::moysklad;
    if (needs_secret && cfg.secrets.empty()) {
        error = scheme + ": at least one secret is required";
        return nullptr;
    }
    if (cfg.scheme == Scheme::hmac && cfg.hmac.header.empty()) {
        error = "hmac: the signature header name is required";
        return nullptr;
    }
    if (cfg.scheme == Scheme::moysklad && cfg.token_header.empty() && cfg.token_arg.empty()) {
        error = "moysklad: a token header or query argument name is required";
        return nullptr;
    }
    std::unique_ptr<Verifier> v(new Verifier());
    Impl& st = *v->impl_;
    st.scheme = cfg.scheme;
    st.hmac = cfg.hmac;
    st.tolerance_s = cfg.tolerance_s;
    st.token_header = cfg.token_header;
    st.token_arg = cfg.token_arg;
    for (size_t i = 0; i < cfg.secrets.size() && cfg.scheme != Scheme::none; ++i) {
        const std::string& s = cfg.secrets[i];
        const std::string which = scheme + ": secret #" + std::to_string(i + 1);
        if (s.empty()) {
            error = which + " is empty";
            return nullptr;
        }
        switch (cfg.scheme) {
            case Scheme::standard:
            case Scheme::svix: {
                std::string_view b64 = s;
                if (b64.starts_with("whsec_"))
                    b64.remove_prefix(6);
                auto key = crypto::base64_decode(b64);
                if (!key || key->empty()) {
                    error = which + " is not a whsec_<base64> key";
                    return nullptr;
                }
                st.keys.emplace_back(HashAlg::sha256, *key);
                OPENSSL_cleanse(key->data(), key->size());
                break;
            }
            case Scheme::twilio:
                st.keys.emplace_back(HashAlg::sha1, s);
                break;
            case Scheme::hmac:
                st.keys.emplace_back(cfg.hmac.alg, s);
                break;
            case Scheme::moysklad: {
                // Compared as digests so the comparison takes the same time whatever the lengths.
                auto& t = st.tokens.emplace_back();
                crypto::sha256(s, t.data());
                break;
            }
            case Scheme::paypal:
                st.webhook_ids.push_back(s);  // not a key: an id PayPal puts in what it signs
                break;
            case Scheme::none:
                break;
            default:
                st.keys.emplace_back(HashAlg::sha256, s);
                break;
        }
    }
    if (cfg.scheme == Scheme::paypal && !sig::load_paypal_certs(st, cfg, error))
        return nullptr;
    return v;
}

Verdict Verifier::verify(const RequestView& req, int64_t now_unix_s) const noexcept {
    switch (impl_->scheme) {
        case Scheme::none:
            return Verdict::ok;
        case Scheme::moysklad:
            return sig::verify_moysklad(*impl_, req);
        case Scheme::twilio:
            return sig::verify_twilio(*impl_, req);
        case Scheme::paypal:
            return sig::verify_paypal(*impl_, req, now_unix_s);
        default:
            return sig::verify_hmac_scheme(*impl_, req, now_unix_s);
    }
}

DedupSource Verifier::default_dedup() const noexcept {
    switch (impl_->scheme) {
        case Scheme::github:
            return {DedupSource::header, "X-GitHub-Delivery"};
        case Scheme::standard:
            return {DedupSource::header, "webhook-id"};
        case Scheme::svix:
            return {DedupSource::header, "svix-id"};
        case Scheme::shopify:
            return {DedupSource::header, "X-Shopify-Webhook-Id"};
        case Scheme::twilio:
            return {DedupSource::header, "I-Twilio-Idempotency-Token"};
        case Scheme::moysklad:
            return {DedupSource::query_arg, "requestId"};
        default:
            return {DedupSource::body_sha256, {}};
    }
}

Scheme Verifier::scheme() const noexcept {
    return impl_->scheme;
}

namespace sig {

void Candidates::add(const unsigned char* p, size_t size) noexcept {
    if (n == kMax || size > crypto::kMaxDigestSize)
        return;
    std::copy(p, p + size, sig[n]);
    len[n++] = size;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

std::optional<int64_t> parse_timestamp(std::string_view s) noexcept {
    if (s.empty() || s.size() > 18)
        return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

bool within_tolerance(int64_t ts, int64_t now, int64_t tolerance) noexcept {
    // Both are well inside int64 (timestamps have at most 18 digits), so the difference cannot
    // wrap.
    int64_t d = now - ts;
    return d <= tolerance && d >= -tolerance;
}

std::string_view format_timestamp(int64_t ts, char* buf) noexcept {
    auto r = std::to_chars(buf, buf + 20, ts);
    return {buf, static_cast<size_t>(r.ptr - buf)};
}

bool any_match(const State& st, std::initializer_list<std::string_view> parts,
               const Candidates& c) noexcept {
    unsigned char mac[crypto::kMaxDigestSize];
    bool found = false;
    for (const crypto::HmacKey& k : st.keys) {
        k.mac(parts, mac);
        for (size_t i = 0; i < c.n; ++i) {
            found |= c.len[i] == k.size() && CRYPTO_memcmp(mac, c.sig[i], k.size()) == 0;
        }
    }
    OPENSSL_cleanse(mac, sizeof mac);
    return found;
}

}  // namespace sig
}  // namespace hookq
