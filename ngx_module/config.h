// Configuration of the module: what `hookq_*` directives produce, per http{} block and per
// location.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ngx_module/body_keys.h"
#include "ngx_module/log_limiter.h"
#include "ngx_module/ngx.h"
#include "shared/signature.h"

namespace hookq::edge {

// Where each nginx worker's Redis connection goes. Resolved at configuration time: hiredis 0.14
// would otherwise call a blocking getaddrinfo() from inside the event loop.
struct RedisAddress {
    std::string host;  // numeric IP, or empty for a unix socket
    int port = 6379;
    std::string unix_path;
    int db = 0;
    std::string password;  // never logged
    std::string display;   // "127.0.0.1:6379" or "unix:/run/redis.sock", for logs
};

struct MainConf {
    bool redis_set = false;
    RedisAddress redis;
    ngx_msec_t redis_timeout = NGX_CONF_UNSET_MSEC;
    ngx_msec_t redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    // hookq_redis_batch: group commit, one script call per event-loop turn (see RedisLink::flush)
    ngx_flag_t redis_batch = NGX_CONF_UNSET;
    // hookq_redis_cluster: seed nodes; each worker then keeps one link per master (redis_router.h).
    // Exclusive with hookq_redis; redis_set is true with either.
    bool cluster = false;
    std::vector<RedisAddress> cluster_seeds;
    // hookq_redis_wait <replicas> [timeout]: 2xx only once WAIT has counted that many replicas.
    ngx_int_t wait_replicas = NGX_CONF_UNSET;  // 0 when off
    ngx_msec_t wait_timeout = NGX_CONF_UNSET_MSEC;
    // Every hookq location's source name; a source's index is its row in the status counters.
    std::vector<std::string> sources;
    bool used = false;               // some location runs hookq: connect to Redis in each worker
    std::vector<JsonVar> json_vars;  // hookq_json_var, in the order declared

    int source_index(const std::string& name);
};

struct LocConf {
    // Set by `hookq <profile>` in this very location; a location without it is not a hookq one.
    bool enabled = false;
    bool status = false;  // `hookq_status`
    Scheme scheme = Scheme::none;
    ngx_str_t source = ngx_null_string;
    ngx_str_t queue = ngx_null_string;
    // `hookq_secret` values, read as each directive is parsed (so errors point at its line), and
    // wiped once the verifier holds them.
    std::vector<std::string> secrets;
    HmacHeaderSpec hmac;
    bool hmac_set = false;
    ngx_http_complex_value_t* dedup_key =
        static_cast<ngx_http_complex_value_t*>(NGX_CONF_UNSET_PTR);
    time_t dedup_ttl = NGX_CONF_UNSET;
    // Loop and storm detection: hookq_loop_key, hookq_loop_limit <N> <window>, hookq_loop_action.
    ngx_http_complex_value_t* loop_key = static_cast<ngx_http_complex_value_t*>(NGX_CONF_UNSET_PTR);
    ngx_int_t loop_limit = NGX_CONF_UNSET;
    ngx_msec_t loop_window = NGX_CONF_UNSET_MSEC;
    ngx_flag_t loop_hold = NGX_CONF_UNSET;
    size_t max_body = NGX_CONF_UNSET_SIZE;
    size_t json_max = NGX_CONF_UNSET_SIZE;  // hookq_json_max_size
    // hookq_verify report_only: a request that fails verification is queued anyway, marked.
    ngx_flag_t report_only = NGX_CONF_UNSET;
    // hookq_paypal_cert files' contents (PEM), hookq_paypal_ca's path.
    std::vector<std::string> paypal_certs;
    std::string paypal_ca;
    ngx_int_t max_queue_depth = NGX_CONF_UNSET;
    ngx_uint_t accept_status = NGX_CONF_UNSET_UINT;
    time_t retry_after = NGX_CONF_UNSET;
    time_t tolerance = NGX_CONF_UNSET;
    ngx_str_t public_url = ngx_null_string;
    ngx_str_t token_header = ngx_null_string;
    ngx_str_t token_arg = ngx_null_string;

    // Derived once at merge time so the request path only reads them.
    std::unique_ptr<Verifier> verifier;
    std::string queue_key;
    std::string stage_key;  // the queue's name inside the guarded ingest (scripts::kIngestGuarded)
    std::string dedup_prefix;
    std::string depth_limit;  // ARGV[1] of the ingest script, as text
    std::string ttl_text;     // ARGV[2]
    bool loop = false;        // the ingest script runs its loop part
    std::string loop_prefix, loops_key, loop_keys_key, held_key;
    std::string loop_window_text, loop_limit_text;  // ARGV[5], ARGV[6]
    std::string retry_after_text;
    int source_index = -1;
    int slot = 0;  // the queue's Redis Cluster slot (its keys' hash tag {queue})

    // The one request-time state: a PayPal certificate out of its validity refuses every retry of
    // every webhook the same way until a reload, so one line a minute per worker says it.
    mutable LogLimiter cert_log{60 * 1000};
};

extern ngx_command_t commands[];
void* create_main_conf(ngx_conf_t* cf) noexcept;
char* init_main_conf(ngx_conf_t* cf, void* conf) noexcept;
void* create_loc_conf(ngx_conf_t* cf) noexcept;
char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept;

}  // namespace hookq::edge
