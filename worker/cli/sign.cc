#include "worker/cli/sign.h"

#include <chrono>
#include <stdexcept>

#include "shared/uuid.h"

namespace hookq {
namespace {

// POSIX shell single quotes: nothing inside is special but the quote itself.
std::string quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

}  // namespace

std::string signed_curl(const SignRequest& req, int64_t now_unix_s) {
    std::string id = req.id;
    if (id.empty()) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        id = Uuid7Generator().next(static_cast<uint64_t>(ms.count())).str();
    }
    std::string url = req.url;
    Scheme scheme = req.verifier.scheme;
    if (scheme == Scheme::paypal)
        throw std::runtime_error(
            "cannot sign a paypal request: PayPal signs with its own certificate's private key "
            "(tests/integration/test_edge_paypal.py signs with a local test CA instead)");
    if (scheme == Scheme::moysklad && req.verifier.token_header.empty() &&
        !req.verifier.secrets.empty()) {
        // MoySklad carries its token (and its request id) in the query string.
        url += (url.find('?') == std::string::npos ? "?" : "&") + req.verifier.token_arg + "=" +
               req.verifier.secrets.front() + "&requestId=" + id;
    }
    auto headers = sign_request(req.verifier, req.body, url, now_unix_s, id);
    bool signs = scheme != Scheme::none && scheme != Scheme::moysklad;
    if (signs && headers.empty())
        throw std::runtime_error(
            "cannot sign a " + std::string(scheme_name(scheme)) +
            " request: give its --secret (a whsec_ secret for standard and svix)");
    bool has_type = false;
    std::string out = "curl -sS -i -X POST " + quote(url);
    for (const auto& [name, value] : headers) {
        has_type |= name == "Content-Type";
        out += " \\\n  -H " + quote(name + ": " + value);
    }
    if (!has_type)
        out += " \\\n  -H " + quote("Content-Type: application/json");
    out += " \\\n  --data-binary " +
           (req.body_file.empty() ? quote(req.body) : quote("@" + req.body_file));
    return out + "\n";
}

}  // namespace hookq
