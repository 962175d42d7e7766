// A failure that every request meets (Redis at maxmemory, a queue key of the wrong type, a PayPal
// certificate out of its validity) must not write one line per request: at most one per window
// per worker process, saying how many were held back. One event loop per process: no locking.
#pragma once

#include "ngx_module/ngx.h"

namespace hookq::edge {

class LogLimiter {
  public:
    explicit constexpr LogLimiter(ngx_msec_t window) noexcept : window_(window) {}

    // True when a line may be written now; `note` then reads " (N similar lines not logged
    // since the last one)" or "".
    bool allow(char* note, size_t size) noexcept {
        if (logged_ && ngx_current_msec - last_ < window_) {
            held_back_++;
            return false;
        }
        note[0] = '\0';
        if (held_back_ > 0)
            ngx_snprintf(reinterpret_cast<u_char*>(note), size,
                         " (%ui similar lines not logged since the last one)%Z", held_back_);
        note[size - 1] = '\0';
        held_back_ = 0;
        last_ = ngx_current_msec;
        logged_ = true;
        return true;
    }

  private:
    ngx_msec_t window_;
    ngx_msec_t last_ = 0;
    ngx_uint_t held_back_ = 0;
    bool logged_ = false;
};

}  // namespace hookq::edge
