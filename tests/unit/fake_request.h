// A request as the verifiers see it (shared/signature.h RequestView), built by a test: headers
// looked up case-insensitively, as nginx does.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/signature.h"

namespace hookq::testing {

class FakeRequest : public RequestView {
  public:
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body_bytes;
    std::string full_url = "https://example.com/hooks/x";

    static bool ieq(std::string_view a, std::string_view b) {
        return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
            return std::tolower(static_cast<unsigned char>(x)) ==
                   std::tolower(static_cast<unsigned char>(y));
        });
    }
    std::optional<std::string_view> header(std::string_view name) const override {
        for (const auto& [k, v] : headers) {
            if (ieq(k, name))
                return v;
        }
        return std::nullopt;
    }
    std::string_view body() const override { return body_bytes; }
    std::string_view url() const override { return full_url; }

    void set(std::string_view name, std::string value) {
        erase(name);
        headers.emplace_back(name, std::move(value));
    }
    void erase(std::string_view name) {
        std::erase_if(headers, [&](const auto& h) { return ieq(h.first, name); });
    }
    std::string get(std::string_view name) const { return std::string(header(name).value_or("")); }
};

}  // namespace hookq::testing
