// hookqctl sign: a correctly signed test request for any profile, as a curl command line, so that
// wiring a provider can be checked before the provider is involved.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "shared/signature.h"

namespace hookq {

struct SignRequest {
    VerifierConfig verifier;  // scheme, secrets (first one signs), hmac header, token header/arg
    std::string url;          // where the request goes (Twilio signs it)
    std::string body;
    std::string body_file;  // shown as --data-binary @file when set (body must hold its bytes)
    std::string id;         // delivery id; empty: a fresh UUIDv7
};

// The curl command line, one argument per line, shell-quoted. Throws std::runtime_error when the
// profile cannot sign with what was given (for example no secret).
std::string signed_curl(const SignRequest& req, int64_t now_unix_s);

}  // namespace hookq

namespace hookq::ctl {

struct SignCommand {
    CLI::App* sign = nullptr;

    std::string profile, url, body, body_file, id;
    std::string hmac_header, hmac_alg = "sha256", hmac_enc = "hex", hmac_prefix;
    std::string token_header;
    std::vector<std::string> secrets;

    bool parsed() const { return sign->parsed(); }
};

// Declares the command on `app`: it needs no address, it only prints.
void add_sign_command(CLI::App& app, SignCommand& cmd);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_sign_command(const SignCommand& cmd);

}  // namespace hookq::ctl
