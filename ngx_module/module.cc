// The module's tables and lifecycle: what nginx sees of hookq.
#include "ngx_module/module.h"

#include "ngx_module/body_keys.h"
#include "ngx_module/config.h"
#include "ngx_module/handler.h"
#include "ngx_module/redis_router.h"
#include "ngx_module/status.h"

namespace hookq::edge {
namespace {

ngx_int_t postconfiguration(ngx_conf_t* cf) noexcept {
    if (status_init_zone(cf) != NGX_OK)
        return NGX_ERROR;
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto* h = static_cast<ngx_http_handler_pt*>(
        ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
    if (h == nullptr)
        return NGX_ERROR;
    *h = log_phase_handler;
    install_body_filter();
    return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) noexcept {
    auto* mcf =
        static_cast<MainConf*>(ngx_http_cycle_get_module_main_conf(cycle, ngx_http_hookq_module));
    if (mcf == nullptr || !mcf->used)
        return NGX_OK;
    // nginx runs init_process in its helper processes too (cache manager and loader): they serve
    // no requests, so they must not hold a Redis connection each.
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE)
        return NGX_OK;
    // Without request ids every request would fail: a worker that cannot seed them stops here,
    // loudly, and nginx does not respawn it (exit code 2), rather than answer 500 forever.
    if (!init_request_ids(cycle->log))
        return NGX_ERROR;
    return RedisRouter::instance().start(*mcf, cycle->log) ? NGX_OK : NGX_ERROR;
}

void exit_process(ngx_cycle_t*) noexcept {
    RedisRouter::instance().stop();
}

ngx_http_module_t module_ctx = {
    add_body_variables,  // preconfiguration
    postconfiguration,   // postconfiguration
    create_main_conf,    // create main configuration
    init_main_conf,      // init main configuration
    nullptr,             // create server configuration
    nullptr,             // merge server configuration
    create_loc_conf,     // create location configuration
    merge_loc_conf       // merge location configuration
};

}  // namespace
}  // namespace hookq::edge

extern "C" {

ngx_module_t ngx_http_hookq_module = {NGX_MODULE_V1,
                                      &hookq::edge::module_ctx,
                                      hookq::edge::commands,
                                      NGX_HTTP_MODULE,
                                      nullptr,                    // init master
                                      nullptr,                    // init module
                                      hookq::edge::init_process,  // init process
                                      nullptr,                    // init thread
                                      nullptr,                    // exit thread
                                      hookq::edge::exit_process,  // exit process
                                      nullptr,                    // exit master
                                      NGX_MODULE_V1_PADDING};

// What nginx's configure would generate for a dynamic module (objs/ngx_*_modules.c).
ngx_module_t* ngx_modules[] = {&ngx_http_hookq_module, nullptr};
char* ngx_module_names[] = {const_cast<char*>("ngx_http_hookq_module"), nullptr};
char* ngx_module_order[] = {nullptr};
}
