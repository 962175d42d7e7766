// The request path of a `hookq` location: read the body, verify, dedup + enqueue in one Redis
// round trip, answer.
#pragma once

#include "ngx_module/ngx.h"

namespace hookq::edge {

ngx_int_t ingest_handler(ngx_http_request_t* r) noexcept;
// Counts 413s that nginx itself answered before the handler ran (Content-Length over the limit).
ngx_int_t log_phase_handler(ngx_http_request_t* r) noexcept;
// From postconfiguration: puts the module's request body filter first in nginx's chain.
void install_body_filter() noexcept;
// Per worker process: seeds the request id generator (after fork, so workers differ). False, with
// an EMERG line in `log` saying why, when it cannot be seeded.
bool init_request_ids(ngx_log_t* log) noexcept;

}  // namespace hookq::edge
