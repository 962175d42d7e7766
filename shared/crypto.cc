// OpenSSL's low-level SHA API is deprecated in 3.0 but is the only one whose state is a plain
// struct that can be copied onto the stack; the EVP equivalents allocate on every context, which
// the nginx request path must not do. The functions stay in every OpenSSL 3.x.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "shared/crypto.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstring>

namespace hookq::crypto {
namespace {

struct Sha1 {
    using Ctx = SHA_CTX;
    static constexpr size_t kBlock = 64, kSize = 20;
    static void init(Ctx* c) { SHA1_Init(c); }
    static void update(Ctx* c, const void* p, size_t n) { SHA1_Update(c, p, n); }
    static void final(Ctx* c, unsigned char* out) { SHA1_Final(out, c); }
};
struct Sha256 {
    using Ctx = SHA256_CTX;
    static constexpr size_t kBlock = 64, kSize = 32;
    static void init(Ctx* c) { SHA256_Init(c); }
    static void update(Ctx* c, const void* p, size_t n) { SHA256_Update(c, p, n); }
    static void final(Ctx* c, unsigned char* out) { SHA256_Final(out, c); }
};
struct Sha512 {
    using Ctx = SHA512_CTX;
    static constexpr size_t kBlock = 128, kSize = 64;
    static void init(Ctx* c) { SHA512_Init(c); }
    static void update(Ctx* c, const void* p, size_t n) { SHA512_Update(c, p, n); }
    static void final(Ctx* c, unsigned char* out) { SHA512_Final(out, c); }
};

template <typename H>
void hash(std::string_view data, unsigned char* out) {
    typename H::Ctx c;
    H::init(&c);
    H::update(&c, data.data(), data.size());
    H::final(&c, out);
    OPENSSL_cleanse(&c, sizeof c);
}

template <typename H>
void precompute(std::string_view key, unsigned char* inner, unsigned char* outer) {
    static_assert(sizeof(typename H::Ctx) <= 224, "HmacKey::kStateSize too small");
    unsigned char k[H::kBlock] = {};
    if (key.size() > H::kBlock) {
        hash<H>(key, k);  // RFC 2104: longer keys are hashed first
    } else {
        std::memcpy(k, key.data(), key.size());
    }
    unsigned char pad[H::kBlock];
    typename H::Ctx c;
    for (size_t i = 0; i < H::kBlock; ++i)
        pad[i] = k[i] ^ 0x36;
    H::init(&c);
    H::update(&c, pad, sizeof pad);
    std::memcpy(inner, &c, sizeof c);
    for (size_t i = 0; i < H::kBlock; ++i)
        pad[i] = k[i] ^ 0x5c;
    H::init(&c);
    H::update(&c, pad, sizeof pad);
    std::memcpy(outer, &c, sizeof c);
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
}

template <typename H>
void finish(const unsigned char* inner, const unsigned char* outer,
            std::initializer_list<std::string_view> parts, unsigned char* out) {
    typename H::Ctx c;
    std::memcpy(&c, inner, sizeof c);
    for (std::string_view p : parts)
        H::update(&c, p.data(), p.size());
    unsigned char ih[H::kSize];
    H::final(&c, ih);
    std::memcpy(&c, outer, sizeof c);
    H::update(&c, ih, sizeof ih);
    H::final(&c, out);
    OPENSSL_cleanse(&c, sizeof c);
}

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

}  // namespace

size_t digest_size(HashAlg alg) noexcept {
    switch (alg) {
        case HashAlg::sha1:
            return 20;
        case HashAlg::sha256:
            return 32;
        case HashAlg::sha512:
            return 64;
    }
    return 0;
}

HmacKey::HmacKey(HashAlg alg, std::string_view key) noexcept : alg_(alg) {
    switch (alg) {
        case HashAlg::sha1:
            precompute<Sha1>(key, inner_, outer_);
            break;
        case HashAlg::sha256:
            precompute<Sha256>(key, inner_, outer_);
            break;
        case HashAlg::sha512:
            precompute<Sha512>(key, inner_, outer_);
            break;
    }
}

HmacKey::~HmacKey() {
    OPENSSL_cleanse(inner_, sizeof inner_);
    OPENSSL_cleanse(outer_, sizeof outer_);
}

HmacKey::HmacKey(const HmacKey& o) noexcept : alg_(o.alg_) {
    std::memcpy(inner_, o.inner_, sizeof inner_);
    std::memcpy(outer_, o.outer_, sizeof outer_);
}

HmacKey& HmacKey::operator=(const HmacKey& o) noexcept {
    alg_ = o.alg_;
    std::memcpy(inner_, o.inner_, sizeof inner_);
    std::memcpy(outer_, o.outer_, sizeof outer_);
    return *this;
}

void HmacKey::mac(std::initializer_list<std::string_view> parts,
                  unsigned char* out) const noexcept {
    switch (alg_) {
        case HashAlg::sha1:
            finish<Sha1>(inner_, outer_, parts, out);
            break;
        case HashAlg::sha256:
            finish<Sha256>(inner_, outer_, parts, out);
            break;
        case HashAlg::sha512:
            finish<Sha512>(inner_, outer_, parts, out);
            break;
    }
}

void hmac(HashAlg alg, std::string_view key, std::initializer_list<std::string_view> parts,
          unsigned char* out) noexcept {
    HmacKey(alg, key).mac(parts, out);
}

void sha256(std::string_view data, unsigned char out[32]) noexcept {
    hash<Sha256>(data, out);
}

std::string sha256_hex(std::string_view data) {
    unsigned char d[32];
    sha256(data, d);
    return hex_encode(d, sizeof d);
}

std::string sha1_hex(std::string_view data) {
    unsigned char d[20];
    hash<Sha1>(data, d);
    return hex_encode(d, sizeof d);
}

size_t hex_encode(const unsigned char* p, size_t n, char* out) noexcept {
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = kHex[p[i] >> 4];
        out[2 * i + 1] = kHex[p[i] & 15];
    }
    return 2 * n;
}

