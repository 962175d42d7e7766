#include "shared/envelope.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace hookq {
namespace {

using namespace std::string_literals;

Envelope sample() {
    Envelope e;
    e.request_id = *Uuid::parse("01890a5d-ac96-774b-bcce-b302099a8057");
    e.received_at_us = 1'700'000'000'123'456ULL;
    e.source = "github";
    e.dedup_key = "d3b07384-d113-4ec6";
    e.method = "POST";
    e.target = "/hooks/github?x=1";
    e.remote_addr = "192.0.2.7";
    e.headers = {{"Content-Type", "application/json"},
                 {"X-Hub-Signature-256", "sha256=abcd"},
                 {"X-GitHub-Delivery", "d3b07384-d113-4ec6"}};
    e.body = R"({"action":"opened"})";
    return e;
}

void expect_same(const Envelope& a, const Envelope& b) {
    EXPECT_EQ(a.request_id, b.request_id);
    EXPECT_EQ(a.received_at_us, b.received_at_us);
    EXPECT_EQ(a.source, b.source);
    EXPECT_EQ(a.dedup_key, b.dedup_key);
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.remote_addr, b.remote_addr);
    EXPECT_EQ(a.headers, b.headers);
    EXPECT_EQ(a.body, b.body);
}

Envelope round_trip(const Envelope& e) {
    const std::string bytes = e.encode();
    EnvelopeView v;
    EXPECT_EQ(decode_envelope(bytes, v), DecodeError::ok);
    Envelope back = v.to_owned();
    EXPECT_EQ(back.encode(), bytes);
    return back;
}

TEST(EnvelopeCodec, ExactWireLayout) {
    Envelope e;
    e.request_id.bytes[0] = 0xab;
    e.request_id.bytes[15] = 0xcd;
    e.received_at_us = 0x0102030405060708ULL;
    e.source = "s";
    e.method = "GET";
    e.headers = {{"A", "bc"}};
    e.body = "xyz";

    std::string want = "HQE1"s;
    want += "\xab"s + std::string(14, '\0') + "\xcd"s;
    want += "\x08\x07\x06\x05\x04\x03\x02\x01"s;
    want += "\x01\0\0\0s"s;              // source
    want += "\0\0\0\0"s;                 // dedup key (empty)
    want += "\x03\0\0\0GET"s;            // method
    want += "\0\0\0\0"s;                 // target (empty)
    want += "\0\0\0\0"s;                 // remote addr (empty)
    want += "\x01\0\0\0"s;               // header count
    want += "\x01\0\0\0A\x02\0\0\0bc"s;  // one header
    want += "\x03\0\0\0xyz"s;            // body
    EXPECT_EQ(e.encode(), want);
}

TEST(EnvelopeCodec, RoundTripAndViewsPointIntoBuffer) {
    const Envelope e = sample();
    const std::string bytes = e.encode();
    EnvelopeView v;
    ASSERT_EQ(decode_envelope(bytes, v), DecodeError::ok);
    EXPECT_EQ(v.source, "github");
    EXPECT_EQ(v.body, e.body);
    EXPECT_GE(v.body.data(), bytes.data());
    EXPECT_LE(v.body.data() + v.body.size(), bytes.data() + bytes.size());
    expect_same(v.to_owned(), e);
    EXPECT_EQ(v.to_owned().encode(), bytes);
}

TEST(EnvelopeCodec, WriterMatchesEncode) {
    const Envelope e = sample();
    size_t n = EnvelopeWriter::fixed_size() + EnvelopeWriter::count_size();
    for (const std::string* f :
         {&e.source, &e.dedup_key, &e.method, &e.target, &e.remote_addr, &e.body}) {
        n += EnvelopeWriter::field_size(f->size());
    }
    for (const auto& [k, v] : e.headers) {
        n += EnvelopeWriter::field_size(k.size()) + EnvelopeWriter::field_size(v.size());
    }
    std::string buf(n, '\xee');
    EnvelopeWriter w(buf.data());
    w.begin(e.request_id, e.received_at_us);
    w.field(e.source);
    w.field(e.dedup_key);
    w.field(e.method);
    w.field(e.target);
    w.field(e.remote_addr);
    w.u32(static_cast<uint32_t>(e.headers.size()));
    for (const auto& [k, v] : e.headers) {
        w.field(k);
        w.field(v);
    }
    w.field(e.body);
    EXPECT_EQ(w.end(), buf.data() + buf.size());
    EXPECT_EQ(buf, e.encode());
}

