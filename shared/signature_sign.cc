// The provider's side: the headers each provider would send, and the gateway's own outbound
// Standard Webhooks signature. Off the request path, so plain strings are fine here.
#include <nlohmann/json.hpp>

#include "shared/signature_impl.h"

namespace hookq {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string mac_hex(HashAlg alg, std::string_view key,
                    std::initializer_list<std::string_view> parts) {
    unsigned char mac[crypto::kMaxDigestSize];
    crypto::hmac(alg, key, parts, mac);
    return crypto::hex_encode(mac, crypto::digest_size(alg));
}

std::string mac_b64(HashAlg alg, std::string_view key,
                    std::initializer_list<std::string_view> parts) {
    unsigned char mac[crypto::kMaxDigestSize];
    crypto::hmac(alg, key, parts, mac);
    return crypto::base64_encode(mac, crypto::digest_size(alg));
}

std::optional<std::string> whsec_key(std::string_view secret) {
    if (secret.starts_with("whsec_"))
        secret.remove_prefix(6);
    return crypto::base64_decode(secret);
}

}  // namespace

std::string standard_webhooks_signature(std::string_view key_bytes, std::string_view id,
                                        int64_t timestamp_s, std::string_view body) {
    const std::string ts = std::to_string(timestamp_s);
    return "v1," + mac_b64(HashAlg::sha256, key_bytes, {id, ".", ts, ".", body});
}

Headers sign_request(const VerifierConfig& cfg, std::string_view body, std::string_view url,
                     int64_t now_unix_s, std::string_view id) {
    Headers h;
    if (cfg.secrets.empty()) {
        // moysklad without a token and none need nothing; the signing schemes cannot sign.
        return h;
    }
    const std::string& secret = cfg.secrets.front();
    const std::string ts = std::to_string(now_unix_s);
    switch (cfg.scheme) {
        case Scheme::github:
            h.emplace_back("X-Hub-Signature-256",
                           "sha256=" + mac_hex(HashAlg::sha256, secret, {body}));
            if (!id.empty())
                h.emplace_back("X-GitHub-Delivery", id);
            break;
        case Scheme::stripe:
            h.emplace_back("Stripe-Signature",
                           "t=" + ts + ",v1=" + mac_hex(HashAlg::sha256, secret, {ts, ".", body}));
            break;
        case Scheme::standard:
        case Scheme::svix: {
            auto key = whsec_key(secret);
            if (!key)
                return h;
            const std::string prefix = cfg.scheme == Scheme::svix ? "svix-" : "webhook-";
            h.emplace_back(prefix + "id", id);
            h.emplace_back(prefix + "timestamp", ts);
            h.emplace_back(prefix + "signature",
                           standard_webhooks_signature(*key, id, now_unix_s, body));
            break;
        }
        case Scheme::shopify:
            h.emplace_back("X-Shopify-Hmac-Sha256", mac_b64(HashAlg::sha256, secret, {body}));
            if (!id.empty())
                h.emplace_back("X-Shopify-Webhook-Id", id);
            break;
        case Scheme::slack:
            h.emplace_back("X-Slack-Request-Timestamp", ts);
            h.emplace_back("X-Slack-Signature",
                           "v0=" + mac_hex(HashAlg::sha256, secret, {"v0:", ts, ":", body}));
            break;
        case Scheme::twilio: {
            // A URL with bodySHA256 means a JSON body (signed through its hash in the URL);
            // otherwise Twilio posts a form.
            struct UrlOnly : RequestView {
                std::string_view u;
                std::optional<std::string_view> header(std::string_view) const override {
                    return {};
                }
                std::string_view body() const override { return {}; }
                std::string_view url() const override { return u; }
            } view;
            view.u = url;
            const bool json = view.query_arg("bodySHA256").has_value();
            const std::string params = json ? std::string() : sig::twilio_form_params(body);
            h.emplace_back("Content-Type",
                           json ? "application/json" : "application/x-www-form-urlencoded");
            h.emplace_back("X-Twilio-Signature", mac_b64(HashAlg::sha1, secret, {url, params}));
            if (!id.empty())
                h.emplace_back("I-Twilio-Idempotency-Token", id);
            break;
        }
        case Scheme::moysklad:
            // A token in the query string is the caller's to append; only a header can be returned.
            if (!cfg.token_header.empty())
                h.emplace_back(cfg.token_header, secret);
            break;
        case Scheme::hmac: {
            unsigned char mac[crypto::kMaxDigestSize];
            crypto::hmac(cfg.hmac.alg, secret, {body}, mac);
            const size_t n = crypto::digest_size(cfg.hmac.alg);
            h.emplace_back(cfg.hmac.header,
                           cfg.hmac.prefix + (cfg.hmac.encoding == Encoding::hex
                                                  ? crypto::hex_encode(mac, n)
                                                  : crypto::base64_encode(mac, n)));
            break;
        }
        case Scheme::none:
        case Scheme::paypal:  // PayPal's private key signs; nobody else can
            break;
    }
    return h;
}

std::optional<std::string> slack_url_verification_challenge(std::string_view body) {
    // Non-throwing parse: the body is whatever the client sent.
    const nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (!j.is_object())
        return std::nullopt;
    auto type = j.find("type");
    auto challenge = j.find("challenge");
    if (type == j.end() || !type->is_string() || *type != "url_verification")
        return std::nullopt;
    if (challenge == j.end() || !challenge->is_string())
        return std::nullopt;
    return challenge->get<std::string>();
}

}  // namespace hookq
