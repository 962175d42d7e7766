// The hookq_* directives: parsing, validation (every error names the directive and the value, so
// `nginx -t` says what is wrong), and merging into what the request path reads.
#include "ngx_module/config.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <new>

#include "ngx_module/handler.h"
#include "ngx_module/module.h"
#include "ngx_module/status.h"
#include "shared/redis_keys.h"
#include "shared/redis_slot.h"
#include "shared/secret.h"
#include "shared/units.h"

namespace hookq::edge {
namespace {

constexpr ngx_msec_t kDefaultRedisTimeout = 200;
constexpr ngx_msec_t kDefaultConnectTimeout = 1000;
// Replication to a replica on the same network takes a fraction of a millisecond to a few.
constexpr ngx_msec_t kDefaultWaitTimeout = 100;
constexpr time_t kDefaultDedupTtl = 72 * 3600;
constexpr size_t kDefaultMaxBody = 1024 * 1024;
// Parsing runs on nginx's event loop: 64 KB is a fraction of a millisecond, and more than most
// providers' events.
constexpr size_t kDefaultJsonMax = 64 * 1024;
constexpr time_t kDefaultRetryAfter = 5;
constexpr time_t kDefaultTolerance = 300;

std::string_view arg(ngx_conf_t* cf, ngx_uint_t i) {
    return ngx::view(static_cast<ngx_str_t*>(cf->args->elts)[i]);
}

char* fail(ngx_conf_t* cf, const char* fmt, std::string_view a, std::string_view b = {}) {
    // nginx's "%*s" takes a size_t length and then the bytes.
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, fmt, a.size(), a.data(), b.size(), b.data());
    return static_cast<char*>(NGX_CONF_ERROR);
}

void warn(ngx_conf_t* cf, const char* fmt, std::string_view a, std::string_view b = {}) {
    ngx_conf_log_error(NGX_LOG_WARN, cf, 0, fmt, a.size(), a.data(), b.size(), b.data());
}

std::string_view directive(ngx_conf_t* cf) {
    return arg(cf, 0);
}

bool parse_uint(std::string_view s, uint64_t& out) {
    if (s.empty())
        return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// Resolves at configuration time; numeric results only, so hiredis never resolves on the loop.
bool resolve(ngx_conf_t* cf, std::string_view host, std::string& numeric) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string h(host);
    int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: cannot resolve \"%s\": %s",
                           static_cast<ngx_str_t*>(cf->args->elts), h.c_str(), gai_strerror(rc));
        return false;
    }
    char buf[INET6_ADDRSTRLEN];
    const void* addr =
        res->ai_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr)
            : &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, addr, buf, sizeof buf);
    freeaddrinfo(res);
    numeric = buf;
    return true;
}

// host:port, [v6]:port or (when allowed) unix:/path, into `a`; fails `nginx -t` naming the
// directive.
char* parse_address(ngx_conf_t* cf, std::string_view target, RedisAddress& a, bool allow_unix) {
    if (target.starts_with("unix:")) {
        if (!allow_unix)
            return fail(cf, "%*s: \"%*s\": cluster nodes are host:port, not unix sockets",
                        directive(cf), target);
        a.unix_path = target.substr(5);
        if (a.unix_path.empty())
            return fail(cf, "%*s: empty unix socket path in \"%*s\"", directive(cf), target);
        a.display = target;
        return NGX_CONF_OK;
    }
    std::string_view host = target;
    std::string_view port = "6379";
    if (target.starts_with("[")) {  // [::1]:6379
        auto close = target.find(']');
        if (close == std::string_view::npos)
            return fail(cf, "%*s: invalid address \"%*s\"", directive(cf), target);
        host = target.substr(1, close - 1);
        if (close + 1 < target.size()) {
            if (target[close + 1] != ':')
                return fail(cf, "%*s: invalid address \"%*s\"", directive(cf), target);
            port = target.substr(close + 2);
        }
    } else if (auto colon = target.rfind(':'); colon != std::string_view::npos) {
        host = target.substr(0, colon);
        port = target.substr(colon + 1);
    }
    uint64_t p = 0;
    if (host.empty() || !parse_uint(port, p) || p == 0 || p > 65535)
        return fail(cf,
                    allow_unix ? "%*s: invalid address \"%*s\" (want host:port or unix:/path)"
                               : "%*s: invalid address \"%*s\" (want host:port)",
                    directive(cf), target);
    if (!resolve(cf, host, a.host))
        return static_cast<char*>(NGX_CONF_ERROR);
    a.port = static_cast<int>(p);
    a.display = a.host.find(':') != std::string::npos ? "[" + a.host + "]:" + std::to_string(a.port)
                                                      : a.host + ":" + std::to_string(a.port);
    if (allow_unix)
        a.display = std::string(target);  // as the operator wrote it, for hookq_redis's logs
    return NGX_CONF_OK;
}

