// Thin wrappers over OpenSSL: the only place shared/ touches it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "shared/signature.h"

namespace hookq::crypto {

size_t digest_size(HashAlg alg) noexcept;
// HMAC of the concatenation of parts; out must hold digest_size(alg) bytes.
void hmac(HashAlg alg, std::string_view key, std::initializer_list<std::string_view> parts,
          unsigned char* out) noexcept;
std::string sha256_hex(std::string_view data);
std::string sha1_hex(std::string_view data);  // for EVALSHA script ids

// 0-15 for a hex digit of either case, -1 for anything else.
int hex_value(unsigned char c) noexcept;
std::string hex_encode(const unsigned char* p, size_t n);
std::optional<std::string> hex_decode(std::string_view hex);  // either case; nullopt if odd/bad
std::string base64_encode(const unsigned char* p, size_t n);
std::optional<std::string> base64_decode(std::string_view b64);  // strict, padded

// Allocation-free forms for the request path. Each returns the number of bytes written, or nullopt
// when the input is malformed or does not fit in `cap`.
std::optional<size_t> hex_decode(std::string_view hex, unsigned char* out, size_t cap) noexcept;
std::optional<size_t> base64_decode(std::string_view b64, unsigned char* out, size_t cap) noexcept;
// out must hold 2*n chars (hex) or 4*ceil(n/3) chars (base64); returns chars written.
size_t hex_encode(const unsigned char* p, size_t n, char* out) noexcept;
size_t base64_encode(const unsigned char* p, size_t n, char* out) noexcept;

constexpr size_t kMaxDigestSize = 64;  // sha512
void sha256(std::string_view data, unsigned char out[32]) noexcept;

// An HMAC key whose inner and outer padded states are hashed once, at configuration time. mac()
// copies them onto the stack, so it is const, allocation-free, safe to call from several threads at
// once, and skips the two key blocks every one-shot HMAC() hashes again.
class HmacKey {
  public:
    HmacKey(HashAlg alg, std::string_view key) noexcept;
    ~HmacKey();
    HmacKey(const HmacKey&) noexcept;
    HmacKey& operator=(const HmacKey&) noexcept;

    HashAlg alg() const noexcept { return alg_; }
    size_t size() const noexcept { return digest_size(alg_); }
    // HMAC of the concatenation of parts; out must hold size() bytes.
    void mac(std::initializer_list<std::string_view> parts, unsigned char* out) const noexcept;

  private:
    // Room for OpenSSL's largest low-level hash state (SHA512_CTX); checked in crypto.cc.
    static constexpr size_t kStateSize = 224;
    HashAlg alg_;
    alignas(16) unsigned char inner_[kStateSize];
    alignas(16) unsigned char outer_[kStateSize];
};

// Constant time in the length of the inputs (CRYPTO_memcmp); false when lengths differ.
bool equal_ct(std::string_view a, std::string_view b) noexcept;

}  // namespace hookq::crypto
