// Signature schemes of the providers, verified over raw bytes in constant time.
// Pure: no nginx, no sockets; the caller supplies the request through RequestView and the clock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookq {

enum class Scheme : uint8_t {
    github,
    stripe,
    standard,
    svix,
    shopify,
    slack,
    twilio,
    moysklad,
    hmac,
    none,
    paypal,
};
std::optional<Scheme> scheme_from_name(std::string_view name) noexcept;
std::string_view scheme_name(Scheme s) noexcept;

enum class HashAlg : uint8_t { sha1, sha256, sha512 };
enum class Encoding : uint8_t { hex, base64 };

// For Scheme::hmac: `hookq_signature_header X-Signature sha256 hex prefix=sha256=;`
struct HmacHeaderSpec {
    std::string header;
    HashAlg alg = HashAlg::sha256;
    Encoding encoding = Encoding::hex;
    std::string prefix;
};

// What a verifier reads of a request. The nginx module implements it over ngx_http_request_t;
// tests, hookqctl and the worker over an Envelope.
class RequestView {
  public:
    virtual ~RequestView() = default;
    // Case-insensitive; nullopt when absent (an empty header is present and empty).
    virtual std::optional<std::string_view> header(std::string_view name) const = 0;
    virtual std::string_view body() const = 0;  // contiguous raw bytes, may contain NULs
    // The full URL the provider signed (Twilio): scheme://host[:port]/path?query.
    virtual std::string_view url() const = 0;
    // Raw (still percent-encoded) value of a query argument of url(); nullopt when absent.
    virtual std::optional<std::string_view> query_arg(std::string_view name) const;
};

enum class Verdict : uint8_t {
    ok,
    missing_signature,    // 401: no credentials at all
    malformed_signature,  // 400: header present but not parseable (bad hex/base64, no v1=, ...)
    bad_signature,        // 401: well-formed, matches no secret
    stale_timestamp,      // 401: outside the tolerance, in either direction
    // 401 (paypal): verifies, but only under a configured certificate the clock has left since it
    // was loaded, past its notAfter or (clock stepped back) before its notBefore.
    certificate_expired,
    certificate_not_yet_valid,
};
std::string_view to_string(Verdict v) noexcept;
int http_status(Verdict v) noexcept;

struct VerifierConfig {
    Scheme scheme = Scheme::none;
    // Secrets as configured (after file:/env: resolution), e.g. "whsec_..." for stripe/standard.
    // Several for rotation: a request verifies if any one matches.
    std::vector<std::string> secrets;
    HmacHeaderSpec hmac;              // Scheme::hmac only
    int64_t tolerance_s = 300;        // stripe, standard, svix, slack
    std::string token_header;         // moysklad: header carrying the shared token, or
    std::string token_arg = "token";  // ... the query argument carrying it
    // paypal: `secrets` are the webhook ids (PayPal signs "id|time|webhook_id|crc32"); these are
    // the signing certificates (PEM), each checked at creation against `paypal_ca_file` (empty:
    // the system's trust store) and PayPal's certificate name. The request's PAYPAL-CERT-URL only
    // has to be on PayPal's hosts: it is never fetched.
    std::vector<std::string> paypal_certs;
    std::string paypal_ca_file;
};

// Where the default dedup key of a scheme comes from; body_sha256 also serves as the fallback when
// the named header/argument is absent.
struct DedupSource {
    enum Kind : uint8_t { header, query_arg, body_sha256 } kind = body_sha256;
    std::string_view name;
};

class Verifier {
  public:
    // Decodes secrets (whsec_ base64 for standard/svix), precomputes what can be. On error returns
    // nullptr and sets `error` (which never contains secret material).
    static std::unique_ptr<Verifier> create(const VerifierConfig& cfg, std::string& error);
    ~Verifier();

    Verdict verify(const RequestView& req, int64_t now_unix_s) const noexcept;
    DedupSource default_dedup() const noexcept;
    Scheme scheme() const noexcept;

  private:
    Verifier();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Produces the headers a provider would send, for `hookqctl sign`, the demo and tests.
// Uses the first secret. `id` is the delivery id where the scheme has one.
std::vector<std::pair<std::string, std::string>> sign_request(const VerifierConfig& cfg,
                                                              std::string_view body,
                                                              std::string_view url,
                                                              int64_t now_unix_s,
                                                              std::string_view id);

// The gateway's own outbound signature (Standard Webhooks): "v1,<base64 HMAC-SHA256(key,
// id.timestamp.body)>" where key is the base64-decoded part of a whsec_ secret.
std::string standard_webhooks_signature(std::string_view key_bytes, std::string_view id,
                                        int64_t timestamp_s, std::string_view body);

// Slack's url_verification: the challenge to echo back, when body is such an event.
std::optional<std::string> slack_url_verification_challenge(std::string_view body);

}  // namespace hookq