char* load_password(ngx_conf_t* cf, std::string_view opt, std::string& out) {
    std::string error, warning;
    auto pw = load_secret("file:" + std::string(opt.substr(14)), error, &warning);
    if (!pw)
        return fail(cf, "%*s: %*s", directive(cf), error);
    if (!warning.empty())
        warn(cf, "%*s: %*s", directive(cf), warning);
    out = std::move(*pw);
    return NGX_CONF_OK;
}

// hookq_redis 127.0.0.1:6379 [db=N] [password_file=PATH] | unix:/path [...]
char* set_redis(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* mcf = static_cast<MainConf*>(conf);
    if (mcf->cluster)
        return fail(cf, "%*s: \"hookq_redis_cluster\" is set already: one or the other",
                    directive(cf));
    if (mcf->redis_set)
        return const_cast<char*>("is duplicate");
    try {
        RedisAddress& a = mcf->redis;
        if (char* rc = parse_address(cf, arg(cf, 1), a, true); rc != NGX_CONF_OK)
            return rc;
        for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
            std::string_view opt = arg(cf, i);
            if (opt.starts_with("db=")) {
                uint64_t db = 0;
                if (!parse_uint(opt.substr(3), db) || db > 65535)
                    return fail(cf, "%*s: invalid \"%*s\"", directive(cf), opt);
                a.db = static_cast<int>(db);
            } else if (opt.starts_with("password_file=")) {
                if (char* rc = load_password(cf, opt, a.password); rc != NGX_CONF_OK)
                    return rc;
            } else {
                return fail(cf, "%*s: unknown parameter \"%*s\" (want db= or password_file=)",
                            directive(cf), opt);
            }
        }
        mcf->redis_set = true;
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

// hookq_redis_cluster host:port [host:port ...] [password_file=PATH]: seed nodes, asked for the
// slot map (CLUSTER SLOTS). A cluster has no databases other than 0, so no db=.
char* set_redis_cluster(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* mcf = static_cast<MainConf*>(conf);
    if (mcf->cluster)
        return const_cast<char*>("is duplicate");
    if (mcf->redis_set)
        return fail(cf, "%*s: \"hookq_redis\" is set already: one or the other", directive(cf));
    try {
        std::string password;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            std::string_view opt = arg(cf, i);
            if (opt.starts_with("password_file=")) {
                if (char* rc = load_password(cf, opt, password); rc != NGX_CONF_OK)
                    return rc;
                continue;
            }
            if (opt.find('=') != std::string_view::npos)
                return fail(cf, "%*s: unknown parameter \"%*s\" (want password_file=)",
                            directive(cf), opt);
            RedisAddress a;
            if (char* rc = parse_address(cf, opt, a, false); rc != NGX_CONF_OK)
                return rc;
            mcf->cluster_seeds.push_back(std::move(a));
        }
        if (mcf->cluster_seeds.empty())
            return fail(cf, "%*s: no seed node (want host:port ...)", directive(cf));
        for (RedisAddress& a : mcf->cluster_seeds)
            a.password = password;
        OPENSSL_cleanse(password.data(), password.size());
        mcf->redis = mcf->cluster_seeds.front();  // for logs that name "the" Redis
        mcf->cluster = true;
        mcf->redis_set = true;
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

// hookq_redis_wait <replicas> [timeout]
char* set_redis_wait(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* mcf = static_cast<MainConf*>(conf);
    if (mcf->wait_replicas != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    uint64_t n = 0;
    if (!parse_uint(arg(cf, 1), n) || n == 0 || n > 64)
        return fail(cf, "%*s: invalid replica count \"%*s\" (1 to 64)", directive(cf), arg(cf, 1));
    if (cf->args->nelts == 3) {
        // WAIT 0 would block forever: a timeout is always sent.
        auto ms = parse_duration_ms(arg(cf, 2));
        if (!ms || *ms == 0 || *ms > 60 * 1000)
            return fail(cf, "%*s: invalid timeout \"%*s\" (e.g. 100ms, 1s)", directive(cf),
                        arg(cf, 2));
        mcf->wait_timeout = *ms;
    }
    mcf->wait_replicas = static_cast<ngx_int_t>(n);
    return NGX_CONF_OK;
}

char* set_msec(ngx_conf_t* cf, ngx_msec_t& out) {
    if (out != NGX_CONF_UNSET_MSEC)
        return const_cast<char*>("is duplicate");
    auto ms = parse_duration_ms(arg(cf, 1));
    if (!ms || *ms == 0 || *ms > 3600 * 1000)
        return fail(cf, "%*s: invalid duration \"%*s\" (e.g. 200ms, 1s)", directive(cf),
                    arg(cf, 1));
    out = *ms;
    return NGX_CONF_OK;
}

char* set_redis_timeout(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_msec(cf, static_cast<MainConf*>(conf)->redis_timeout);
}

char* set_redis_connect_timeout(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_msec(cf, static_cast<MainConf*>(conf)->redis_connect_timeout);
}

char* set_redis_batch(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    ngx_flag_t& out = static_cast<MainConf*>(conf)->redis_batch;
    if (out != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    std::string_view v = arg(cf, 1);
    if (v != "on" && v != "off")
        return fail(cf, "%*s: \"%*s\" is neither on nor off", directive(cf), v);
    out = v == "on";
    return NGX_CONF_OK;
}

char* set_seconds(ngx_conf_t* cf, time_t& out, uint64_t min_s, uint64_t max_s) {
    if (out != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    auto ms = parse_duration_ms(arg(cf, 1));
    if (!ms || *ms % 1000 != 0 || *ms / 1000 < min_s || *ms / 1000 > max_s)
        return fail(cf, "%*s: invalid duration \"%*s\" (whole seconds, e.g. 30s, 5m, 72h)",
                    directive(cf), arg(cf, 1));
    out = static_cast<time_t>(*ms / 1000);
    return NGX_CONF_OK;
}

// The directive's argument as a complex value (variables evaluated per request) into `out`.
char* compile_key(ngx_conf_t* cf, ngx_http_complex_value_t*& out) noexcept {
    auto* cv = ngx::pcalloc<ngx_http_complex_value_t>(cf->pool);
    if (cv == nullptr)
        return static_cast<char*>(NGX_CONF_ERROR);
    ngx_http_compile_complex_value_t ccv{};
    ccv.cf = cf;
    ccv.value = &static_cast<ngx_str_t*>(cf->args->elts)[1];
    ccv.complex_value = cv;
    if (ngx_http_compile_complex_value(&ccv) != NGX_OK)
        return static_cast<char*>(NGX_CONF_ERROR);
    out = cv;
    return NGX_CONF_OK;
}

// hookq_dedup_key <complex value>, e.g. $http_x_request_id or $arg_id$http_x_shop
char* set_dedup_key(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->dedup_key != NGX_CONF_UNSET_PTR)
        return const_cast<char*>("is duplicate");
    return compile_key(cf, lcf->dedup_key);
}

// hookq_loop_key <complex value>, e.g. $ms_href (from hookq_json_var) or $hookq_body_sha256
char* set_loop_key(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->loop_key != NGX_CONF_UNSET_PTR)
        return const_cast<char*>("is duplicate");
    if (arg(cf, 1).empty())
        return fail(cf, "%*s: empty key%*s", directive(cf));
    return compile_key(cf, lcf->loop_key);
}

// hookq_loop_limit <N> <window>, e.g. "20 10m": more than N webhooks of one entity in the window
// is a loop.
char* set_loop_limit(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->loop_limit != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    uint64_t n = 0;
    if (!parse_uint(arg(cf, 1), n) || n < 1 || n > 1000000000)
        return fail(cf, "%*s: invalid count \"%*s\" (a whole number from 1)", directive(cf),
                    arg(cf, 1));
    auto ms = parse_duration_ms(arg(cf, 2));
    if (!ms || *ms < 1000 || *ms > 7ull * 86400 * 1000)
        return fail(cf, "%*s: invalid window \"%*s\" (1s to 7d, e.g. 10m)", directive(cf),
                    arg(cf, 2));
    lcf->loop_limit = static_cast<ngx_int_t>(n);
    lcf->loop_window = static_cast<ngx_msec_t>(*ms);
    return NGX_CONF_OK;
}

char* set_loop_action(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->loop_hold != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    if (arg(cf, 1) == "count")
        lcf->loop_hold = 0;
    else if (arg(cf, 1) == "hold")
        lcf->loop_hold = 1;
    else
        return fail(cf, "%*s: \"%*s\" is neither \"count\" nor \"hold\"", directive(cf),
                    arg(cf, 1));
    return NGX_CONF_OK;
}

char* set_dedup_ttl(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_seconds(cf, static_cast<LocConf*>(conf)->dedup_ttl, 1, 365ull * 86400);
}

char* set_retry_after(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_seconds(cf, static_cast<LocConf*>(conf)->retry_after, 1, 86400);
}

char* set_tolerance(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_seconds(cf, static_cast<LocConf*>(conf)->tolerance, 1, 86400);
}

char* set_max_body(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->max_body != NGX_CONF_UNSET_SIZE)
        return const_cast<char*>("is duplicate");
    auto size = parse_size(arg(cf, 1));
    // Bodies are verified and queued from memory; beyond 64 MB that stops being sensible.
    if (!size || *size == 0 || *size > 64ull * 1024 * 1024)
        return fail(cf, "%*s: invalid size \"%*s\" (1 byte to 64m, e.g. 1m, 512k)", directive(cf),
                    arg(cf, 1));
    lcf->max_body = *size;
    return NGX_CONF_OK;
}

// hookq_paypal_cert PATH: a PEM file with PayPal's signing certificate (and its chain), read now so
// that a missing or unreadable file fails `nginx -t` at this line.
char* add_paypal_cert(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        std::string path(arg(cf, 1));
        std::ifstream in(path, std::ios::binary);
        if (!in.is_open()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "hookq_paypal_cert: cannot open \"%s\"", path.c_str());
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
            return fail(cf, "%*s: \"%*s\" holds no PEM certificate", directive(cf), arg(cf, 1));
        static_cast<LocConf*>(conf)->paypal_certs.push_back(std::move(pem));
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

// hookq_paypal_ca PATH: the CA file the certificates must chain to (default: the system's).
char* set_paypal_ca(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (!lcf->paypal_ca.empty())
        return const_cast<char*>("is duplicate");
    try {
        lcf->paypal_ca = arg(cf, 1);
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

// hookq_verify enforce|report_only
char* set_verify(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->report_only != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    if (arg(cf, 1) == "enforce")
        lcf->report_only = 0;
    else if (arg(cf, 1) == "report_only")
        lcf->report_only = 1;
    else
        return fail(cf, "%*s: \"%*s\" is neither \"enforce\" nor \"report_only\"", directive(cf),
                    arg(cf, 1));
    return NGX_CONF_OK;
}

char* set_json_max(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->json_max != NGX_CONF_UNSET_SIZE)
        return const_cast<char*>("is duplicate");
    auto size = parse_size(arg(cf, 1));
    if (!size || *size == 0 || *size > 64ull * 1024 * 1024)
        return fail(cf, "%*s: invalid size \"%*s\" (1 byte to 64m, e.g. 64k, 1m)", directive(cf),
                    arg(cf, 1));
    lcf->json_max = *size;
    return NGX_CONF_OK;
}

char* set_max_queue_depth(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->max_queue_depth != NGX_CONF_UNSET)
        return const_cast<char*>("is duplicate");
    uint64_t n = 0;
    if (!parse_uint(arg(cf, 1), n) || n > (1ull << 40))
        return fail(cf, "%*s: invalid depth \"%*s\" (a count; 0 means no limit)", directive(cf),
                    arg(cf, 1));
    lcf->max_queue_depth = static_cast<ngx_int_t>(n);
    return NGX_CONF_OK;
}

char* set_accept_status(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->accept_status != NGX_CONF_UNSET_UINT)
        return const_cast<char*>("is duplicate");
    uint64_t n = 0;
    if (!parse_uint(arg(cf, 1), n) || (n != 200 && n != 201 && n != 202 && n != 204))
        return fail(cf, "%*s: invalid status \"%*s\" (200, 201, 202 or 204)", directive(cf),
                    arg(cf, 1));
    lcf->accept_status = n;
    return NGX_CONF_OK;
}

// hookq <profile>
char* set_hookq(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->enabled || lcf->status)
        return const_cast<char*>("is duplicate");
    auto scheme = scheme_from_name(arg(cf, 1));
    if (!scheme)
        return fail(cf,
                    "%*s: unknown profile \"%*s\" (github, stripe, standard, svix, shopify, "
                    "slack, twilio, moysklad, hmac or none)",
                    directive(cf), arg(cf, 1));
    lcf->enabled = true;
    lcf->scheme = *scheme;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = ingest_handler;
    static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_hookq_module))->used =
        true;
    return NGX_CONF_OK;
}

