#include "shared/envelope.h"

#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace hookq {

namespace {

inline constexpr std::string_view kRetryMagic = "HQR1";

// The wire format is little-endian. On little-endian hosts (all we ship on) the integers are copied
// as they sit in memory; the shift loops keep the format correct should a big-endian host appear.
inline void put_u32(char* p, uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, 4);
    } else {
        for (int i = 0; i < 4; ++i) {
            p[i] = static_cast<char>(v >> (8 * i));
        }
    }
}

inline void put_u64(char* p, uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, 8);
    } else {
        for (int i = 0; i < 8; ++i) {
            p[i] = static_cast<char>(v >> (8 * i));
        }
    }
}

inline uint32_t get_u32(const char* p) noexcept {
    uint32_t v = 0;
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(&v, p, 4);
    } else {
        for (int i = 0; i < 4; ++i) {
            v |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
        }
    }
    return v;
}

inline uint64_t get_u64(const char* p) noexcept {
    uint64_t v = 0;
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(&v, p, 8);
    } else {
        for (int i = 0; i < 8; ++i) {
            v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
        }
    }
    return v;
}

// Bounds-checked cursor. Every check compares a length with what remains, never advances a pointer
// first: `p + len` with a hostile len is undefined behaviour before any comparison could catch it.
class Reader {
  public:
    explicit Reader(std::string_view data) noexcept : p_(data.data()), left_(data.size()) {}

    size_t remaining() const noexcept { return left_; }

    bool bytes(size_t n, const char*& out) noexcept {
        if (n > left_) {
            return false;
        }
        out = p_;
        p_ += n;
        left_ -= n;
        return true;
    }

    bool u32(uint32_t& v) noexcept {
        const char* p;
        if (!bytes(4, p)) {
            return false;
        }
        v = get_u32(p);
        return true;
    }

    bool u64(uint64_t& v) noexcept {
        const char* p;
        if (!bytes(8, p)) {
            return false;
        }
        v = get_u64(p);
        return true;
    }

    bool field(std::string_view& v) noexcept {
        uint32_t len;
        if (!u32(len)) {
            return false;
        }
        const char* p;
        if (!bytes(len, p)) {
            return false;
        }
        v = std::string_view(p, len);
        return true;
    }

    std::string_view rest() const noexcept { return std::string_view(p_, left_); }

  private:
    const char* p_;
    size_t left_;
};

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// HTTP header names are ASCII tokens; locale-aware tolower would both be slower and could fold
// bytes that are not letters in the C locale.
bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

void check_u32_len(size_t n) {
    // The edge caps bodies far below this (hookq_max_body); reaching it means a caller bug, and
    // silently truncating the length prefix would produce an envelope that decodes as garbage.
    if (n > std::numeric_limits<uint32_t>::max()) {
        throw std::length_error("hookq envelope: field longer than 4 GiB");
    }
}

}  // namespace

std::string_view to_string(DecodeError e) noexcept {
    switch (e) {
        case DecodeError::ok:
            return "ok";
        case DecodeError::bad_magic:
            return "bad_magic";
        case DecodeError::truncated:
            return "truncated";
        case DecodeError::too_many_headers:
            return "too_many_headers";
        case DecodeError::trailing_bytes:
            return "trailing_bytes";
    }
    return "unknown";
}

void EnvelopeWriter::begin(const Uuid& id, uint64_t received_at_us) noexcept {
    std::memcpy(p_, kEnvelopeMagic.data(), kEnvelopeMagic.size());
    p_ += kEnvelopeMagic.size();
    std::memcpy(p_, id.bytes.data(), id.bytes.size());
    p_ += id.bytes.size();
    put_u64(p_, received_at_us);
    p_ += 8;
}

void EnvelopeWriter::field(std::string_view v) noexcept {
    put_u32(p_, static_cast<uint32_t>(v.size()));
    p_ += 4;
    // memcpy with a null source is UB even for n == 0, and an empty string_view may carry one.
    if (!v.empty()) {
        std::memcpy(p_, v.data(), v.size());
        p_ += v.size();
    }
}

void EnvelopeWriter::u32(uint32_t v) noexcept {
    put_u32(p_, v);
    p_ += 4;
}

