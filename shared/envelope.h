// Envelope v1: the one Redis list element per webhook, written by the edge, read by the worker.
//
//   "HQE1" | request id: 16 bytes | received_at: u64 unix microseconds |
//   u32-length-prefixed: source, dedup key, method, path+query, remote address |
//   headers: u32 count, then (u32 len, name, u32 len, value) each | u32-length-prefixed body
//
// All integers little-endian. Binary rather than JSON so the body travels byte-exact (NULs, invalid
// UTF-8) and the edge encodes with one size computation and one pass of memcpy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/uuid.h"

namespace hookq {

inline constexpr std::string_view kEnvelopeMagic = "HQE1";

struct HeaderField {
    std::string_view name;
    std::string_view value;
};

// Owned form, for the worker and tests. The edge uses EnvelopeWriter directly.
struct Envelope {
    Uuid request_id;
    uint64_t received_at_us = 0;
    std::string source, dedup_key, method, target, remote_addr;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    std::string encode() const;
    // Case-insensitive lookup; empty view when absent.
    std::string_view header(std::string_view name) const noexcept;
};

// Zero-copy decoded view; every view points into the decoded buffer.
struct EnvelopeView {
    Uuid request_id;
    uint64_t received_at_us = 0;
    std::string_view source, dedup_key, method, target, remote_addr;
    std::vector<HeaderField> headers;
    std::string_view body;

    std::string_view header(std::string_view name) const noexcept;
    Envelope to_owned() const;
};

enum class DecodeError { ok, bad_magic, truncated, too_many_headers, trailing_bytes };
std::string_view to_string(DecodeError e) noexcept;

// Checks every length against the bytes that remain and rejects trailing garbage.
DecodeError decode_envelope(std::string_view data, EnvelopeView& out);

// Streaming encoder into caller-owned memory (the nginx request pool). Size first, then write:
//   size_t n = EnvelopeWriter::fixed_size() + EnvelopeWriter::field_size(src.size()) + ...;
//   EnvelopeWriter w(buf); w.begin(id, ts); w.field(src); ... w.u32(nheaders); w.field(name)...
class EnvelopeWriter {
  public:
    static constexpr size_t fixed_size() { return 4 + 16 + 8; }
    static constexpr size_t field_size(size_t len) { return 4 + len; }
    static constexpr size_t count_size() { return 4; }

    explicit EnvelopeWriter(char* out) noexcept : p_(out) {}
    void begin(const Uuid& id, uint64_t received_at_us) noexcept;
    void field(std::string_view v) noexcept;
    void u32(uint32_t v) noexcept;
    char* end() const noexcept { return p_; }

  private:
    char* p_;
};

// A retry record (the member of hookq:{Q}:retry): the route it is for, the attempt number that
// comes next, when the first attempt started, and the original envelope bytes unchanged.
//   "HQR1" | u32 attempt | u64 first_attempt_us | u32-length-prefixed route | envelope (rest)
struct RetryRecord {
    std::string route;
    uint32_t attempt = 0;
    uint64_t first_attempt_us = 0;
    std::string envelope;

    std::string encode() const;
    static std::optional<RetryRecord> decode(std::string_view data);
};

}  // namespace hookq
