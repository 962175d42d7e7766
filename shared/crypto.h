// Thin wrappers over OpenSSL: the only place shared/ touches it.
#pragma once

#include <cstdint>
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

std::string hex_encode(const unsigned char* p, size_t n);
std::optional<std::string> hex_decode(std::string_view hex);  // either case; nullopt if odd/bad
std::string base64_encode(const unsigned char* p, size_t n);
std::optional<std::string> base64_decode(std::string_view b64);  // strict, padded

// Constant time in the length of the inputs (CRYPTO_memcmp); false when lengths differ.
bool equal_ct(std::string_view a, std::string_view b) noexcept;

}  // namespace hookq::crypto
