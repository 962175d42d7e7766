// Destination health checks: each route's health_url probed once per health_interval across the
// whole fleet, on a thread of its own with its own Redis connection and libcurl multi handle, so a
// hanging health endpoint never holds up a delivery. Before probing a route, a worker takes the
// route's lease (SET NX PX interval): whoever takes it probes, the others wait for it to expire.
// The result goes to the hash keys::health_check(route) (fields: see record_probe), which
// ops::health_checks, the alert engine's health_check rule and /metrics read.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "worker/config.h"
#include "worker/store/redis_conn.h"

namespace hookq {

// One probe's result.
struct ProbeResult {
    bool ok = false;
    long http_status = 0;  // 0: no response
    double duration_ms = 0;
    std::string error;  // empty when ok; never the URL (it may carry credentials)
};

// A probe's verdict from libcurl's code and the response status: ok when the status is within
// [expect_lo, expect_hi]. `curl_error` is libcurl's error buffer, dropped when it quotes the URL's
// userinfo.
ProbeResult judge_probe(int curl_code, long http_status, double duration_ms, int expect_lo,
                        int expect_hi, uint64_t timeout_ms, const std::string& curl_error,
                        const std::string& url);

// Writes a probe's result into the route's hash: status, http_status, duration_ms, checked_at_ms,
// consecutive_failures (0 on success, incremented on failure), last_error, last_ok_at_ms (on
// success). Throws std::runtime_error when Redis fails.
void record_probe(RedisConn& redis, const std::string& route, const ProbeResult& r,
                  uint64_t checked_at_ms);

class HealthChecks {
  public:
    explicit HealthChecks(const Config& cfg) : cfg_(cfg), redis_(cfg, "health-checks") {}
    ~HealthChecks() { stop(); }
    HealthChecks(const HealthChecks&) = delete;
    HealthChecks& operator=(const HealthChecks&) = delete;

    // No thread when no route has a health_url.
    void start();
    void stop();

  private:
    void run();
    std::optional<uint64_t> leased_elsewhere(const Route& rt, uint64_t now_ms);

    const Config& cfg_;
    RedisConn redis_;
    bool redis_down_logged_ = false;  // one warning per outage, not one per route and turn
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
};

}  // namespace hookq
