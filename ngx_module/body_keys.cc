#include "ngx_module/body_keys.h"

#include <optional>
#include <vector>

#include "ngx_module/config.h"
#include "ngx_module/module.h"
#include "shared/crypto.h"

namespace hookq::edge {
namespace {

void absent(ngx_http_variable_value_t* v) {
    v->not_found = 1;
}

void present(ngx_http_variable_value_t* v, std::string_view s) {
    v->data = reinterpret_cast<u_char*>(const_cast<char*>(s.data()));
    v->len = static_cast<unsigned>(s.size());
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}

ngx_int_t get_body_sha256(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
    BodyKeys* keys = request_body_keys(r);
    if (keys == nullptr || !keys->ready) {
        absent(v);
        return NGX_OK;
    }
    std::string_view hex = body_sha256(r->pool, *keys);
    if (hex.empty())
        return NGX_ERROR;
    present(v, hex);
    return NGX_OK;
}

// The one pass over the body that gives every hookq_json_var its value for this request.
bool parse_fields(ngx_http_request_t* r, BodyKeys& keys,
                  const std::vector<JsonVar>& vars) noexcept {
    keys.json = static_cast<ngx_str_t*>(ngx_pcalloc(r->pool, sizeof(ngx_str_t) * vars.size()));
    if (keys.json == nullptr && !vars.empty())
        return false;
    keys.json_parsed = true;
    if (keys.body.size() > keys.json_limit) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "hookq: body of %uz bytes is over hookq_json_max_size (%uz): its JSON "
                      "fields are not read",
                      keys.body.size(), keys.json_limit);
        return true;
    }
    try {
        std::vector<JsonPointer> pointers;
        pointers.reserve(vars.size());
        for (const auto& var : vars)
            pointers.push_back(var.pointer);
        std::vector<std::optional<std::string>> values(vars.size());
        extract_json_fields(keys.body, pointers, values);
        for (size_t i = 0; i < vars.size(); i++) {
            if (!values[i])
                continue;
            auto* p = ngx::palloc<u_char>(r->pool, values[i]->size() + 1);
            if (p == nullptr)
                return false;
            ngx_memcpy(p, values[i]->data(), values[i]->size());
            keys.json[i] = {values[i]->size(), p};
        }
        return true;
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq: reading JSON fields: %s",
                      e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq: reading JSON fields failed");
    }
    return false;
}

ngx_int_t get_json_var(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                       uintptr_t index) noexcept {
    BodyKeys* keys = request_body_keys(r);
    if (keys == nullptr || !keys->ready) {
        absent(v);
        return NGX_OK;
    }
    auto* mcf = static_cast<MainConf*>(ngx_http_get_module_main_conf(r, ngx_http_hookq_module));
    if (!keys->json_parsed && !parse_fields(r, *keys, mcf->json_vars))
        return NGX_ERROR;
    const ngx_str_t& s = keys->json[index];
    if (s.data == nullptr) {
        keys->missed = true;
        absent(v);
        return NGX_OK;
    }
    present(v, ngx::view(s));
    return NGX_OK;
}

}  // namespace

std::string_view body_sha256(ngx_pool_t* pool, BodyKeys& keys) noexcept {
    if (keys.sha256.data == nullptr) {
        unsigned char digest[32];
        crypto::sha256(keys.body, digest);
        auto* hex = ngx::palloc<u_char>(pool, 2 * sizeof digest);
        if (hex == nullptr)
            return {};
        ngx_hex_dump(hex, digest, sizeof digest);
        keys.sha256 = {2 * sizeof digest, hex};
    }
    return ngx::view(keys.sha256);
}

ngx_int_t add_body_variables(ngx_conf_t* cf) noexcept {
    ngx_str_t name = ngx_string("hookq_body_sha256");
    ngx_http_variable_t* var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
    if (var == nullptr)
        return NGX_ERROR;
    var->get_handler = get_body_sha256;
    return NGX_OK;
}

char* add_json_var(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* mcf = static_cast<MainConf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    std::string_view name = ngx::view(args[1]), pointer = ngx::view(args[2]);
    auto fail = [cf](const char* fmt, std::string_view a, std::string_view b) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, fmt, a.size(), a.data(), b.size(), b.data());
        return static_cast<char*>(NGX_CONF_ERROR);
    };
    if (name.size() < 2 || name.front() != '$')
        return fail("hookq_json_var: \"%*s\" is not a variable name (e.g. $tenant)%*s", name, {});
    name.remove_prefix(1);
    try {
        std::string error;
        auto p = JsonPointer::parse(pointer, error);
        if (!p)
            return fail("hookq_json_var: invalid JSON Pointer \"%*s\": %*s", pointer, error);
        for (const auto& v : mcf->json_vars)
            if (v.name == name)
                return fail("hookq_json_var: $%*s is declared twice%*s", name, {});
        ngx_str_t ngx_name = {name.size(),
                              reinterpret_cast<u_char*>(const_cast<char*>(name.data()))};
        ngx_http_variable_t* var = ngx_http_add_variable(cf, &ngx_name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == nullptr)
            return static_cast<char*>(NGX_CONF_ERROR);
        var->get_handler = get_json_var;
        var->data = mcf->json_vars.size();
        mcf->json_vars.push_back({std::string(name), std::move(*p)});
    } catch (const std::exception& e) {
        return fail("hookq_json_var: %*s%*s", e.what(), {});
    }
    return NGX_CONF_OK;
}

}  // namespace hookq::edge
