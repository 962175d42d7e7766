#include "worker/admin/auth.h"

#include <openssl/crypto.h>

#include <cctype>

#include "shared/crypto.h"

namespace hookq::admin {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// "host:80" -> "host" for http, "host:443" -> "host" for https: a browser's Origin omits the
// default port and Host may spell it, or the other way round.
std::string without_default_port(std::string authority, std::string_view scheme) {
    std::string_view port = scheme == "https" ? ":443" : ":80";
    if (authority.ends_with(port)) {
        authority.resize(authority.size() - port.size());
    }
    return authority;
}

}  // namespace

const AdminToken* authenticate(const std::vector<AdminToken>& tokens,
                               std::string_view authorization) {
    size_t sp = authorization.find(' ');
    if (sp == std::string_view::npos || lower(authorization.substr(0, sp)) != "bearer") {
        return nullptr;
    }
    std::string_view token = authorization.substr(sp + 1);
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
        token.remove_suffix(1);
    }
    if (token.empty()) {
        return nullptr;
    }
    unsigned char d[32];
    crypto::sha256(token, d);
    const AdminToken* found = nullptr;
    for (const auto& t : tokens) {
        // No early exit: every token is compared whatever matched before.
        bool eq = t.sha256.size() == sizeof d && CRYPTO_memcmp(t.sha256.data(), d, sizeof d) == 0;
        found = eq ? &t : found;
    }
    return found;
}

bool browser_safe_write(std::string_view origin, std::string_view host,
                        std::string_view sec_fetch_site, std::string& why) {
    if (!sec_fetch_site.empty()) {
        std::string site = lower(sec_fetch_site);
        if (site != "same-origin" && site != "none") {
            why = "refused a " + site + " request (Sec-Fetch-Site): writes come from this " +
                  "server's own pages or from non-browser clients";
            return false;
        }
    }
    if (origin.empty()) {
        return true;
    }
    std::string o = lower(origin);
    size_t sep = o.find("://");
    if (sep == std::string::npos || host.empty()) {
        why = "refused a write from Origin \"" + std::string(origin) + "\"";
        return false;
    }
    std::string scheme = o.substr(0, sep);
    std::string authority = o.substr(sep + 3);
    if (authority.find('/') != std::string::npos) {
        authority.resize(authority.find('/'));
    }
    if (without_default_port(authority, scheme) != without_default_port(lower(host), scheme)) {
        why = "refused a cross-origin write from Origin \"" + std::string(origin) +
              "\" (this server is " + std::string(host) + ")";
        return false;
    }
    return true;
}

}  // namespace hookq::admin
