// Twilio: base64 HMAC-SHA1 of the URL Twilio requested followed by the sorted form parameters,
// matched to the official node SDK (twilio/lib/webhooks/webhooks.js, validateRequest and
// validateRequestWithBody). The only scheme that allocates: parameters must be decoded and sorted.
#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "shared/signature_impl.h"

namespace hookq::sig {
namespace {

// application/x-www-form-urlencoded decoding as node's querystring does it: '+' is a space, a
// malformed %-escape stays as it is.
std::string form_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && crypto::hex_value(s[i + 1]) >= 0 &&
                   crypto::hex_value(s[i + 2]) >= 0) {
            out +=
                static_cast<char>(crypto::hex_value(s[i + 1]) << 4 | crypto::hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

struct UrlParts {
    std::string_view scheme;     // "https://"
    std::string_view user_info;  // "user:pass@" or empty
    std::string_view host;
    std::string_view port;  // ":8443" or empty
    std::string_view rest;  // path, query, fragment
};

// The SDK's splitUrl: /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i, the port after any IPv6 literal.
std::optional<UrlParts> split_url(std::string_view url) {
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (url.empty() || !alpha(url[0]))
        return std::nullopt;
    size_t i = 1;
    while (i < url.size() && (alpha(url[i]) || (url[i] >= '0' && url[i] <= '9') || url[i] == '+' ||
                              url[i] == '.' || url[i] == '-')) {
        ++i;
    }
    if (url.substr(i, 3) != "://")
        return std::nullopt;
    i += 3;
    size_t end = url.find_first_of("/?#", i);
    if (end == std::string_view::npos)
        end = url.size();
    std::string_view authority = url.substr(i, end - i);
    size_t at = authority.rfind('@');
    size_t host_start = at == std::string_view::npos ? 0 : at + 1;
    std::string_view host_port = authority.substr(host_start);
    size_t bracket = host_port.rfind(']');
    size_t colon = host_port.find(':', bracket == std::string_view::npos ? 0 : bracket + 1);
    UrlParts p;
    p.scheme = url.substr(0, i);
    p.user_info = authority.substr(0, host_start);
    p.host = host_port.substr(0, colon);
    p.port = colon == std::string_view::npos ? std::string_view() : host_port.substr(colon);
    p.rest = url.substr(end);
    return p;
}

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

// The two spellings the SDK tries first: without the port, and with the scheme's default port.
std::pair<std::string, std::string> url_variants(std::string_view url) {
    auto p = split_url(url);
    if (!p)
        return {std::string(url), std::string(url)};
    std::string base = std::string(p->scheme) + std::string(p->user_info) + std::string(p->host);
    std::string without = base + std::string(p->rest);
    if (!p->port.empty())
        return {without, std::string(url)};
    return {without,
            base + (iequals(p->scheme, "https://") ? ":443" : ":80") + std::string(p->rest)};
}

}  // namespace

bool is_form_urlencoded(std::optional<std::string_view> content_type) noexcept {
    constexpr std::string_view kForm = "application/x-www-form-urlencoded";
    if (!content_type)
        return false;
    std::string_view ct = trim(*content_type);
    return ct.size() >= kForm.size() && iequals(ct.substr(0, kForm.size()), kForm) &&
           (ct.size() == kForm.size() || ct[kForm.size()] == ';' || ct[kForm.size()] == ' ');
}

std::string twilio_form_params(std::string_view body) {
    std::vector<std::pair<std::string, std::string>> params;
    while (!body.empty()) {
        size_t amp = body.find('&');
        std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (pair.empty())
            continue;
        size_t eq = pair.find('=');
        params.emplace_back(
            form_decode(pair.substr(0, eq)),
            eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1)));
    }
    // The SDK sorts keys with JS's default sort and a repeated key's values through a Set, so equal
    // pairs count once. Byte order equals its UTF-16 order except for astral vs. U+E000..U+FFFF
    // characters, which Twilio's parameter names never contain.
    std::sort(params.begin(), params.end());
    params.erase(std::unique(params.begin(), params.end()), params.end());
    std::string out;
    for (const auto& [k, v] : params) {
        out += k;
        out += v;
    }
    return out;
}

Verdict verify_twilio(const State& st, const RequestView& req) noexcept {
    auto h = req.header("X-Twilio-Signature");
    if (!h || trim(*h).empty())
        return Verdict::missing_signature;
    Candidates c;
    unsigned char buf[20];
    auto n = crypto::base64_decode(trim(*h), buf, sizeof buf);
    if (!n || *n != sizeof buf)
        return Verdict::malformed_signature;
    c.add(buf, sizeof buf);
    try {
        const std::string_view url = req.url();
        std::string params;
        bool body_ok = true;
        // JSON bodies are not signed themselves: the URL carries their hash, and the URL is signed.
        if (auto hash = req.query_arg("bodySHA256")) {
            unsigned char want[32], got[32];
            auto len = crypto::hex_decode(*hash, want, sizeof want);
            if (!len || *len != sizeof want)
                return Verdict::malformed_signature;
            crypto::sha256(req.body(), got);
            body_ok = CRYPTO_memcmp(want, got, sizeof got) == 0;
        } else if (is_form_urlencoded(req.header("Content-Type"))) {
            params = twilio_form_params(req.body());
        }
        auto [without_port, with_port] = url_variants(url);
        // Both spellings always computed, so timing does not tell which one matched.
        const bool a = any_match(st, {without_port, params}, c);
        const bool b = any_match(st, {with_port, params}, c);
        const bool match = a || b;
        return match && body_ok ? Verdict::ok : Verdict::bad_signature;
    } catch (...) {
        return Verdict::bad_signature;  // out of memory: refuse rather than terminate nginx
    }
}

}  // namespace hookq::sig