char* set_status(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->enabled || lcf->status)
        return const_cast<char*>("is duplicate");
    lcf->status = true;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = status_handler;
    return NGX_CONF_OK;
}

// hookq_secret file:PATH | env:NAME | literal:VALUE | VALUE. Read here rather than at merge time so
// that `nginx -t` points at the line of the directive that is wrong.
char* add_secret(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        std::string error, warning;
        auto secret = load_secret(arg(cf, 1), error, &warning);
        if (!secret)
            return fail(cf, "%*s: %*s", directive(cf), error);
        if (!warning.empty())
            warn(cf, "%*s: %*s", directive(cf), warning);
        static_cast<LocConf*>(conf)->secrets.push_back(std::move(*secret));
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

// hookq_signature_header <name> sha1|sha256|sha512 hex|base64 [prefix=<p>]
char* set_signature_header(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->hmac_set)
        return const_cast<char*>("is duplicate");
    try {
        HmacHeaderSpec& h = lcf->hmac;
        h.header = arg(cf, 1);
        std::string_view alg = arg(cf, 2), enc = arg(cf, 3);
        if (alg == "sha1")
            h.alg = HashAlg::sha1;
        else if (alg == "sha256")
            h.alg = HashAlg::sha256;
        else if (alg == "sha512")
            h.alg = HashAlg::sha512;
        else
            return fail(cf, "%*s: unknown algorithm \"%*s\" (sha1, sha256 or sha512)",
                        directive(cf), alg);
        if (enc == "hex")
            h.encoding = Encoding::hex;
        else if (enc == "base64")
            h.encoding = Encoding::base64;
        else
            return fail(cf, "%*s: unknown encoding \"%*s\" (hex or base64)", directive(cf), enc);
        if (cf->args->nelts == 5) {
            std::string_view p = arg(cf, 4);
            if (!p.starts_with("prefix="))
                return fail(cf, "%*s: unknown parameter \"%*s\" (want prefix=)", directive(cf), p);
            h.prefix = p.substr(7);
        }
        lcf->hmac_set = true;
        return NGX_CONF_OK;
    } catch (const std::exception&) {
        return const_cast<char*>("failed: out of memory");
    }
}

