// PayPal, verified offline. PayPal signs "<transmission id>|<transmission time>|<webhook id>|
// <crc32 of the body, decimal>" with RSA-SHA256 (PAYPAL-AUTH-ALGO: SHA256withRSA) under a
// certificate it names in PAYPAL-CERT-URL. Fetching that URL while answering would block the event
// loop and let a request choose what the edge connects to, so the certificates are configured
// (files the operator downloads, checked here against a trust store and PayPal's certificate name
// once, at startup) and the URL only has to be on one of PayPal's hosts. Their validity is the one
// check that changes with time alone, so its bounds are kept and compared on every request: a
// running nginx stops accepting a certificate the moment it expires, not at the next reload.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <ctime>

#include "shared/signature_impl.h"

namespace hookq::sig {
namespace {

// The hosts PayPal's webhooks name their certificates on (live and sandbox).
constexpr std::string_view kCertHosts[] = {"api.paypal.com", "api-m.paypal.com",
                                           "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"};
// The names PayPal's signing certificates are issued to.
constexpr const char* kCertNames[] = {"messageverificationcerts.paypal.com",
                                      "messageverificationcerts.sandbox.paypal.com"};
// Bounds on what goes into the signed string: PayPal's are a UUID and an ISO 8601 time.
constexpr size_t kMaxIdLength = 128, kMaxTimeLength = 64, kMaxWebhookIdLength = 128;
constexpr size_t kMaxSignature = 1024;  // RSA 8192 at most

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

// https://<one of kCertHosts>[:443]/... and nothing else (no user info, no other port).
bool trusted_cert_url(std::string_view url) noexcept {
    constexpr std::string_view kScheme = "https://";
    if (url.size() < kScheme.size() || url.substr(0, kScheme.size()) != kScheme)
        return false;
    url.remove_prefix(kScheme.size());
    std::string_view host = url.substr(0, url.find_first_of("/?#"));
    if (host.size() > 4 && host.substr(host.size() - 4) == ":443")
        host.remove_suffix(4);
    if (host.size() > 64)
        return false;
    char lower[64];
    for (size_t i = 0; i < host.size(); ++i)
        lower[i] = static_cast<char>(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
    std::string_view h(lower, host.size());
    for (std::string_view allowed : kCertHosts)
        if (h == allowed)
            return true;
    return false;
}

bool digits(std::string_view s, size_t at, size_t n, int& out) noexcept {
    if (at + n > s.size())
        return false;
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Unix seconds of a certificate time (UTCTime or GeneralizedTime).
std::optional<int64_t> unix_seconds(const ASN1_TIME* t) noexcept {
    struct tm tm {};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1)
        return std::nullopt;
    return days_from_civil(tm.tm_year + 1900, static_cast<unsigned>(tm.tm_mon + 1),
                           static_cast<unsigned>(tm.tm_mday)) *
               86400 +
           tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

}  // namespace

// "2026-11-30T17:05:00Z", with optional fractional seconds and a Z or ±HH:MM offset.
std::optional<int64_t> parse_iso8601(std::string_view s) noexcept {
    int y, mo, d, h, mi, sec;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, sec))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return std::nullopt;
    size_t at = 19;
    if (at < s.size() && s[at] == '.') {
        size_t start = ++at;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9')
            ++at;
        if (at == start)
            return std::nullopt;
    }
    int64_t offset = 0;
    std::string_view zone = s.substr(at);
    int oh, om;
    if (zone == "Z" || zone == "z") {
        offset = 0;
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2, oh) &&
               zone[3] == ':' && digits(zone, 4, 2, om) && oh <= 23 && om <= 59) {
        offset = (zone[0] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    } else {
        return std::nullopt;
    }
    return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
           h * 3600 + mi * 60 + sec - offset;
}

bool load_paypal_certs(State& st, const VerifierConfig& cfg, std::string& error) {
    if (cfg.paypal_certs.empty()) {
        error = "paypal: no signing certificate (hookq_paypal_cert)";
        return false;
    }
    for (const std::string& id : cfg.secrets) {
        if (id.size() > kMaxWebhookIdLength || id.find('|') != std::string::npos) {
            error = "paypal: a webhook id is at most 128 characters, without \"|\"";
            return false;
        }
    }
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                  X509_STORE_free);
    if (!store) {
        error = "paypal: " + openssl_error();
        return false;
    }
    const bool loaded =
        cfg.paypal_ca_file.empty()
            ? X509_STORE_set_default_paths(store.get()) == 1
            : X509_STORE_load_locations(store.get(), cfg.paypal_ca_file.c_str(), nullptr) == 1;
    if (!loaded) {
        error =
            "paypal: cannot load the trust store " +
            (cfg.paypal_ca_file.empty() ? std::string("(system default)") : cfg.paypal_ca_file) +
            ": " + openssl_error();
        return false;
    }
    for (size_t i = 0; i < cfg.paypal_certs.size(); ++i) {
        const std::string which = "paypal: certificate #" + std::to_string(i + 1);
        const std::string& pem = cfg.paypal_certs[i];
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(
            BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
        std::unique_ptr<X509, decltype(&X509_free)> cert(
            bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
        if (!cert) {
            error = which + " is not a PEM certificate: " + openssl_error();
            return false;
        }
        // Intermediates that came in the same file (PayPal's URL serves the chain).
        std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> chain(
            sk_X509_new_null(), [](STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); });
        while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
            sk_X509_push(chain.get(), extra);
        ERR_clear_error();  // the read that ended the loop
        bool named = false;
        for (const char* name : kCertNames)
            named |= X509_check_host(cert.get(), name, 0, 0, nullptr) == 1;
        if (!named) {
            error = which + " is not issued to messageverificationcerts.paypal.com (or its " +
                    "sandbox)";
            return false;
        }
        std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                            X509_STORE_CTX_free);
        if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), chain.get()) != 1) {
            error = which + ": " + openssl_error();
            return false;
        }
        if (X509_verify_cert(ctx.get()) != 1) {
            error = which + " does not verify: " +
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
            return false;
        }
        // What X509_verify_cert just checked against the clock, for every later request: the
        // certificate is usable while the whole chain it verified through is.
        State::PaypalCert usable;
        usable.not_before = INT64_MIN;
        usable.not_after = INT64_MAX;
        STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(ctx.get());
        for (int c = 0; verified != nullptr && c < sk_X509_num(verified); ++c) {
            X509* link = sk_X509_value(verified, c);
            auto from = unix_seconds(X509_get0_notBefore(link));
            auto until = unix_seconds(X509_get0_notAfter(link));
            if (!from || !until) {
                error = which + ": cannot read the validity of its chain: " + openssl_error();
                return false;
            }
            usable.not_before = std::max(usable.not_before, *from);
            usable.not_after = std::min(usable.not_after, *until);
        }
        EVP_PKEY* key = X509_get_pubkey(cert.get());
        if (key == nullptr || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
            EVP_PKEY_free(key);
            error = which + " does not hold an RSA key";
            return false;
        }
        usable.key.reset(key, EVP_PKEY_free);
        st.paypal_certs.push_back(std::move(usable));
    }
    return true;
}

