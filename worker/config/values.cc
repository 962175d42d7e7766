// The value formats that more than one section shares: URLs (a destination, the bytes they must
// not hold) and rates.
#include <cctype>
#include <cstdio>

#include "worker/config.h"
#include "worker/config/reader.h"

namespace hookq {

namespace config_detail {

// A control character or a space in a URL is either a typo or an attempt to smuggle a header line
// into the request; curl would refuse it at delivery time, turning every webhook into a dead
// letter.
std::optional<size_t> bad_url_byte(std::string_view url) {
    for (size_t i = 0; i < url.size(); ++i) {
        auto c = static_cast<unsigned char>(url[i]);
        if (c <= 0x20 || c == 0x7f) {
            return i;
        }
    }
    return std::nullopt;
}

std::optional<size_t> control_byte(std::string_view name) {
    for (size_t i = 0; i < name.size(); ++i) {
        auto c = static_cast<unsigned char>(name[i]);
        if (c < 0x20 || c == 0x7f) {
            return i;
        }
    }
    return std::nullopt;
}

std::string byte_at(std::string_view s, size_t at) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(s[at]));
    return "byte " + std::string(hex) + " at offset " + std::to_string(at);
}

std::string url_byte_error(std::string_view key, std::string_view url, size_t at) {
    // The URL itself is not echoed: it may carry credentials.
    return "'" + std::string(key) + "' must not contain spaces or control characters (" +
           byte_at(url, at) + ")";
}

}  // namespace config_detail

std::optional<std::string> url_destination(std::string_view url) {
    std::string_view scheme;
    uint16_t port;
    if (url.starts_with("http://")) {
        scheme = "http";
        port = 80;
    } else if (url.starts_with("https://")) {
        scheme = "https";
        port = 443;
    } else {
        return std::nullopt;
    }
    std::string_view rest = url.substr(scheme.size() + 3);
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);
    }
    if (authority.empty()) {
        return std::nullopt;
    }
    std::string_view host = authority;
    size_t colon = authority.rfind(':');
    size_t bracket = authority.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
        host = authority.substr(0, colon);
        std::string_view p = authority.substr(colon + 1);
        if (p.empty() || p.size() > 5) {
            return std::nullopt;
        }
        uint32_t v = 0;
        for (char c : p) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            v = v * 10 + static_cast<uint32_t>(c - '0');
        }
        if (v == 0 || v > 65535) {
            return std::nullopt;
        }
        port = static_cast<uint16_t>(v);
    }
    if (host.empty()) {
        return std::nullopt;
    }
    std::string h(host);
    for (char& c : h) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return std::string(scheme) + "://" + h + ":" + std::to_string(port);
}

std::optional<double> parse_rate(std::string_view text) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0) {
        return std::nullopt;
    }
    double count = 0;
    for (char c : text.substr(0, slash)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        count = count * 10 + (c - '0');
    }
    std::string_view unit = text.substr(slash + 1);
    double period;
    if (unit == "s" || unit == "sec" || unit == "second") {
        period = 1;
    } else if (unit == "m" || unit == "min" || unit == "minute") {
        period = 60;
    } else if (unit == "h" || unit == "hour") {
        period = 3600;
    } else {
        return std::nullopt;
    }
    if (count <= 0 || count > 1e9) {
        return std::nullopt;
    }
    return count / period;
}

}  // namespace hookq
