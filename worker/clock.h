// The process's two clocks. Wall time for what is stored or shown (a row's timestamp, an
// envelope's age); the monotonic clock for intervals and deadlines kept in this process, which a
// step of the wall clock must not stretch or cut. Time shared between workers is RedisClock's
// (pipeline/clock.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

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

// Wall time as RFC 3339 in UTC, the form of every timestamp the admin API, hookqctl and alerts
// show ("2026-11-30T14:05:00Z"), with 0, 3 or 6 fraction digits. Times before 1970 (a replay's
// "since 100000d") round down, as a clock does, not toward zero.
inline std::string rfc3339(int64_t unix_us, int fraction_digits = 0) {
    int64_t secs = unix_us / 1000000, frac = unix_us % 1000000;
    if (frac < 0) {
        secs -= 1;
        frac += 1000000;
    }
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (fraction_digits == 3) {
        n += std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(frac / 1000));
    } else if (fraction_digits == 6) {
        n += std::snprintf(buf + n, sizeof buf - n, ".%06d", static_cast<int>(frac));
    }
    return std::string(buf, n) + "Z";
}

}  // namespace hookq
