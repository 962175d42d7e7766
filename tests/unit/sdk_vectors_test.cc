// Requests signed by the providers' official SDKs (tests/sdk/make-vectors.mjs, run by the ctest
// fixture `sdk_vectors`) must get exactly the verdict the generator expects. A missing or short
// file fails: silently skipping would hide that nothing was checked.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "shared/crypto.h"
#include "shared/signature.h"
#include "tests/unit/fake_request.h"

namespace hookq {
namespace {

// make-vectors.mjs writes 53 items today; fewer than this means a generator section went missing.
constexpr size_t kMinItems = 50;

using VectorRequest = testing::FakeRequest;

std::string vectors_path() {
    if (const char* env = std::getenv("HOOKQ_SDK_VECTORS"); env != nullptr && *env != '\0') {
        return env;
    }
#ifdef HOOKQ_SDK_VECTORS
    return HOOKQ_SDK_VECTORS;
#else
    return "";
#endif
}

TEST(SdkVectors, EveryItemGetsTheExpectedVerdict) {
    const std::string path = vectors_path();
    std::ifstream in(path);
    ASSERT_TRUE(in)
        << "SDK vectors not found at '" << path
        << "'; run: node tests/sdk/make-vectors.mjs <out.json> (ctest fixture sdk_vectors)";
    const nlohmann::json items = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(items.is_array()) << path << " is not a JSON array";
    ASSERT_GE(items.size(), kMinItems) << path << " is incomplete";

    std::map<std::string, int> ok_per_scheme;
    std::set<std::string> names;
    for (const auto& item : items) {
        const std::string name = item.value("name", item.value("scheme", "?"));
        SCOPED_TRACE(name);
        EXPECT_TRUE(names.insert(name).second) << "duplicate item name";
        auto scheme = scheme_from_name(item.at("scheme").get<std::string>());
        ASSERT_TRUE(scheme.has_value());
        VerifierConfig cfg;
        cfg.scheme = *scheme;
        cfg.secrets = {item.at("secret").get<std::string>()};
        std::string error;
        auto verifier = Verifier::create(cfg, error);
        ASSERT_NE(verifier, nullptr) << error;

        VectorRequest req;
        for (const auto& [k, v] : item.at("headers").items())
            req.headers.emplace_back(k, v);
        auto body = crypto::base64_decode(item.at("body_b64").get<std::string>());
        ASSERT_TRUE(body.has_value());
        req.body_bytes = *body;
        req.full_url = item.value("url", "");

        const Verdict got = verifier->verify(req, item.at("timestamp").get<int64_t>());
        EXPECT_EQ(to_string(got), item.at("expect").get<std::string>());
        if (got == Verdict::ok)
            ++ok_per_scheme[item.at("scheme").get<std::string>()];
    }
    for (const char* s : {"github", "stripe", "standard", "svix", "twilio"}) {
        EXPECT_GE(ok_per_scheme[s], 3) << "too few accepted " << s << " vectors";
    }
}

}  // namespace
}  // namespace hookq
