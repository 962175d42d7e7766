#include "shared/units.h"

#include <limits>

namespace hookq {

namespace {

// nginx computes in ngx_int_t / off_t; capping at INT64_MAX (not UINT64_MAX) means every value we
// accept is one nginx would accept too, and can be handed to signed time arithmetic safely.
constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// Parses a run of digits at text[i...]; false on no digits or a value above kMax.
bool parse_digits(std::string_view text, size_t& i, uint64_t& value) noexcept {
    const size_t start = i;
    value = 0;
    for (; i < text.size() && is_digit(text[i]); ++i) {
        const uint64_t d = static_cast<uint64_t>(text[i] - '0');
        if (value > (kMax - d) / 10) {
            return false;
        }
        value = value * 10 + d;
    }
    return i > start;
}

}  // namespace

std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept {
    // Units by rank, largest first; a combination must use strictly decreasing ranks, as in
    // ngx_parse_time ("1h30m" yes, "30m1h" or "1m1m" no).
    enum Rank { kNone = 0, kYear, kMonth, kWeek, kDay, kHour, kMin, kSec, kMsec };
    constexpr uint64_t kSecMs = 1000;
    constexpr uint64_t kDayMs = 24 * 60 * 60 * kSecMs;

    if (text.empty()) {
        return std::nullopt;
    }
    uint64_t total = 0;
    int last = kNone;
    size_t i = 0;
    while (i < text.size()) {
        uint64_t value;
        if (!parse_digits(text, i, value)) {
            return std::nullopt;  // empty component, sign, space or any other stray byte
        }

        int rank;
        uint64_t scale;
        if (i == text.size()) {
            // A trailing bare number means seconds, as in nginx ("90" or "1m30").
            rank = kSec;
            scale = kSecMs;
        } else {
            switch (text[i++]) {
                case 'y':
                    rank = kYear;
                    scale = 365 * kDayMs;
                    break;
                case 'M':
                    rank = kMonth;
                    scale = 30 * kDayMs;
                    break;
                case 'w':
                    rank = kWeek;
                    scale = 7 * kDayMs;
                    break;
                case 'd':
                    rank = kDay;
                    scale = kDayMs;
                    break;
                case 'h':
                    rank = kHour;
                    scale = 60 * 60 * kSecMs;
                    break;
                case 'm':
                    if (i < text.size() && text[i] == 's') {
                        ++i;
                        rank = kMsec;
                        scale = 1;
                    } else {
                        rank = kMin;
                        scale = 60 * kSecMs;
                    }
                    break;
                case 's':
                    rank = kSec;
                    scale = kSecMs;
                    break;
                default:
                    return std::nullopt;
            }
        }
        if (rank <= last) {
            return std::nullopt;
        }
        last = rank;

        if (value > kMax / scale) {
            return std::nullopt;
        }
        value *= scale;
        if (total > kMax - value) {
            return std::nullopt;
        }
        total += value;
    }
    return total;
}

std::optional<uint64_t> parse_size(std::string_view text) noexcept {
    if (text.empty()) {
        return std::nullopt;
    }
    uint64_t scale = 1;
    switch (text.back()) {
        case 'k':
        case 'K':
            scale = uint64_t{1} << 10;
            break;
        case 'm':
        case 'M':
            scale = uint64_t{1} << 20;
            break;
        case 'g':
        case 'G':
            scale = uint64_t{1} << 30;
            break;
        default:
            break;
    }
    if (scale != 1) {
        text.remove_suffix(1);
    }
    size_t i = 0;
    uint64_t value;
    if (!parse_digits(text, i, value) || i != text.size()) {
        return std::nullopt;
    }
    if (value > kMax / scale) {
        return std::nullopt;
    }
    return value * scale;
}

}  // namespace hookq
