// The one boundary to nginx's C headers. Everything else in ngx_module/ includes this, never the
// nginx headers directly, so the extern "C" wrapping and the few casts C++ needs live in one place.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <string_view>

namespace hookq::ngx {

inline std::string_view view(const ngx_str_t& s) noexcept {
    return {reinterpret_cast<const char*>(s.data), s.len};
}

inline ngx_str_t str(std::string_view s) noexcept {
    return {s.size(), reinterpret_cast<u_char*>(const_cast<char*>(s.data()))};
}

// Copies s to dst and returns the end. An empty view may have a null data(), which memcpy must
// never be handed, even for zero bytes.
inline char* append(char* dst, std::string_view s) noexcept {
    if (!s.empty())
        ngx_memcpy(dst, s.data(), s.size());
    return dst + s.size();
}

// nginx's allocators return void*; C++ needs the cast spelled out.
// Bytes come unaligned (ngx_pnalloc), anything else aligned (ngx_palloc).
template <typename T>
T* palloc(ngx_pool_t* pool, size_t n = 1) noexcept {
    if constexpr (alignof(T) == 1) {
        return static_cast<T*>(ngx_pnalloc(pool, sizeof(T) * n));
    } else {
        return static_cast<T*>(ngx_palloc(pool, sizeof(T) * n));
    }
}

template <typename T>
T* pcalloc(ngx_pool_t* pool) noexcept {
    return static_cast<T*>(ngx_pcalloc(pool, sizeof(T)));
}

// Ties a C++ object's lifetime to an nginx pool: deleted when the pool is destroyed.
template <typename T>
bool own_by_pool(ngx_pool_t* pool, T* object) noexcept {
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == nullptr) {
        delete object;
        return false;
    }
    cln->handler = [](void* data) { delete static_cast<T*>(data); };
    cln->data = object;
    return true;
}

}  // namespace hookq::ngx