TEST(EnvelopeCodec, BinaryBodyIsByteExact) {
    Envelope e = sample();
    e.body = "\0\xff\xfe{\"a\":\"\xc3\x28\"}\0\0\xed\xa0\x80 \r\n"s;  // NULs, invalid UTF-8, CRLF
    e.headers.push_back({"X-Bin", "\0\x80"s});
    Envelope back = round_trip(e);
    EXPECT_EQ(back.body, e.body);
    EXPECT_EQ(back.body.size(), e.body.size());
    EXPECT_EQ(back.header("x-bin"), "\0\x80"s);
}

TEST(EnvelopeCodec, LargeBody256K) {
    Envelope e = sample();
    e.body.resize(256 * 1024);
    for (size_t i = 0; i < e.body.size(); ++i) {
        e.body[i] = static_cast<char>((i * 131) ^ (i >> 8));
    }
    expect_same(round_trip(e), e);
}

TEST(EnvelopeCodec, ZeroHeadersAndEmptyFields) {
    Envelope e;  // every field empty, zero headers, zero id and timestamp
    const std::string bytes = e.encode();
    EXPECT_EQ(bytes.size(), EnvelopeWriter::fixed_size() + 6 * 4 + 4);
    expect_same(round_trip(e), e);

    Envelope h;
    h.headers = {{"", ""}, {"X-Empty", ""}};
    Envelope back = round_trip(h);
    ASSERT_EQ(back.headers.size(), 2u);
    EXPECT_EQ(back.headers[0].first, "");
    EXPECT_EQ(back.header("x-empty"), "");
}

TEST(EnvelopeCodec, HeaderLookupIsCaseInsensitive) {
    const Envelope e = sample();
    const std::string bytes = e.encode();
    EnvelopeView v;
    ASSERT_EQ(decode_envelope(bytes, v), DecodeError::ok);
    for (std::string_view name : {"x-github-delivery", "X-GITHUB-DELIVERY", "X-GitHub-Delivery"}) {
        EXPECT_EQ(v.header(name), "d3b07384-d113-4ec6") << name;
        EXPECT_EQ(e.header(name), "d3b07384-d113-4ec6") << name;
    }
    EXPECT_EQ(v.header("content-type"), "application/json");
    EXPECT_EQ(v.header("X-Missing"), "");
    EXPECT_EQ(e.header("X-Missing"), "");
    // Same length, differs only in a non-letter that ASCII folding must not touch.
    EXPECT_EQ(v.header("x-github_delivery"), "");
}

TEST(EnvelopeCodec, FirstDuplicateHeaderWins) {
    Envelope e = sample();
    e.headers = {{"X-A", "1"}, {"x-a", "2"}};
    EXPECT_EQ(e.header("X-a"), "1");
    const std::string bytes = e.encode();
    EnvelopeView v;
    ASSERT_EQ(decode_envelope(bytes, v), DecodeError::ok);
    EXPECT_EQ(v.header("X-a"), "1");
}

TEST(EnvelopeDecode, EveryPrefixFails) {
    const std::string bytes = sample().encode();
    for (size_t n = 0; n < bytes.size(); ++n) {
        EnvelopeView v;
        const DecodeError err = decode_envelope(std::string_view(bytes).substr(0, n), v);
        EXPECT_NE(err, DecodeError::ok) << "prefix " << n;
        // A cut-off envelope is either plainly truncated or, once too few bytes remain for the
        // declared header count, caught by the count cap; never mistaken for another kind.
        EXPECT_TRUE(err == DecodeError::truncated || err == DecodeError::too_many_headers)
            << "prefix " << n << ": " << to_string(err);
    }
}

