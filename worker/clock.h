// The process's two clocks. Wall time for what is stored or shown (a row's timestamp, an
// envelope's age); the monotonic clock for intervals and deadlines kept in this process, which a
// step of the wall clock must not stretch or cut. Time shared between workers is RedisClock's
// (pipeline/clock.h).
#pragma once

#include <chrono>
#include <cstdint>

namespace hookq {

inline uint64_t now_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

inline uint64_t now_ms() {
    return now_us() / 1000;
}

inline uint64_t mono_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

}  // namespace hookq
