#include "worker/cli/sign.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "shared/secret.h"
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

namespace hookq::ctl {

void add_sign_command(CLI::App& app, SignCommand& c) {
    c.sign = app.add_subcommand("sign", "print a correctly signed test request (curl)");
    c.sign
        ->add_option("--profile", c.profile,
                     "github stripe standard svix shopify slack twilio moysklad hmac none")
        ->required();
    c.sign->add_option("--secret", c.secrets,
                       "file:PATH, env:NAME or literal:VALUE (first one signs)");
    c.sign->add_option("--url", c.url, "where the request goes (Twilio signs the URL)")->required();
    c.sign->add_option("--body", c.body, "the body (default: a small JSON object)");
    c.sign->add_option("--body-file", c.body_file, "read the body from this file");
    c.sign->add_option("--id", c.id, "delivery id (default: a fresh UUIDv7)");
    c.sign->add_option("--header", c.hmac_header, "hmac: the signature header");
    // An unknown value would otherwise sign with the default and fail only at the edge.
    c.sign->add_option("--alg", c.hmac_alg, "hmac: sha1, sha256 or sha512")
        ->check(CLI::IsMember({"sha1", "sha256", "sha512"}));
    c.sign->add_option("--encoding", c.hmac_enc, "hmac: hex or base64")
        ->check(CLI::IsMember({"hex", "base64"}));
    c.sign->add_option("--prefix", c.hmac_prefix, "hmac: prefix before the signature");
    c.sign->add_option("--token-header", c.token_header, "moysklad: send the token in this header");
}

int run_sign_command(const SignCommand& c) {
    SignRequest req;
    auto scheme = scheme_from_name(c.profile);
    if (!scheme) {
        std::fprintf(stderr, "hookqctl sign: unknown profile \"%s\"\n", c.profile.c_str());
        return 2;
    }
    req.verifier.scheme = *scheme;
    for (const auto& spec : c.secrets) {
        std::string error, warning;
        auto s = load_secret(spec, error, &warning);
        if (!s) {
            std::fprintf(stderr, "hookqctl sign: --secret: %s\n", error.c_str());
            return 2;
        }
        if (!warning.empty())
            std::fprintf(stderr, "hookqctl sign: warning: --secret: %s\n", warning.c_str());
        req.verifier.secrets.push_back(*s);
    }
    req.verifier.hmac.header = c.hmac_header;
    req.verifier.hmac.alg = c.hmac_alg == "sha1"     ? HashAlg::sha1
                            : c.hmac_alg == "sha512" ? HashAlg::sha512
                                                     : HashAlg::sha256;
    req.verifier.hmac.encoding = c.hmac_enc == "base64" ? Encoding::base64 : Encoding::hex;
    req.verifier.hmac.prefix = c.hmac_prefix;
    req.verifier.token_header = c.token_header;
    req.url = c.url;
    req.id = c.id;
    req.body = c.body.empty() ? R"({"hookq":"test"})" : c.body;
    if (!c.body_file.empty()) {
        std::ifstream in(c.body_file, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "hookqctl sign: cannot read %s\n", c.body_file.c_str());
            return 2;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        req.body = ss.str();
        req.body_file = c.body_file;
    }
    std::fputs(signed_curl(req, static_cast<int64_t>(std::time(nullptr))).c_str(), stdout);
    return 0;
}

}  // namespace hookq::ctl