std::string hex_encode(const unsigned char* p, size_t n) {
    std::string s(2 * n, '\0');
    hex_encode(p, n, s.data());
    return s;
}

std::optional<size_t> hex_decode(std::string_view hex, unsigned char* out, size_t cap) noexcept {
    if (hex.size() % 2 != 0 || hex.size() / 2 > cap)
        return std::nullopt;
    for (size_t i = 0; i < hex.size(); i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out[i / 2] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return hex.size() / 2;
}

std::optional<std::string> hex_decode(std::string_view hex) {
    std::string s(hex.size() / 2, '\0');
    auto n = hex_decode(hex, reinterpret_cast<unsigned char*>(s.data()), s.size());
    if (!n)
        return std::nullopt;
    return s;
}

size_t base64_encode(const unsigned char* p, size_t n, char* out) noexcept {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = kB64[(v >> 6) & 63];
        out[o++] = kB64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = uint32_t(p[i]) << 16;
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8;
        out[o++] = kB64[v >> 18];
        out[o++] = kB64[(v >> 12) & 63];
        out[o++] = kB64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

std::string base64_encode(const unsigned char* p, size_t n) {
    std::string s((n + 2) / 3 * 4, '\0');
    base64_encode(p, n, s.data());
    return s;
}

// Strict: padded, standard alphabet, no whitespace, and unused trailing bits zero, so that every
// byte string has exactly one accepted encoding (the SDKs compare encodings, we compare bytes).
std::optional<size_t> base64_decode(std::string_view b64, unsigned char* out, size_t cap) noexcept {
    if (b64.size() % 4 != 0)
        return std::nullopt;
    size_t pad = 0;
    if (!b64.empty() && b64.back() == '=') {
        ++pad;
        if (b64[b64.size() - 2] == '=')
            ++pad;
    }
    size_t n = b64.size() / 4 * 3 - pad;
    if (n > cap)
        return std::nullopt;
    size_t o = 0;
    for (size_t i = 0; i < b64.size(); i += 4) {
        bool last = i + 4 == b64.size();
        int v[4];
        for (int j = 0; j < 4; ++j) {
            if (last && j >= 4 - static_cast<int>(pad)) {
                v[j] = 0;
                continue;
            }
            v[j] = b64_value(b64[i + j]);
            if (v[j] < 0)
                return std::nullopt;
        }
        uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | v[3];
        if (last && pad == 2 && (w & 0xffff) != 0)
            return std::nullopt;
        if (last && pad == 1 && (w & 0xff) != 0)
            return std::nullopt;
        out[o++] = static_cast<unsigned char>(w >> 16);
        if (!(last && pad == 2))
            out[o++] = static_cast<unsigned char>(w >> 8);
        if (!(last && pad >= 1))
            out[o++] = static_cast<unsigned char>(w);
    }
    return o;
}

std::optional<std::string> base64_decode(std::string_view b64) {
    std::string s(b64.size() / 4 * 3, '\0');
    auto n = base64_decode(b64, reinterpret_cast<unsigned char*>(s.data()), s.size());
    if (!n)
        return std::nullopt;
    s.resize(*n);
    return s;
}

bool equal_ct(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

int hex_value(unsigned char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

}  // namespace hookq::crypto
