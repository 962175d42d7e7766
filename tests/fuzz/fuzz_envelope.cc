// libFuzzer target: the envelope and retry record decoders see bytes straight out of Redis, which
// any process with write access to it can fill. They must never crash, read out of bounds or
// allocate without bound, and whatever they accept must be exactly what the encoders produce.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shared/envelope.h"

namespace {

// abort() rather than assert(): RelWithDebInfo builds define NDEBUG.
void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

void fuzz_envelope(std::string_view data) {
    hookq::EnvelopeView v;
    const hookq::DecodeError err = hookq::decode_envelope(data, v);
    check(!hookq::to_string(err).empty());
    if (err != hookq::DecodeError::ok) {
        return;
    }
    // The format has exactly one encoding per value, so decode-then-encode is the identity.
    const hookq::Envelope owned = v.to_owned();
    check(owned.encode() == data);
    // Lookups walk every header; exercise them on whatever names the input carries.
    for (const auto& h : v.headers) {
        check(v.header(h.name).data() != nullptr || h.value.empty());
        check(owned.header(h.name).size() == v.header(h.name).size());
    }
}

void fuzz_retry(std::string_view data) {
    const auto rec = hookq::RetryRecord::decode(data);
    if (!rec) {
        return;
    }
    check(rec->envelope.compare(0, hookq::kEnvelopeMagic.size(), hookq::kEnvelopeMagic) == 0);
    check(rec->encode() == data);
    // A valid retry record may still carry a broken envelope; decoding it must be just as safe.
    fuzz_envelope(rec->envelope);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    fuzz_envelope(in);
    fuzz_retry(in);
    // Let the fuzzer reach deep envelope states without rediscovering the magic each time: the
    // same bytes, framed as a record and as an envelope body after a valid header.
    std::string framed = "HQE1";
    framed.append(in);
    fuzz_envelope(framed);
    fuzz_retry("HQR1" + std::string(16, '\0') + framed);
    return 0;
}
