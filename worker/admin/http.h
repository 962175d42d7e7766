// What every admin endpoint answers with, and what it reads off libmicrohttpd's connection: kept
// apart from the server and the endpoints so that both speak the same errors.
#pragma once

#include <microhttpd.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/ops/common.h"

namespace hookq::admin {

using Json = nlohmann::ordered_json;

struct HttpReply {
    unsigned status = 200;
    Json body;
    std::optional<std::string> text;     // sent as it is instead of the JSON body
    const char* content_type = nullptr;  // of `text`; nullptr: Prometheus's text/plain
    std::vector<std::pair<std::string, std::string>> headers;
};

// The operation's answer as the body.
HttpReply ok(Json body, unsigned status = 200);
// {"error": err, "detail": detail}: `err` is the status's name, `detail` says why and what to do.
HttpReply error(unsigned status, std::string err, std::string detail);
// 405 with the Allow header.
HttpReply method_not_allowed(const std::string& allow, std::string detail);
// An operation's refusal as its answer: 404, 409 or 400, with the operation's reason.
HttpReply refusal(const ops::Error& e);
// Redis or PostgreSQL failed mid-operation (ctl::must / must_query): 503, logged.
HttpReply backend_failed(const std::runtime_error& e);

// A request header, "" when absent.
std::string header(MHD_Connection* c, const char* name);
// The peer's address as text: "unix" for the unix socket, "" when unknown.
std::string client_address(MHD_Connection* c);

}  // namespace hookq::admin
