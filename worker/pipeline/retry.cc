#include "worker/pipeline/retry.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace hookq {

uint64_t backoff_ceiling_ms(const RetryPolicy& p, uint32_t failed_attempt) {
    double d =
        static_cast<double>(p.initial_ms) *
        std::pow(p.multiplier, static_cast<double>(failed_attempt > 0 ? failed_attempt - 1 : 0));
    if (!(d < static_cast<double>(p.max_delay_ms))) {
        return p.max_delay_ms;
    }
    return static_cast<uint64_t>(d);
}

uint64_t backoff_delay_ms(const RetryPolicy& p, uint32_t failed_attempt, double u01) {
    uint64_t ceiling = backoff_ceiling_ms(p, failed_attempt);
    if (!p.jitter) {
        return ceiling;
    }
    u01 = std::clamp(u01, 0.0, 1.0);
    return static_cast<uint64_t>(std::llround(u01 * static_cast<double>(ceiling)));
}

std::optional<uint64_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_s) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                              value.back() == '\n')) {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return std::nullopt;
    }
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (value.size() > 9) {
            return uint64_t{999999999} * 1000;
        }
        return std::stoull(std::string(value)) * 1000;
    }
    std::string s(value);
    time_t t = curl_getdate(s.c_str(), nullptr);
    if (t < 0) {
        return std::nullopt;
    }
    return t > now_unix_s ? static_cast<uint64_t>(t - now_unix_s) * 1000 : 0;
}

}  // namespace hookq
