// Keys from the body: $hookq_body_sha256 and the variables that `hookq_json_var $name /pointer`
// declares, for hookq_dedup_key (e.g. "$tenant:$action:$hookq_body_sha256"). They have values only
// inside a hookq location once its body is read and verified; each is worked out at most once per
// request, and the JSON only when a location asks for one of its fields, up to hookq_json_max_size.
#pragma once

#include <string>
#include <string_view>

#include "ngx_module/ngx.h"
#include "shared/json_fields.h"

namespace hookq::edge {

struct JsonVar {
    std::string name;  // without the "$"
    JsonPointer pointer;
};

// Per request, in the hookq request context.
struct BodyKeys {
    std::string_view body;  // set once the body is verified
    bool ready = false;
    size_t json_limit = 0;
    ngx_str_t sha256{};         // computed on first use
    ngx_str_t* json = nullptr;  // one per hookq_json_var once parsed; data == nullptr: no value
    bool json_parsed = false;
    // Set when a body variable had no value: a key made of absent fields would make distinct
    // webhooks look the same, so the handler falls back to the body's hash instead.
    bool missed = false;
};

// The request's BodyKeys (handler.cc), or nullptr outside a hookq request.
BodyKeys* request_body_keys(ngx_http_request_t* r) noexcept;

// preconfiguration: $hookq_body_sha256.
ngx_int_t add_body_variables(ngx_conf_t* cf) noexcept;
// hookq_json_var $name /json/pointer (http level).
char* add_json_var(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// The body's SHA-256 in hex, cached in `keys`; {} when out of memory.
std::string_view body_sha256(ngx_pool_t* pool, BodyKeys& keys) noexcept;

}  // namespace hookq::edge
