// Micro benchmarks for the per-request work of the edge (encode, id) and the worker (decode).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "shared/envelope.h"
#include "shared/uuid.h"

namespace {

hookq::Envelope typical() {
    hookq::Envelope e;
    hookq::Uuid7Generator g(1);
    e.request_id = g.next(1'700'000'000'000ULL);
    e.received_at_us = 1'700'000'000'000'000ULL;
    e.source = "github";
    e.dedup_key = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    e.method = "POST";
    e.target = "/hooks/github";
    e.remote_addr = "140.82.115.10";
    // Twelve headers, the order of magnitude a GitHub or Stripe delivery carries.
    e.headers = {
        {"Host", "hooks.example.com"},
        {"User-Agent", "GitHub-Hookshot/044aadd"},
        {"Content-Type", "application/json"},
        {"Content-Length", "1024"},
        {"Accept", "*/*"},
        {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
        {"X-GitHub-Event", "pull_request"},
        {"X-GitHub-Hook-ID", "292430182"},
        {"X-GitHub-Hook-Installation-Target-ID", "79929171"},
        {"X-GitHub-Hook-Installation-Target-Type", "repository"},
        {"X-Hub-Signature", "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6"},
        {"X-Hub-Signature-256",
         "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c"},
    };
    e.body.assign(1024, 'x');
    return e;
}

void BM_EnvelopeWriterEncode(benchmark::State& state) {
    const hookq::Envelope e = typical();
    size_t n = hookq::EnvelopeWriter::fixed_size() + hookq::EnvelopeWriter::count_size();
    for (const std::string* f :
         {&e.source, &e.dedup_key, &e.method, &e.target, &e.remote_addr, &e.body}) {
        n += hookq::EnvelopeWriter::field_size(f->size());
    }
    for (const auto& [k, v] : e.headers) {
        n += hookq::EnvelopeWriter::field_size(k.size()) +
             hookq::EnvelopeWriter::field_size(v.size());
    }
    // Preallocated, as the edge writes into the request pool.
    std::vector<char> buf(n);
    for (auto _ : state) {
        hookq::EnvelopeWriter w(buf.data());
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
        benchmark::DoNotOptimize(w.end());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_EnvelopeWriterEncode);

void BM_EnvelopeEncodeOwned(benchmark::State& state) {
    const hookq::Envelope e = typical();
    for (auto _ : state) {
        std::string s = e.encode();
        benchmark::DoNotOptimize(s.data());
    }
}
BENCHMARK(BM_EnvelopeEncodeOwned);

void BM_EnvelopeDecode(benchmark::State& state) {
    const std::string bytes = typical().encode();
    hookq::EnvelopeView v;  // reused, as a worker loop would
    for (auto _ : state) {
        auto err = hookq::decode_envelope(bytes, v);
        benchmark::DoNotOptimize(err);
        benchmark::DoNotOptimize(v.body.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_EnvelopeDecode);

void BM_Uuid7Next(benchmark::State& state) {
    hookq::Uuid7Generator g;
    uint64_t ms = 1'700'000'000'000ULL;
    uint64_t i = 0;
    for (auto _ : state) {
        // A new millisecond every 64 ids, so both the counter and the new-ms path are measured.
        hookq::Uuid u = g.next(ms + (i++ >> 6));
        benchmark::DoNotOptimize(u);
    }
}
BENCHMARK(BM_Uuid7Next);

void BM_UuidFormat(benchmark::State& state) {
    hookq::Uuid7Generator g(1);
    const hookq::Uuid u = g.next(1'700'000'000'000ULL);
    char buf[hookq::Uuid::kTextSize];
    for (auto _ : state) {
        u.format(buf);
        benchmark::DoNotOptimize(buf);
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_UuidFormat);

}  // namespace
