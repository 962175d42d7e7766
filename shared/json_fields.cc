#include "shared/json_fields.h"

#include <charconv>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace hookq {

std::optional<JsonPointer> JsonPointer::parse(std::string_view text, std::string& error) {
    if (text.empty() || text.front() != '/') {
        error = "a JSON Pointer starts with \"/\", e.g. /events/0/action";
        return std::nullopt;
    }
    JsonPointer p;
    for (size_t start = 1;;) {
        size_t end = text.find('/', start);
        std::string_view raw =
            text.substr(start, end == std::string_view::npos ? end : end - start);
        std::string token;
        for (size_t i = 0; i < raw.size(); i++) {
            if (raw[i] != '~') {
                token += raw[i];
            } else if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
                token += raw[++i] == '0' ? '~' : '/';
            } else {
                error = "\"~\" must be followed by 0 (for \"~\") or 1 (for \"/\")";
                return std::nullopt;
            }
        }
        p.tokens_.push_back(std::move(token));
        if (end == std::string_view::npos) {
            return p;
        }
        start = end + 1;
    }
}

bool JsonPointer::is_index(std::string_view token, size_t index) {
    if (token.empty() || (token.size() > 1 && token.front() == '0')) {
        return false;
    }
    size_t n = 0;
    auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), n);
    return ec == std::errc() && end == token.data() + token.size() && n == index;
}

namespace {

using Json = nlohmann::json;

// Follows where the parser is (the key or index at each level) and takes the scalars that sit
// exactly where a pointer points. Returning false from a callback stops the parse.
class Picker : public nlohmann::json_sax<Json> {
  public:
    Picker(std::span<const JsonPointer> pointers, std::span<std::optional<std::string>> out)
        : pointers_(pointers), out_(out), missing_(pointers.size()) {}

    bool null() override { return value(nullptr); }
    bool boolean(bool v) override { return value(v ? "true" : "false"); }
    bool number_integer(number_integer_t v) override { return value(std::to_string(v)); }
    bool number_unsigned(number_unsigned_t v) override { return value(std::to_string(v)); }
    bool number_float(number_float_t, const string_t& text) override { return value(text); }
    bool string(string_t& v) override { return value(v); }
    bool binary(binary_t&) override { return value(nullptr); }
    bool start_object(std::size_t) override { return open(false); }
    bool start_array(std::size_t) override { return open(true); }
    bool key(string_t& k) override {
        path_.back().key = k;
        return true;
    }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        return false;
    }

  private:
    struct Level {
        bool array;
        size_t index;     // of the next element, in an array
        std::string key;  // of the current member, in an object
    };

    bool matches(const JsonPointer& p) const {
        const auto& t = p.tokens();
        if (t.size() != path_.size()) {
            return false;
        }
        for (size_t i = 0; i < t.size(); i++) {
            const Level& l = path_[i];
            if (l.array ? !JsonPointer::is_index(t[i], l.index) : t[i] != l.key) {
                return false;
            }
        }
        return true;
    }

    // A value ends here: take it where a pointer points at it (nullptr: null or a container, which
    // no key is made of), then step past it in its array.
    bool value(std::optional<std::string_view> v) {
        for (size_t i = 0; i < pointers_.size(); i++) {
            if (!done(i) && matches(pointers_[i])) {
                if (v) {
                    out_[i].emplace(*v);
                }
                found_.push_back(i);
                missing_--;
            }
        }
        if (!path_.empty() && path_.back().array) {
            path_.back().index++;
        }
        return missing_ > 0;
    }
    bool value(std::nullptr_t) { return value(std::optional<std::string_view>()); }
    bool value(const char* v) { return value(std::optional<std::string_view>(v)); }
    bool value(const std::string& v) { return value(std::optional<std::string_view>(v)); }

    bool done(size_t i) const {
        for (size_t f : found_) {
            if (f == i) {
                return true;
            }
        }
        return false;
    }

    bool open(bool array) {
        // A container where a pointer points: that pointer has no scalar to give.
        for (size_t i = 0; i < pointers_.size(); i++) {
            if (!done(i) && matches(pointers_[i])) {
                found_.push_back(i);
                missing_--;
            }
        }
        if (missing_ == 0) {
            return false;
        }
        path_.push_back({array, 0, {}});
        return true;
    }

    bool close() {
        path_.pop_back();
        if (!path_.empty() && path_.back().array) {
            path_.back().index++;
        }
        return true;
    }

    std::span<const JsonPointer> pointers_;
    std::span<std::optional<std::string>> out_;
    size_t missing_;
    std::vector<size_t> found_;
    std::vector<Level> path_;
};

}  // namespace

void extract_json_fields(std::string_view json, std::span<const JsonPointer> pointers,
                         std::span<std::optional<std::string>> out) {
    for (auto& o : out) {
        o.reset();
    }
    if (pointers.empty()) {
        return;
    }
    Picker picker(pointers, out);
    Json::sax_parse(json.begin(), json.end(), &picker, nlohmann::detail::input_format_t::json,
                    /*strict=*/false);
}

}  // namespace hookq
