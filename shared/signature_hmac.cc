// The HMAC-over-body schemes (github, stripe, standard/svix, shopify, slack, hmac) and moysklad's
// shared token. Everything here runs on nginx's request path: no allocation, no exceptions.
#include <openssl/crypto.h>

#include "shared/signature_impl.h"

namespace hookq::sig {
namespace {

using crypto::base64_decode;
using crypto::hex_decode;

// Reads the signature header; an empty value carries no credentials, like an absent one.
std::optional<std::string_view> signature_header(const RequestView& req, std::string_view name) {
    auto h = req.header(name);
    if (!h)
        return std::nullopt;
    std::string_view v = trim(*h);
    if (v.empty())
        return std::nullopt;
    return v;
}

// Decodes one provided signature of exactly `size` bytes into the candidates.
bool add_encoded(Candidates& c, std::string_view text, Encoding enc, size_t size) noexcept {
    unsigned char buf[crypto::kMaxDigestSize];
    auto n = enc == Encoding::hex ? hex_decode(text, buf, sizeof buf)
                                  : base64_decode(text, buf, sizeof buf);
    if (!n || *n != size)
        return false;
    c.add(buf, size);
    return true;
}

// Splits s at the first `sep`; the head is returned, s keeps the tail (empty at the end).
std::string_view next_token(std::string_view& s, char sep) noexcept {
    size_t i = s.find(sep);
    std::string_view head = s.substr(0, i);
    s = i == std::string_view::npos ? std::string_view() : s.substr(i + 1);
    return head;
}

Verdict body_mac(const State& st, const RequestView& req, std::string_view header,
                 std::string_view prefix, Encoding enc, size_t size) noexcept {
    auto sig = signature_header(req, header);
    if (!sig)
        return Verdict::missing_signature;
    if (!sig->starts_with(prefix))
        return Verdict::malformed_signature;
    Candidates c;
    if (!add_encoded(c, sig->substr(prefix.size()), enc, size)) {
        return Verdict::malformed_signature;
    }
    return any_match(st, {req.body()}, c) ? Verdict::ok : Verdict::bad_signature;
}

// Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]; v0 and unknown keys are ignored.
Verdict stripe(const State& st, const RequestView& req, int64_t now) noexcept {
    auto h = signature_header(req, "Stripe-Signature");
    if (!h)
        return Verdict::missing_signature;
    std::string_view rest = *h;
    std::optional<int64_t> ts;
    Candidates c;
    while (!rest.empty()) {
        std::string_view item = trim(next_token(rest, ','));
        std::string_view key = next_token(item, '=');
        if (key == "t") {
            // Two timestamps would leave it ambiguous which one was signed.
            if (ts)
                return Verdict::malformed_signature;
            ts = parse_timestamp(item);
            if (!ts)
                return Verdict::malformed_signature;
        } else if (key == "v1") {
            add_encoded(c, item, Encoding::hex, 32);
        }
    }
    if (!ts || c.n == 0)
        return Verdict::malformed_signature;
    char buf[20];
    if (!any_match(st, {format_timestamp(*ts, buf), ".", req.body()}, c)) {
        return Verdict::bad_signature;
    }
    // Checked after the MAC, so "stale" is only ever reported for genuine (replayed or delayed)
    // requests and forgeries all count as bad signatures.
    return within_tolerance(*ts, now, st.tolerance_s) ? Verdict::ok : Verdict::stale_timestamp;
}

// Standard Webhooks (and Svix, which is the same with svix- headers and falls back to webhook-).
Verdict standard(const State& st, const RequestView& req, int64_t now, bool svix) noexcept {
    auto get = [&](std::string_view svix_name, std::string_view std_name) {
        std::optional<std::string_view> v;
        if (svix)
            v = req.header(svix_name);
        if (!v)
            v = req.header(std_name);
        return v ? std::optional(trim(*v)) : std::nullopt;
    };
    auto sig = get("svix-signature", "webhook-signature");
    if (!sig || sig->empty())
        return Verdict::missing_signature;
    auto id = get("svix-id", "webhook-id");
    auto ts_text = get("svix-timestamp", "webhook-timestamp");
    if (!id || id->empty() || !ts_text)
        return Verdict::malformed_signature;
    auto ts = parse_timestamp(*ts_text);
    if (!ts)
        return Verdict::malformed_signature;
    std::string_view rest = *sig;
    Candidates c;
    while (!rest.empty()) {
        std::string_view entry = next_token(rest, ' ');
        std::string_view version = next_token(entry, ',');
        if (version == "v1")
            add_encoded(c, entry, Encoding::base64, 32);
    }
    if (c.n == 0)
        return Verdict::malformed_signature;
    char buf[20];
    if (!any_match(st, {*id, ".", format_timestamp(*ts, buf), ".", req.body()}, c)) {
        return Verdict::bad_signature;
    }
    return within_tolerance(*ts, now, st.tolerance_s) ? Verdict::ok : Verdict::stale_timestamp;
}

// X-Slack-Signature: v0=<hex HMAC("v0:" ts ":" body)>, ts signed exactly as sent.
Verdict slack(const State& st, const RequestView& req, int64_t now) noexcept {
    auto sig = signature_header(req, "X-Slack-Signature");
    if (!sig)
        return Verdict::missing_signature;
    auto ts_header = req.header("X-Slack-Request-Timestamp");
    if (!ts_header)
        return Verdict::malformed_signature;
    std::string_view ts_text = trim(*ts_header);
    auto ts = parse_timestamp(ts_text);
    if (!ts || !sig->starts_with("v0="))
        return Verdict::malformed_signature;
    Candidates c;
    if (!add_encoded(c, sig->substr(3), Encoding::hex, 32))
        return Verdict::malformed_signature;
    if (!any_match(st, {"v0:", ts_text, ":", req.body()}, c))
        return Verdict::bad_signature;
    return within_tolerance(*ts, now, st.tolerance_s) ? Verdict::ok : Verdict::stale_timestamp;
}

}  // namespace

Verdict verify_hmac_scheme(const State& st, const RequestView& req, int64_t now) noexcept {
    switch (st.scheme) {
        case Scheme::github:
            return body_mac(st, req, "X-Hub-Signature-256", "sha256=", Encoding::hex, 32);
        case Scheme::shopify:
            return body_mac(st, req, "X-Shopify-Hmac-Sha256", "", Encoding::base64, 32);
        case Scheme::hmac:
            return body_mac(st, req, st.hmac.header, st.hmac.prefix, st.hmac.encoding,
                            crypto::digest_size(st.hmac.alg));
        case Scheme::stripe:
            return stripe(st, req, now);
        case Scheme::standard:
            return standard(st, req, now, false);
        case Scheme::svix:
            return standard(st, req, now, true);
        case Scheme::slack:
            return slack(st, req, now);
        default:
            return Verdict::bad_signature;
    }
}

Verdict verify_moysklad(const State& st, const RequestView& req) noexcept {
    // MoySklad cannot sign; with no token configured the location relies on nginx's allow/deny.
    if (st.tokens.empty())
        return Verdict::ok;
    auto token =
        st.token_header.empty() ? req.query_arg(st.token_arg) : req.header(st.token_header);
    if (!token || token->empty())
        return Verdict::missing_signature;
    unsigned char d[32];
    crypto::sha256(*token, d);
    bool found = false;
    for (const auto& t : st.tokens)
        found |= CRYPTO_memcmp(d, t.data(), 32) == 0;
    return found ? Verdict::ok : Verdict::bad_signature;
}

}  // namespace hookq::sig
