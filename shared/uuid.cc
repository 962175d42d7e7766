#include "shared/uuid.h"

#include "shared/crypto.h"

#include <openssl/rand.h>

#include <stdexcept>

namespace hookq {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Byte offsets where the canonical text has a dash (8-4-4-4-12).
constexpr bool is_dash_pos(size_t i) {
    return i == 8 || i == 13 || i == 18 || i == 23;
}

uint64_t splitmix64(uint64_t& x) noexcept {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
}

constexpr uint64_t kMs48Mask = (uint64_t{1} << 48) - 1;
constexpr uint16_t kCounterMax = 0xfff;
// Starting each millisecond in the lower half of the 12-bit space leaves at least 2048 ids of
// headroom before the counter overflows, while still not revealing how many ids came before.
constexpr uint16_t kCounterStartMask = 0x7ff;

}  // namespace

void Uuid::format(char* out) const noexcept {
    size_t o = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (is_dash_pos(o)) {
            out[o++] = '-';
        }
        out[o++] = kHex[bytes[i] >> 4];
        out[o++] = kHex[bytes[i] & 0xf];
    }
}

std::string Uuid::str() const {
    std::string s(kTextSize, '\0');
    format(s.data());
    return s;
}

std::optional<Uuid> Uuid::parse(std::string_view text) noexcept {
    if (text.size() != kTextSize) {
        return std::nullopt;
    }
    Uuid u;
    size_t b = 0;
    for (size_t i = 0; i < kTextSize;) {
        if (is_dash_pos(i)) {
            if (text[i] != '-') {
                return std::nullopt;
            }
            ++i;
            continue;
        }
        int hi = crypto::hex_value(text[i]);
        int lo = crypto::hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        u.bytes[b++] = static_cast<uint8_t>((hi << 4) | lo);
        i += 2;
    }
    return u;
}

uint64_t Uuid::unix_ms() const noexcept {
    uint64_t ms = 0;
    for (size_t i = 0; i < 6; ++i) {
        ms = (ms << 8) | bytes[i];
    }
    return ms;
}

Uuid7Generator::Uuid7Generator() {
    // Every nginx worker (and worker thread) must produce a different stream, so the seed comes
    // from the CSPRNG; a generator copied across fork() would repeat its parent's ids, which is why
    // the header asks for one per process, created after the fork.
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s_), sizeof(s_)) != 1) {
        throw std::runtime_error("hookq: RAND_bytes failed seeding the UUIDv7 generator");
    }
    // xoshiro's only fixed point is the all-zero state; astronomically unlikely, but free to rule
    // out.
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) {
        s_[0] = 1;
    }
}

Uuid7Generator::Uuid7Generator(uint64_t seed) {
    // splitmix64 is what xoshiro's authors recommend for expanding one word into a full state: it
    // never yields four zero words and decorrelates nearby seeds.
    for (uint64_t& w : s_) {
        w = splitmix64(seed);
    }
}

// xoshiro256** 1.0 (Blackman & Vigna).
uint64_t Uuid7Generator::rand64() noexcept {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

Uuid Uuid7Generator::next(uint64_t unix_ms) noexcept {
    unix_ms &= kMs48Mask;
    if (unix_ms > last_ms_) {
        last_ms_ = unix_ms;
        counter_ = static_cast<uint16_t>(rand64() & kCounterStartMask);
    } else {
        // Same millisecond, or the clock stepped back: keep counting from where we are so ids stay
        // strictly increasing. On counter overflow RFC 9562 6.2 lets the timestamp run ahead by 1
        // ms.
        if (counter_ >= kCounterMax) {
            last_ms_ = (last_ms_ + 1) & kMs48Mask;
            counter_ = static_cast<uint16_t>(rand64() & kCounterStartMask);
        } else {
            ++counter_;
        }
    }

    Uuid u;
    const uint64_t ms = last_ms_;
    for (int i = 0; i < 6; ++i) {
        u.bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
    }
    u.bytes[6] = static_cast<uint8_t>(0x70 | (counter_ >> 8));
    u.bytes[7] = static_cast<uint8_t>(counter_ & 0xff);
    const uint64_t r = rand64();
    // Top two bits of byte 8 are the variant (10); the remaining 62 bits are random.
    u.bytes[8] = static_cast<uint8_t>(0x80 | ((r >> 56) & 0x3f));
    for (int i = 9; i < 16; ++i) {
        u.bytes[i] = static_cast<uint8_t>(r >> (8 * (15 - i)));
    }
    return u;
}

}  // namespace hookq
