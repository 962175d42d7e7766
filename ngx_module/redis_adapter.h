// hiredis's async API driven by nginx's event loop: the hiredis socket becomes an nginx connection
// whose read/write events call back into hiredis.
#pragma once

#include "ngx_module/ngx.h"

struct redisAsyncContext;

namespace hookq::edge {

// Attaches `ac` to nginx's event loop. On failure the caller frees `ac`.
bool attach_to_nginx(redisAsyncContext* ac, ngx_log_t* log) noexcept;

}  // namespace hookq::edge