Verdict verify_paypal(const State& st, const RequestView& req, int64_t now) noexcept {
    auto id = req.header("PAYPAL-TRANSMISSION-ID");
    auto time = req.header("PAYPAL-TRANSMISSION-TIME");
    auto sig = req.header("PAYPAL-TRANSMISSION-SIG");
    auto cert_url = req.header("PAYPAL-CERT-URL");
    auto algo = req.header("PAYPAL-AUTH-ALGO");
    if (!id || !time || !sig)
        return Verdict::missing_signature;
    if (!cert_url || !algo || trim(*algo) != "SHA256withRSA" || id->empty() ||
        id->size() > kMaxIdLength || time->size() > kMaxTimeLength)
        return Verdict::malformed_signature;
    auto ts = parse_iso8601(trim(*time));
    if (!ts)
        return Verdict::malformed_signature;
    unsigned char signature[kMaxSignature];
    std::string_view b64 = trim(*sig);
    if (b64.size() > (kMaxSignature / 3) * 4)
        return Verdict::malformed_signature;
    auto sig_len = crypto::base64_decode(b64, signature, sizeof signature);
    if (!sig_len || *sig_len == 0)
        return Verdict::malformed_signature;
    if (!trusted_cert_url(trim(*cert_url)))
        return Verdict::bad_signature;
    if (!within_tolerance(*ts, now, st.tolerance_s))
        return Verdict::stale_timestamp;

    std::string_view body = req.body();
    // zlib's crc32 takes at most UINT_MAX bytes at a time.
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t at = 0; at < body.size(); at += 1u << 30) {
        size_t n = std::min<size_t>(body.size() - at, 1u << 30);
        crc = crc32(crc, reinterpret_cast<const Bytef*>(body.data() + at), static_cast<uInt>(n));
    }
    char crc_text[16];
    auto crc_end = std::to_chars(crc_text, crc_text + sizeof crc_text, crc).ptr;

    // id|time|webhook_id|crc: bounded above, so on the stack.
    char message[kMaxIdLength + kMaxTimeLength + kMaxWebhookIdLength + sizeof crc_text + 3];
    // Certificates outside their validity are still tried, only to say why a signature PayPal
    // really made is refused (the operator has a certificate to replace); a forgery cannot
    // verify under them, so it stays a plain bad signature.
    bool ok = false, expired = false, not_yet_valid = false;
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    if (md == nullptr)
        return Verdict::bad_signature;
    for (const std::string& webhook_id : st.webhook_ids) {
        char* p = message;
        for (std::string_view part : {*id, *time, std::string_view(webhook_id)}) {
            p = std::copy(part.begin(), part.end(), p);
            *p++ = '|';
        }
        p = std::copy(crc_text, crc_end, p);
        for (const auto& cert : st.paypal_certs) {
            const bool verified =
                EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, cert.key.get()) == 1 &&
                EVP_DigestVerify(md, signature, *sig_len, reinterpret_cast<unsigned char*>(message),
                                 static_cast<size_t>(p - message)) == 1;
            EVP_MD_CTX_reset(md);
            if (!verified)
                continue;
            if (now < cert.not_before)
                not_yet_valid = true;
            else if (now > cert.not_after)
                expired = true;
            else
                ok = true;
        }
    }
    EVP_MD_CTX_free(md);
    ERR_clear_error();  // a failed verification leaves an error on this thread's queue
    if (ok)
        return Verdict::ok;
    if (expired)
        return Verdict::certificate_expired;
    return not_yet_valid ? Verdict::certificate_not_yet_valid : Verdict::bad_signature;
}

}  // namespace hookq::sig
