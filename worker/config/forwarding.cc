#include "worker/config/sections.h"

#include <string>

namespace hookq {

bool never_forwarded(std::string_view name) noexcept {
    static const NameSet fixed = {"connection",     "keep-alive",        "te",
                                  "trailer",        "transfer-encoding", "upgrade",
                                  "host",           "content-length",    "expect",
                                  "http2-settings", "content-type",      "accept-encoding",
                                  "x-request-id",   "x-retry-attempt",   "x-max-attempts",
                                  "x-timeout-ms"};
    auto prefixed = [&](std::string_view p) {
        return name.size() >= p.size() && CaseInsensitiveEqual{}(name.substr(0, p.size()), p);
    };
    return prefixed("proxy-") || prefixed("x-hookq-") || fixed.count(name) != 0;
}

namespace config_detail {

namespace {

bool header_token(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) {
            return false;
        }
    }
    return true;
}

NameSet header_names(const Reader& r, const toml::table& rt, std::string_view key,
                     const std::string& ctx) {
    NameSet out;
    for (const auto& n : r.strings(rt, key)) {
        if (!header_token(n)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "' entries must be header " +
                                         "names, not \"" + n + "\"");
        }
        if (never_forwarded(n)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "': " + n +
                                         " is never forwarded (hop-by-hop, or set by hookq)");
        }
        out.insert(n);
    }
    return out;
}

}  // namespace

void read_forwarding(const Reader& r, const toml::table& rt, Route& route, const std::string& ctx) {
    route.forward_headers = r.boolean(rt, "forward_headers").value_or(true);
    route.forward_allow = header_names(r, rt, "forward_headers_allow", ctx);
    route.forward_deny = header_names(r, rt, "forward_headers_deny", ctx);
    if (!route.signing_key.empty()) {
        // hookq's own Standard Webhooks signature replaces the provider's.
        route.forward_deny.insert({"webhook-id", "webhook-timestamp", "webhook-signature"});
    }
    route.forward_query = r.boolean(rt, "forward_query").value_or(true);
    if (rt.get("redact_query")) {
        for (const auto& a : r.strings(rt, "redact_query")) {
            if (a.empty() || a.find_first_of("&=#?") != std::string::npos) {
                r.fail(r.where(rt, "redact_query"),
                       ctx + ": 'redact_query' entries must be query argument names");
            }
            route.redact_query.insert(a);
        }
    } else {
        route.redact_query = {"token",   "access_token", "secret",  "signature",
                              "api_key", "apikey",       "password"};
    }
}

}  // namespace config_detail

}  // namespace hookq