char* set_name(ngx_conf_t* cf, ngx_str_t& out) {
    if (out.data != nullptr)
        return const_cast<char*>("is duplicate");
    std::string_view name = arg(cf, 1);
    // Names become part of Redis keys and of the {hash tag}: keep them to a safe alphabet.
    bool ok =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.';
        });
    if (!ok)
        return fail(cf, "%*s: invalid name \"%*s\" (1-64 of A-Z a-z 0-9 - _ .)", directive(cf),
                    name);
    out = static_cast<ngx_str_t*>(cf->args->elts)[1];
    return NGX_CONF_OK;
}

char* set_source(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_name(cf, static_cast<LocConf*>(conf)->source);
}

char* set_queue(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_name(cf, static_cast<LocConf*>(conf)->queue);
}

char* set_public_url(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<LocConf*>(conf);
    if (lcf->public_url.data != nullptr)
        return const_cast<char*>("is duplicate");
    std::string_view url = arg(cf, 1);
    if (!(url.starts_with("http://") || url.starts_with("https://")) || url.find('?') != url.npos)
        return fail(cf, "%*s: invalid URL \"%*s\" (want https://host[:port][/path], no query)",
                    directive(cf), url);
    lcf->public_url = static_cast<ngx_str_t*>(cf->args->elts)[1];
    return NGX_CONF_OK;
}

