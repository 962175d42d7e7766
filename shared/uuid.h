// UUIDv7 (RFC 9562): 48-bit unix milliseconds, then randomness. Request ids are v7 so that they
// sort by arrival, which keeps PostgreSQL's uuid primary key index append-mostly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hookq {

struct Uuid {
    std::array<uint8_t, 16> bytes{};

    static constexpr size_t kTextSize = 36;
    // Canonical lowercase 8-4-4-4-12 text, written to out[0..36) (no terminator).
    void format(char* out) const noexcept;
    std::string str() const;
    static std::optional<Uuid> parse(std::string_view text) noexcept;
    uint64_t unix_ms() const noexcept;  // meaningful for v7 only
    friend bool operator==(const Uuid&, const Uuid&) = default;
};

// Not thread-safe: one per thread / nginx worker process. Seeded from OpenSSL's CSPRNG; monotonic
// within a millisecond (a 12-bit counter in rand_a, RFC 9562 section 6.2 method 1).
class Uuid7Generator {
  public:
    Uuid7Generator();  // seeds from RAND_bytes
    explicit Uuid7Generator(uint64_t seed);
    Uuid next(uint64_t unix_ms) noexcept;

  private:
    uint64_t rand64() noexcept;
    uint64_t s_[4];
    uint64_t last_ms_ = 0;
    uint16_t counter_ = 0;
};

}  // namespace hookq
