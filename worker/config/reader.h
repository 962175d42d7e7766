// Internal to worker/config*.cc: reading worker.toml's values through toml++, every failure a
// ConfigError "path:line:col: message" that points at the offending key.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

namespace hookq::config_detail {

class Reader {
  public:
    explicit Reader(std::string path) : path_(std::move(path)) {}

    [[noreturn]] void fail(const toml::source_region& where, const std::string& msg) const;

    // Every key of a table must be known: a misspelt "max_attemps" silently falling back to the
    // default is exactly the kind of surprise validation exists to prevent.
    void only_keys(const toml::table& t, std::string_view where,
                   std::initializer_list<std::string_view> allowed) const;

    const toml::table* table(const toml::table& t, std::string_view key) const;
    std::optional<std::string> str(const toml::table& t, std::string_view key) const;
    std::optional<int64_t> integer(const toml::table& t, std::string_view key, int64_t lo,
                                   int64_t hi) const;
    std::optional<double> number(const toml::table& t, std::string_view key, double lo,
                                 double hi) const;
    std::optional<bool> boolean(const toml::table& t, std::string_view key) const;
    // Sizes as in nginx ("512k", "256m"); a bare integer means bytes.
    std::optional<uint64_t> size(const toml::table& t, std::string_view key, uint64_t lo,
                                 uint64_t hi) const;
    // Durations as in nginx ("250ms", "10s", "5m"); a bare integer means seconds.
    std::optional<uint64_t> duration(const toml::table& t, std::string_view key, uint64_t lo_ms,
                                     uint64_t hi_ms) const;
    std::vector<std::string> strings(const toml::table& t, std::string_view key) const;
    const toml::source_region& where(const toml::table& t, std::string_view key) const;

  private:
    static std::string show_ms(uint64_t ms);

    std::string path_;
};

constexpr uint64_t kDay = 24ull * 3600 * 1000;

// URL checks shared by [[routes]] and [[alerts.channels]] (values.cc): the offset of the first
// space or control character, and the message that names it.
std::optional<size_t> bad_url_byte(std::string_view url);
std::string url_byte_error(std::string_view key, std::string_view url, size_t at);
// The offset of the first control character (below 0x20, or DEL) of a name, if any, and the
// words that name it: "byte 0x00 at offset 2".
std::optional<size_t> control_byte(std::string_view name);
std::string byte_at(std::string_view s, size_t at);

}  // namespace hookq::config_detail