char* set_str(ngx_conf_t* cf, ngx_str_t& out) {
    if (out.data != nullptr)
        return const_cast<char*>("is duplicate");
    out = static_cast<ngx_str_t*>(cf->args->elts)[1];
    if (out.len == 0)
        return fail(cf, "%*s: empty value \"%*s\"", directive(cf), arg(cf, 1));
    return NGX_CONF_OK;
}

char* set_token_header(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_str(cf, static_cast<LocConf*>(conf)->token_header);
}

char* set_token_arg(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    return set_str(cf, static_cast<LocConf*>(conf)->token_arg);
}

std::string to_string(std::string_view v) {
    return std::string(v);
}

// Whether nginx's access module has allow/deny rules for this location (its own or inherited: the
// access module, compiled into nginx, has merged its configuration before this dynamic module's
// merge runs). Its configuration struct is private to ngx_http_access_module.c; this mirrors its
// layout (one rules array per address family, each null until a rule is written), and the module
// is referenced weakly so that an nginx built without it still loads hookq.
struct AccessLocConf {
    ngx_array_t* rules;
#if (NGX_HAVE_INET6)
    ngx_array_t* rules6;
#endif
#if (NGX_HAVE_UNIX_DOMAIN)
    ngx_array_t* rules_un;
#endif
};

}  // namespace
}  // namespace hookq::edge

extern "C" {
extern ngx_module_t ngx_http_access_module __attribute__((weak));
}

namespace hookq::edge {
namespace {

bool has_access_rules(ngx_conf_t* cf) {
    if (&ngx_http_access_module == nullptr)
        return true;  // cannot tell: stay quiet rather than warn about what may be fine
    auto* alcf =
        static_cast<AccessLocConf*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_access_module));
    if (alcf == nullptr)
        return true;
    bool any = alcf->rules != nullptr;
#if (NGX_HAVE_INET6)
    any |= alcf->rules6 != nullptr;
#endif
#if (NGX_HAVE_UNIX_DOMAIN)
    any |= alcf->rules_un != nullptr;
#endif
    return any;
}

