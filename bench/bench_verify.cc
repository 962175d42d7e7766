// verify() per scheme: the cost nginx pays for every request before anything else happens.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <string>
#include <vector>

#include "shared/crypto.h"
#include "shared/signature.h"

namespace hookq {
namespace {

constexpr int64_t kNow = 1700000000;

class BenchRequest : public RequestView {
  public:
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body_bytes, full_url;

    // A linear, case-insensitive scan like nginx's header list walk.
    std::optional<std::string_view> header(std::string_view name) const override {
        for (const auto& [k, v] : headers) {
            if (k.size() != name.size())
                continue;
            size_t i = 0;
            while (i < k.size() && std::tolower(static_cast<unsigned char>(k[i])) ==
                                       std::tolower(static_cast<unsigned char>(name[i]))) {
                ++i;
            }
            if (i == k.size())
                return v;
        }
        return std::nullopt;
    }
    std::string_view body() const override { return body_bytes; }
    std::string_view url() const override { return full_url; }
};

VerifierConfig config(Scheme s) {
    VerifierConfig c;
    c.scheme = s;
    switch (s) {
        case Scheme::standard:
        case Scheme::svix:
            c.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
            break;
        case Scheme::hmac:
            c.secrets = {"hmac-secret"};
            c.hmac = {"X-Signature", HashAlg::sha256, Encoding::hex, "sha256="};
            break;
        case Scheme::moysklad:
        case Scheme::none:
            c.secrets = {"shared-token"};
            break;
        default:
            c.secrets = {"whsec_benchmark_secret"};
            break;
    }
    return c;
}

std::string body_of(size_t size, Scheme s) {
    if (s == Scheme::twilio) {  // a form, as Twilio posts, with ~20 parameters
        std::string b;
        for (int i = 0; b.size() < size; ++i) {
            b += "Param" + std::to_string(i % 20) + "=value+" + std::to_string(i) + "%21&";
        }
        b.resize(size);
        return b;
    }
    std::string b = R"({"id":"evt_1","data":")";
    b.resize(size - 2, 'x');
    return b + "\"}";
}

void BM_Verify(benchmark::State& state, Scheme s, size_t size) {
    const VerifierConfig cfg = config(s);
    std::string error;
    auto v = Verifier::create(cfg, error);
    if (!v) {
        state.SkipWithError(error.c_str());
        return;
    }
    BenchRequest r;
    r.body_bytes = body_of(size, s);
    r.full_url = "https://example.com/hooks/bench?token=shared-token&requestId=1";
    r.headers = {{"Host", "example.com"},
                 {"User-Agent", "bench"},
                 {"Content-Type",
                  s == Scheme::twilio ? "application/x-www-form-urlencoded" : "application/json"},
                 {"Content-Length", std::to_string(size)}};
    for (auto& h : sign_request(cfg, r.body_bytes, r.full_url, kNow, "msg_2Lh3xq9")) {
        r.headers.push_back(h);
    }
    if (v->verify(r, kNow) != Verdict::ok) {
        state.SkipWithError("benchmark request does not verify");
        return;
    }
    for (auto _ : state)
        benchmark::DoNotOptimize(v->verify(r, kNow));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

constexpr size_t k1K = 1024, k256K = 256 * 1024;

BENCHMARK_CAPTURE(BM_Verify, github_1k, Scheme::github, k1K);
BENCHMARK_CAPTURE(BM_Verify, github_256k, Scheme::github, k256K);
BENCHMARK_CAPTURE(BM_Verify, stripe_1k, Scheme::stripe, k1K);
BENCHMARK_CAPTURE(BM_Verify, standard_1k, Scheme::standard, k1K);
BENCHMARK_CAPTURE(BM_Verify, svix_1k, Scheme::svix, k1K);
BENCHMARK_CAPTURE(BM_Verify, shopify_1k, Scheme::shopify, k1K);
BENCHMARK_CAPTURE(BM_Verify, slack_1k, Scheme::slack, k1K);
BENCHMARK_CAPTURE(BM_Verify, twilio_1k, Scheme::twilio, k1K);
BENCHMARK_CAPTURE(BM_Verify, moysklad_1k, Scheme::moysklad, k1K);
BENCHMARK_CAPTURE(BM_Verify, hmac_1k, Scheme::hmac, k1K);
BENCHMARK_CAPTURE(BM_Verify, none_1k, Scheme::none, k1K);

// What the precomputed pads save: OpenSSL's one-shot HMAC(), which in 3.x also fetches and
// allocates an EVP_MAC context on every call.
void BM_OpenSslOneShotHmac(benchmark::State& state) {
    const std::string key = "whsec_benchmark_secret", body = body_of(k1K, Scheme::github);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    for (auto _ : state) {
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &n);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_OpenSslOneShotHmac);

}  // namespace
}  // namespace hookq