TEST(EnvelopeDecode, EveryPrefixOfEmptyEnvelopeIsTruncated) {
    const std::string bytes = Envelope{}.encode();
    for (size_t n = 0; n < bytes.size(); ++n) {
        EnvelopeView v;
        EXPECT_EQ(decode_envelope(std::string_view(bytes).substr(0, n), v), DecodeError::truncated)
            << "prefix " << n;
    }
}

TEST(EnvelopeDecode, TrailingBytesRejected) {
    for (const Envelope& e : {sample(), Envelope{}}) {
        std::string bytes = e.encode();
        for (char extra : {'\0', 'x', '\xff'}) {
            EnvelopeView v;
            EXPECT_EQ(decode_envelope(bytes + extra, v), DecodeError::trailing_bytes);
        }
        EnvelopeView v;
        EXPECT_EQ(decode_envelope(bytes + bytes, v), DecodeError::trailing_bytes);
    }
}

TEST(EnvelopeDecode, BadMagic) {
    std::string bytes = sample().encode();
    for (size_t i = 0; i < 4; ++i) {
        std::string b = bytes;
        b[i] ^= 0x20;
        EnvelopeView v;
        EXPECT_EQ(decode_envelope(b, v), DecodeError::bad_magic) << i;
    }
    EnvelopeView v;
    EXPECT_EQ(decode_envelope("HQE2", v), DecodeError::bad_magic);
    EXPECT_EQ(decode_envelope("X", v), DecodeError::bad_magic);
    EXPECT_EQ(decode_envelope("{\"json\":true}", v), DecodeError::bad_magic);
    EXPECT_EQ(decode_envelope("HQ", v), DecodeError::truncated);
}

// Offset of the header count in an envelope with the given five fixed fields.
size_t count_offset(const Envelope& e) {
    return EnvelopeWriter::fixed_size() + 5 * 4 + e.source.size() + e.dedup_key.size() +
           e.method.size() + e.target.size() + e.remote_addr.size();
}

TEST(EnvelopeDecode, HostileHeaderCountDoesNotAllocate) {
    Envelope e = sample();
    e.headers.clear();
    e.body.clear();
    std::string bytes = e.encode();
    const size_t off = count_offset(e);
    for (uint32_t count : {0xffffffffu, 0x10000000u, 2u, 1u}) {
        std::string b = bytes;
        std::memcpy(&b[off], &count, 4);  // tests run on little-endian hosts
        EnvelopeView v;
        // Only the 4-byte body prefix remains, less than the 8 bytes one header needs.
        EXPECT_EQ(decode_envelope(b, v), DecodeError::too_many_headers) << count;
    }
}

TEST(EnvelopeDecode, HeaderCountAtTheCapIsTruncatedNotAccepted) {
    // count == remaining/8 passes the cap, then the missing body prefix is caught.
    Envelope e;
    e.headers = {{"", ""}};
    std::string bytes = e.encode();
    bytes.resize(bytes.size() - 4);  // drop the body length prefix
    EnvelopeView v;
    EXPECT_EQ(decode_envelope(bytes, v), DecodeError::truncated);
}

TEST(EnvelopeDecode, HostileFieldLengths) {
    const Envelope e = sample();
    const std::string bytes = e.encode();
    // Each length prefix, rewritten to values that overrun the buffer, including ones that would
    // wrap a pointer (p + len) on 64-bit if the decoder advanced before checking.
    size_t off = EnvelopeWriter::fixed_size();
    std::vector<size_t> prefixes;
    for (const std::string* f : {&e.source, &e.dedup_key, &e.method, &e.target, &e.remote_addr}) {
        prefixes.push_back(off);
        off += 4 + f->size();
    }
    off += 4;  // header count
    for (const auto& [k, v] : e.headers) {
        prefixes.push_back(off);
        off += 4 + k.size();
        prefixes.push_back(off);
        off += 4 + v.size();
    }
    prefixes.push_back(off);  // body
    ASSERT_EQ(off + 4 + e.body.size(), bytes.size());

    for (size_t p : prefixes) {
        const uint32_t actual = static_cast<uint32_t>(static_cast<uint8_t>(bytes[p])) |
                                static_cast<uint32_t>(static_cast<uint8_t>(bytes[p + 1])) << 8;
        for (uint32_t len : {0xffffffffu, 0x80000000u, static_cast<uint32_t>(bytes.size()),
                             static_cast<uint32_t>(bytes.size() - p - 4 + 1)}) {
            std::string b = bytes;
            std::memcpy(&b[p], &len, 4);
            EnvelopeView v;
            EXPECT_NE(decode_envelope(b, v), DecodeError::ok) << "prefix at " << p;
        }
        // One less than declared leaves bytes over (or shifts the parse): never ok.
        if (actual > 0) {
            std::string b = bytes;
            const uint32_t shorter = actual - 1;
            std::memcpy(&b[p], &shorter, 4);
            EnvelopeView v;
            EXPECT_NE(decode_envelope(b, v), DecodeError::ok) << "prefix at " << p;
        }
    }
}