// The location's Verifier, from its profile and the directives that go with it; false (the
// reason logged) when they do not go together.
bool build_verifier(ngx_conf_t* cf, LocConf* conf, std::string_view scheme) {
    VerifierConfig vc;
    vc.scheme = conf->scheme;
    vc.tolerance_s = conf->tolerance;
    vc.hmac = conf->hmac;
    if (conf->token_header.data)
        vc.token_header = to_string(ngx::view(conf->token_header));
    if (conf->token_arg.data)
        vc.token_arg = to_string(ngx::view(conf->token_arg));
    // Directives of another profile would be ignored without a word; the operator meant something.
    if (conf->hmac_set && conf->scheme != Scheme::hmac) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq_signature_header: only \"hookq hmac\" reads it, this location "
                           "is \"hookq %*s\"",
                           scheme.size(), scheme.data());
        return false;
    }
    const bool token_set = conf->token_header.data != nullptr || conf->token_arg.data != nullptr;
    if (token_set && conf->scheme != Scheme::moysklad) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq_token_header/hookq_token_arg: only \"hookq moysklad\" reads "
                           "them, this location is \"hookq %*s\"",
                           scheme.size(), scheme.data());
        return false;
    }
    if (conf->token_header.data != nullptr && conf->token_arg.data != nullptr) {
        // The header would win and the argument be ignored.
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq_token_header and hookq_token_arg: the token comes from one "
                           "place, choose one");
        return false;
    }
    if (conf->scheme == Scheme::none && !conf->secrets.empty()) {
        // It would read as protection in the configuration while every request is accepted.
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq_secret: \"hookq none\" verifies nothing, so a secret there "
                           "protects nothing (remove it, or choose the provider's profile)");
        return false;
    }
    const bool paypal_set = !conf->paypal_certs.empty() || !conf->paypal_ca.empty();
    if (paypal_set && conf->scheme != Scheme::paypal) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq_paypal_cert/hookq_paypal_ca: only \"hookq paypal\" reads them, "
                           "this location is \"hookq %*s\"",
                           scheme.size(), scheme.data());
        return false;
    }
    vc.paypal_certs = std::move(conf->paypal_certs);
    vc.paypal_ca_file = conf->paypal_ca;
    if (conf->report_only == 1) {
        if (conf->scheme == Scheme::none) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "hookq_verify report_only: \"hookq none\" verifies nothing");
            return false;
        }
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "hookq_verify report_only: requests that fail verification are "
                           "queued and delivered (marked X-Hookq-Unverified); for wiring up a "
                           "provider, not for production");
    }
    vc.secrets = std::move(conf->secrets);
    conf->secrets.clear();
    // The verifier keeps what it needs (keys, token digests); wipe these copies on every way out.
    struct Wipe {
        std::vector<std::string>& v;
        ~Wipe() {
            for (std::string& s : v)
                OPENSSL_cleanse(s.data(), s.size());
        }
    } wipe{vc.secrets};
    bool needs_secret = conf->scheme != Scheme::none && conf->scheme != Scheme::moysklad;
    if (needs_secret && vc.secrets.empty()) {
        ngx_conf_log_error(
            NGX_LOG_EMERG, cf, 0, "hookq %*s: no \"hookq_secret\" in this location%s",
            scheme.size(), scheme.data(),
            conf->scheme == Scheme::paypal
                ? " (PayPal's webhook id, e.g. hookq_secret literal:8PT597110X687430LKGECATA)"
                : "");
        return false;
    }
    if (conf->scheme == Scheme::hmac && !conf->hmac_set) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq hmac: no \"hookq_signature_header\" in this location");
        return false;
    }
    if (conf->scheme == Scheme::moysklad && vc.secrets.empty() && !has_access_rules(cf)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "hookq moysklad: no \"hookq_secret\" token and no \"allow\"/\"deny\" "
                           "in this location: anyone who finds the URL can queue webhooks");
    }
    std::string error;
    conf->verifier = Verifier::create(vc, error);
    if (!conf->verifier) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "hookq %*s: %s", scheme.size(), scheme.data(),
                           error.c_str());
        return false;
    }
    return true;
}