std::string Envelope::encode() const {
    size_t n = EnvelopeWriter::fixed_size();
    for (const std::string* f : {&source, &dedup_key, &method, &target, &remote_addr, &body}) {
        check_u32_len(f->size());
        n += EnvelopeWriter::field_size(f->size());
    }
    check_u32_len(headers.size());
    n += EnvelopeWriter::count_size();
    for (const auto& [name, value] : headers) {
        check_u32_len(name.size());
        check_u32_len(value.size());
        n += EnvelopeWriter::field_size(name.size()) + EnvelopeWriter::field_size(value.size());
    }

    std::string out;
    // resize_and_overwrite would skip the zero fill, but libstdc++ 12 does not ship it; the fill is
    // cheap next to the copy that follows.
    out.resize(n);
    EnvelopeWriter w(out.data());
    w.begin(request_id, received_at_us);
    w.field(source);
    w.field(dedup_key);
    w.field(method);
    w.field(target);
    w.field(remote_addr);
    w.u32(static_cast<uint32_t>(headers.size()));
    for (const auto& [name, value] : headers) {
        w.field(name);
        w.field(value);
    }
    w.field(body);
    return out;
}

std::string_view Envelope::header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers) {
        if (iequals(n, name)) {
            return v;
        }
    }
    return {};
}

std::string_view EnvelopeView::header(std::string_view name) const noexcept {
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            return h.value;
        }
    }
    return {};
}

Envelope EnvelopeView::to_owned() const {
    Envelope e;
    e.request_id = request_id;
    e.received_at_us = received_at_us;
    e.source = std::string(source);
    e.dedup_key = std::string(dedup_key);
    e.method = std::string(method);
    e.target = std::string(target);
    e.remote_addr = std::string(remote_addr);
    e.headers.reserve(headers.size());
    for (const auto& h : headers) {
        e.headers.emplace_back(std::string(h.name), std::string(h.value));
    }
    e.body = std::string(body);
    return e;
}

DecodeError decode_envelope(std::string_view data, EnvelopeView& out) {
    Reader r(data);
    const char* magic;
    if (!r.bytes(kEnvelopeMagic.size(), magic)) {
        // A short prefix of the magic is a cut-off envelope; anything else is not an envelope.
        return kEnvelopeMagic.starts_with(data) ? DecodeError::truncated : DecodeError::bad_magic;
    }
    if (std::string_view(magic, kEnvelopeMagic.size()) != kEnvelopeMagic) {
        return DecodeError::bad_magic;
    }

    const char* id;
    if (!r.bytes(out.request_id.bytes.size(), id)) {
        return DecodeError::truncated;
    }
    std::memcpy(out.request_id.bytes.data(), id, out.request_id.bytes.size());
    if (!r.u64(out.received_at_us) || !r.field(out.source) || !r.field(out.dedup_key) ||
        !r.field(out.method) || !r.field(out.target) || !r.field(out.remote_addr)) {
        return DecodeError::truncated;
    }

    uint32_t count;
    if (!r.u32(count)) {
        return DecodeError::truncated;
    }
    // Each header costs at least 8 bytes (two empty length prefixes), so a larger count cannot be
    // honest; checking it before reserve() keeps a 16-byte input from allocating gigabytes.
    if (count > r.remaining() / 8) {
        return DecodeError::too_many_headers;
    }
    out.headers.clear();
    out.headers.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        HeaderField h;
        if (!r.field(h.name) || !r.field(h.value)) {
            return DecodeError::truncated;
        }
        out.headers.push_back(h);
    }

    if (!r.field(out.body)) {
        return DecodeError::truncated;
    }
    if (r.remaining() != 0) {
        return DecodeError::trailing_bytes;
    }
    return DecodeError::ok;
}

std::string RetryRecord::encode() const {
    check_u32_len(route.size());
    std::string out;
    out.resize(kRetryMagic.size() + 4 + 8 + 4 + route.size() + envelope.size());
    char* p = out.data();
    std::memcpy(p, kRetryMagic.data(), kRetryMagic.size());
    p += kRetryMagic.size();
    put_u32(p, attempt);
    p += 4;
    put_u64(p, first_attempt_us);
    p += 8;
    put_u32(p, static_cast<uint32_t>(route.size()));
    p += 4;
    if (!route.empty()) {
        std::memcpy(p, route.data(), route.size());
        p += route.size();
    }
    if (!envelope.empty()) {
        std::memcpy(p, envelope.data(), envelope.size());
    }
    return out;
}

std::optional<RetryRecord> RetryRecord::decode(std::string_view data) {
    Reader r(data);
    const char* magic;
    if (!r.bytes(kRetryMagic.size(), magic) ||
        std::string_view(magic, kRetryMagic.size()) != kRetryMagic) {
        return std::nullopt;
    }
    RetryRecord rec;
    std::string_view route;
    if (!r.u32(rec.attempt) || !r.u64(rec.first_attempt_us) || !r.field(route)) {
        return std::nullopt;
    }
    // Only the magic is checked here: the worker decodes the envelope itself right after, and a
    // record must round-trip its bytes unchanged even if that later decode would reject them.
    if (!r.rest().starts_with(kEnvelopeMagic)) {
        return std::nullopt;
    }
    rec.route = std::string(route);
    rec.envelope = std::string(r.rest());
    return rec;
}

}  // namespace hookq
