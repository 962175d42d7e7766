#pragma once

#include "ngx_module/ngx.h"

extern "C" {
extern ngx_module_t ngx_http_hookq_module;
}