// The Redis keys and script arguments of the location's queue, computed once here rather than per
// request; false (the reason logged) when the loop directives do not go together.
bool derive_keys(ngx_conf_t* cf, LocConf* conf) {
    std::string queue = to_string(ngx::view(conf->queue));
    conf->queue_key = keys::queue(queue);
    conf->stage_key = keys::stage(queue);
    conf->slot = cluster::key_slot(conf->queue_key);
    conf->dedup_prefix = keys::dedup_prefix(queue);
    conf->depth_limit = std::to_string(conf->max_queue_depth);
    conf->ttl_text = std::to_string(conf->dedup_ttl);
    if (conf->loop_limit > 0) {
        if (conf->loop_key == nullptr) {
            static ngx_str_t body_sha = ngx_string("$hookq_body_sha256");
            conf->loop_key = ngx::pcalloc<ngx_http_complex_value_t>(cf->pool);
            ngx_http_compile_complex_value_t ccv{};
            ccv.cf = cf;
            ccv.value = &body_sha;
            ccv.complex_value = conf->loop_key;
            if (conf->loop_key == nullptr || ngx_http_compile_complex_value(&ccv) != NGX_OK)
                return false;
        }
        conf->loop = true;
        conf->loop_prefix = keys::loop_prefix(queue);
        conf->loops_key = keys::loops(queue);
        conf->loop_keys_key = keys::loop_keys(queue);
        conf->held_key = keys::held(queue);
        conf->loop_window_text = std::to_string(conf->loop_window);
        conf->loop_limit_text = std::to_string(conf->loop_limit);
    } else if (conf->loop_key != nullptr || conf->loop_hold != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: needs \"hookq_loop_limit <N> <window>\"",
                           conf->loop_key != nullptr ? "hookq_loop_key" : "hookq_loop_action");
        return false;
    }
    return true;
}

void size_body_buffers(ngx_conf_t* cf, const LocConf* conf) {
    // The body is verified and queued from one contiguous buffer in memory: make nginx's own limits
    // agree with hookq_max_body, so a larger body is refused with 413 before it is read and an
    // accepted one never spills into a temp file (reading it back would block the event loop).
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->client_max_body_size = static_cast<off_t>(conf->max_body);
    if (clcf->client_body_buffer_size < conf->max_body)
        clcf->client_body_buffer_size = conf->max_body;
    clcf->client_body_in_file_only = 0;  // "off"
}

// Derives everything the request path needs; fails `nginx -t` with the reason.
char* finish_ingest_location(ngx_conf_t* cf, LocConf* conf) {
    auto* mcf =
        static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_hookq_module));
    if (!mcf->redis_set) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "hookq: no \"hookq_redis\" (or \"hookq_redis_cluster\") in the http "
                           "block for this location");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    std::string_view scheme = scheme_name(conf->scheme);
    if (conf->source.data == nullptr)
        conf->source = ngx::str(scheme);
    if (conf->queue.data == nullptr)
        conf->queue = conf->source;

    if (!build_verifier(cf, conf, scheme) || !derive_keys(cf, conf)) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    conf->retry_after_text = std::to_string(conf->retry_after);
    conf->source_index = mcf->source_index(to_string(ngx::view(conf->source)));
    size_body_buffers(cf, conf);
    return NGX_CONF_OK;
}

}  // namespace

int MainConf::source_index(const std::string& name) {
    auto it = std::find(sources.begin(), sources.end(), name);
    if (it != sources.end())
        return static_cast<int>(it - sources.begin());
    sources.push_back(name);
    return static_cast<int>(sources.size() - 1);
}

void* create_main_conf(ngx_conf_t* cf) noexcept {
    void* mem = ngx_pcalloc(cf->pool, sizeof(MainConf));
    if (mem == nullptr)
        return nullptr;
    auto* conf = new (mem) MainConf();
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr)
        return nullptr;
    cln->handler = [](void* p) { static_cast<MainConf*>(p)->~MainConf(); };
    cln->data = conf;
    return conf;
}

char* init_main_conf(ngx_conf_t*, void* conf) noexcept {
    auto* mcf = static_cast<MainConf*>(conf);
    ngx_conf_init_msec_value(mcf->redis_timeout, kDefaultRedisTimeout);
    ngx_conf_init_msec_value(mcf->redis_connect_timeout, kDefaultConnectTimeout);
    ngx_conf_init_value(mcf->redis_batch, 1);
    ngx_conf_init_value(mcf->wait_replicas, 0);
    ngx_conf_init_msec_value(mcf->wait_timeout, kDefaultWaitTimeout);
    return NGX_CONF_OK;
}

void* create_loc_conf(ngx_conf_t* cf) noexcept {
    void* mem = ngx_pcalloc(cf->pool, sizeof(LocConf));
    if (mem == nullptr)
        return nullptr;
    auto* conf = new (mem) LocConf();
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr)
        return nullptr;
    cln->handler = [](void* p) { static_cast<LocConf*>(p)->~LocConf(); };
    cln->data = conf;
    return conf;
}

