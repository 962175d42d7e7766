// Internals shared by the signature_*.cc files (one file per family of schemes). Not a public
// header.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <memory>
#include <optional>
#include <vector>

#include <openssl/evp.h>

#include "shared/crypto.h"
#include "shared/signature.h"

namespace hookq::sig {

// What create() precomputes; Verifier::Impl is this, named here so the scheme files can see it.
struct State {
    Scheme scheme = Scheme::none;
    std::vector<crypto::HmacKey> keys;                  // one per secret, every HMAC scheme
    std::vector<std::array<unsigned char, 32>> tokens;  // moysklad: sha256 of each secret
    HmacHeaderSpec hmac;
    int64_t tolerance_s = 300;
    std::string token_header;
    std::string token_arg;
    std::vector<std::string> webhook_ids;  // paypal
    // paypal: each certificate's RSA key and the Unix seconds its verified chain is valid for
    // (the latest notBefore and the earliest notAfter of the chain), read once at load so that a
    // request only compares two integers with the clock.
    struct PaypalCert {
        std::shared_ptr<EVP_PKEY> key;
        int64_t not_before = 0, not_after = 0;
    };
    std::vector<PaypalCert> paypal_certs;
};

// Provided signatures decoded onto the stack. Providers send one or two (during their own key
// rotation); the cap only bounds the work an attacker can ask for.
struct Candidates {
    static constexpr size_t kMax = 8;
    unsigned char sig[kMax][crypto::kMaxDigestSize];
    size_t len[kMax];
    size_t n = 0;
    void add(const unsigned char* p, size_t size) noexcept;
};

std::string_view trim(std::string_view s) noexcept;
// Unix seconds: 1 to 18 ASCII digits and nothing else.
std::optional<int64_t> parse_timestamp(std::string_view s) noexcept;
bool within_tolerance(int64_t ts, int64_t now, int64_t tolerance) noexcept;
// The canonical decimal form; buf must hold 20 chars.
std::string_view format_timestamp(int64_t ts, char* buf) noexcept;
// True when any key's MAC of the concatenated parts equals any candidate. Each key's MAC is
// computed once; every comparison runs (CRYPTO_memcmp), so timing shows neither which key nor which
// entry.
bool any_match(const State& st, std::initializer_list<std::string_view> parts,
               const Candidates& c) noexcept;

Verdict verify_twilio(const State& st, const RequestView& req) noexcept;
// PayPal's PAYPAL-TRANSMISSION-TIME: RFC 3339 ("2026-11-30T17:05:00Z", fractions and ±HH:MM
// offsets allowed) to Unix seconds.
std::optional<int64_t> parse_iso8601(std::string_view s) noexcept;

// Twilio's signed string after the URL: form params decoded, sorted and concatenated as name+value
// (shared with sign_request so the two cannot drift apart).
std::string twilio_form_params(std::string_view body);
bool is_form_urlencoded(std::optional<std::string_view> content_type) noexcept;

}  // namespace hookq::sig