TEST(EnvelopeDecode, ReusedViewIsReset) {
    Envelope a = sample();
    Envelope b;
    b.headers = {{"Only", "one"}};
    const std::string ba = a.encode(), bb = b.encode();
    EnvelopeView v;
    ASSERT_EQ(decode_envelope(ba, v), DecodeError::ok);
    ASSERT_EQ(decode_envelope(bb, v), DecodeError::ok);
    ASSERT_EQ(v.headers.size(), 1u);
    EXPECT_EQ(v.header("only"), "one");
}

TEST(EnvelopeDecode, ErrorNames) {
    EXPECT_EQ(to_string(DecodeError::ok), "ok");
    EXPECT_EQ(to_string(DecodeError::bad_magic), "bad_magic");
    EXPECT_EQ(to_string(DecodeError::truncated), "truncated");
    EXPECT_EQ(to_string(DecodeError::too_many_headers), "too_many_headers");
    EXPECT_EQ(to_string(DecodeError::trailing_bytes), "trailing_bytes");
}

TEST(RetryRecordCodec, RoundTrip) {
    RetryRecord r;
    r.route = "billing-app";
    r.attempt = 3;
    r.first_attempt_us = 1'700'000'000'000'001ULL;
    r.envelope = sample().encode();
    const std::string bytes = r.encode();
    EXPECT_EQ(bytes.substr(0, 4), "HQR1");
    EXPECT_EQ(bytes.substr(4, 4), "\x03\0\0\0"s);
    auto back = RetryRecord::decode(bytes);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->route, r.route);
    EXPECT_EQ(back->attempt, 3u);
    EXPECT_EQ(back->first_attempt_us, r.first_attempt_us);
    EXPECT_EQ(back->envelope, r.envelope);
    EXPECT_EQ(back->encode(), bytes);
    EnvelopeView v;
    EXPECT_EQ(decode_envelope(back->envelope, v), DecodeError::ok);
}

TEST(RetryRecordCodec, EmptyRoute) {
    RetryRecord r;
    r.envelope = Envelope{}.encode();
    auto back = RetryRecord::decode(r.encode());
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->route, "");
    EXPECT_EQ(back->envelope, r.envelope);
}

TEST(RetryRecordCodec, MalformedIsNullopt) {
    RetryRecord r;
    r.route = "app";
    r.attempt = 2;
    r.envelope = sample().encode();
    const std::string bytes = r.encode();
    const size_t env_off = 4 + 4 + 8 + 4 + r.route.size();
    // Every prefix that cuts before the inner magic is complete.
    for (size_t n = 0; n < env_off + 4; ++n) {
        EXPECT_FALSE(RetryRecord::decode(std::string_view(bytes).substr(0, n))) << n;
    }
    std::string b = bytes;
    b[0] = 'X';
    EXPECT_FALSE(RetryRecord::decode(b));
    b = bytes;
    b[env_off] = 'X';  // inner envelope magic
    EXPECT_FALSE(RetryRecord::decode(b));
    b = bytes;
    const uint32_t huge = 0xffffffffu;
    std::memcpy(&b[16], &huge, 4);  // route length
    EXPECT_FALSE(RetryRecord::decode(b));
    EXPECT_FALSE(RetryRecord::decode(r.envelope));  // a bare envelope is not a retry record
}

}  // namespace
}  // namespace hookq