char* merge_loc_conf(ngx_conf_t* cf, void* parent_ptr, void* child_ptr) noexcept {
    auto* prev = static_cast<LocConf*>(parent_ptr);
    auto* conf = static_cast<LocConf*>(child_ptr);
    ngx_conf_merge_ptr_value(conf->dedup_key, prev->dedup_key, nullptr);
    ngx_conf_merge_value(conf->dedup_ttl, prev->dedup_ttl, kDefaultDedupTtl);
    ngx_conf_merge_ptr_value(conf->loop_key, prev->loop_key, nullptr);
    if (conf->loop_limit == NGX_CONF_UNSET) {
        conf->loop_limit = prev->loop_limit == NGX_CONF_UNSET ? 0 : prev->loop_limit;
        conf->loop_window = prev->loop_window == NGX_CONF_UNSET_MSEC ? 0 : prev->loop_window;
    }
    ngx_conf_merge_value(conf->loop_hold, prev->loop_hold, 0);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, kDefaultMaxBody);
    ngx_conf_merge_size_value(conf->json_max, prev->json_max, kDefaultJsonMax);
    ngx_conf_merge_value(conf->report_only, prev->report_only, 0);
    ngx_conf_merge_value(conf->max_queue_depth, prev->max_queue_depth, 0);
    ngx_conf_merge_uint_value(conf->accept_status, prev->accept_status, NGX_HTTP_ACCEPTED);
    ngx_conf_merge_value(conf->retry_after, prev->retry_after, kDefaultRetryAfter);
    ngx_conf_merge_value(conf->tolerance, prev->tolerance, kDefaultTolerance);
    if (!conf->enabled) {
        // Would otherwise be ignored without a word, leaving the location unverified.
        const char* orphan = !conf->secrets.empty()               ? "hookq_secret"
                             : conf->hmac_set                     ? "hookq_signature_header"
                             : conf->token_header.data != nullptr ? "hookq_token_header"
                             : conf->token_arg.data != nullptr    ? "hookq_token_arg"
                                                                  : nullptr;
        if (orphan != nullptr) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: no \"hookq <profile>\" in this location",
                               orphan);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    }
    try {
        return finish_ingest_location(cf, conf);
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "hookq: %s", e.what());
        return static_cast<char*>(NGX_CONF_ERROR);
    }
}

#define HOOKQ_LOC (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF)

ngx_command_t commands[] = {
    {ngx_string("hookq_redis"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, set_redis,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_redis_cluster"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, set_redis_cluster,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_redis_wait"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12, set_redis_wait,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_redis_timeout"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, set_redis_timeout,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_redis_connect_timeout"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     set_redis_connect_timeout, NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_redis_batch"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, set_redis_batch,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_hookq, NGX_HTTP_LOC_CONF_OFFSET,
     0, nullptr},
    {ngx_string("hookq_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, set_status,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_secret"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, add_secret,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_source"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_source,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_queue"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_queue,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_signature_header"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE3 | NGX_CONF_TAKE4,
     set_signature_header, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_dedup_key"), HOOKQ_LOC | NGX_CONF_TAKE1, set_dedup_key,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_loop_key"), HOOKQ_LOC | NGX_CONF_TAKE1, set_loop_key,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_loop_limit"), HOOKQ_LOC | NGX_CONF_TAKE2, set_loop_limit,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_loop_action"), HOOKQ_LOC | NGX_CONF_TAKE1, set_loop_action,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_dedup_ttl"), HOOKQ_LOC | NGX_CONF_TAKE1, set_dedup_ttl,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_max_body"), HOOKQ_LOC | NGX_CONF_TAKE1, set_max_body,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_json_var"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2, add_json_var,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_paypal_cert"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, add_paypal_cert,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_paypal_ca"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_paypal_ca,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_verify"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_verify,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_json_max_size"), HOOKQ_LOC | NGX_CONF_TAKE1, set_json_max,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_max_queue_depth"), HOOKQ_LOC | NGX_CONF_TAKE1, set_max_queue_depth,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_accept_status"), HOOKQ_LOC | NGX_CONF_TAKE1, set_accept_status,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_retry_after"), HOOKQ_LOC | NGX_CONF_TAKE1, set_retry_after,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_timestamp_tolerance"), HOOKQ_LOC | NGX_CONF_TAKE1, set_tolerance,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_public_url"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_public_url,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_token_header"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_token_header,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("hookq_token_arg"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_token_arg,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    ngx_null_command};

}  // namespace hookq::edge
