#include "worker/jobs/health_checks.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "shared/redis_keys.h"
#include "worker/clock.h"
#include "worker/log.h"

namespace hookq {

namespace {

// The body is not looked at: only the status counts.
size_t discard(char*, size_t size, size_t n, void*) {
    return size * n;
}

// "user:pass" of http://user:pass@host/..., empty without.
std::string userinfo(const std::string& url) {
    size_t scheme = url.find("://");
    size_t host = scheme == std::string::npos ? 0 : scheme + 3;
    size_t end = url.find_first_of("/?#", host);
    size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
    return at != std::string::npos && at >= host ? url.substr(host, at - host) : "";
}

struct Probe {
    size_t route = 0;
    CURL* easy = nullptr;
    char errbuf[CURL_ERROR_SIZE] = {};
    uint64_t started_wall_ms = 0;
};

// The probes under way, at most one per route, on one libcurl multi handle.
class Probes {
  public:
    explicit Probes(size_t routes) : multi_(curl_multi_init()), running_(routes) {}
    ~Probes() {
        for (auto& p : running_) {
            if (p) {
                curl_multi_remove_handle(multi_, p->easy);
                curl_easy_cleanup(p->easy);
            }
        }
        curl_multi_cleanup(multi_);
    }
    Probes(const Probes&) = delete;
    Probes& operator=(const Probes&) = delete;

    bool running(size_t route) const { return running_[route] != nullptr; }
    size_t in_flight() const { return in_flight_; }

    void start(size_t route, const Route& rt) {
        auto p = std::make_unique<Probe>();
        p->route = route;
        p->started_wall_ms = now_ms();
        p->easy = curl_easy_init();
        CURL* e = p->easy;
        // A plain GET: no header of any webhook, no signature, nothing of the route's secret.
        curl_easy_setopt(e, CURLOPT_URL, rt.health_url.c_str());
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "hookq-health-check/0.1");
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(rt.health_timeout_ms));
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(rt.health_timeout_ms));
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &discard);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->errbuf);
        curl_easy_setopt(e, CURLOPT_PRIVATE, p.get());
        curl_multi_add_handle(multi_, e);
        running_[route] = std::move(p);
        ++in_flight_;
    }

    // Moves the transfers on, and hands each finished probe with libcurl's code to `done`.
    template <class Done>
    void reap(Done&& done) {
        int still = 0;
        curl_multi_perform(multi_, &still);
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            Probe* p = nullptr;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
            done(*p, m->data.result);
            curl_multi_remove_handle(multi_, p->easy);
            curl_easy_cleanup(p->easy);
            running_[p->route].reset();
            --in_flight_;
        }
    }

    void poll(int timeout_ms) { curl_multi_poll(multi_, nullptr, 0, timeout_ms, nullptr); }

  private:
    CURLM* multi_;
    std::vector<std::unique_ptr<Probe>> running_;  // by route
    size_t in_flight_ = 0;
};

// The probe's verdict into the route's hash, for ops::health_checks, the alert rule and /metrics.
void record(RedisConn& redis, const Route& rt, const Probe& p, int curl_code) {
    long code = 0;
    curl_easy_getinfo(p.easy, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t total_us = 0;
    curl_easy_getinfo(p.easy, CURLINFO_TOTAL_TIME_T, &total_us);
    ProbeResult r =
        judge_probe(curl_code, code, static_cast<double>(total_us) / 1000.0, rt.health_expect_lo,
                    rt.health_expect_hi, rt.health_timeout_ms, p.errbuf, rt.health_url);
    try {
        record_probe(redis, rt.name, r, p.started_wall_ms);
    } catch (const std::exception& ex) {
        log::warn("health checks: result not recorded", {{"error", ex.what()}});
    }
    if (!r.ok) {
        log::debug("health check failing", {{"route", rt.name}, {"error", r.error}});
    }
}

}  // namespace

ProbeResult judge_probe(int curl_code, long http_status, double duration_ms, int expect_lo,
                        int expect_hi, uint64_t timeout_ms, const std::string& curl_error,
                        const std::string& url) {
    ProbeResult r;
    r.duration_ms = duration_ms;
    if (curl_code != CURLE_OK) {
        r.http_status = 0;
        if (curl_code == CURLE_OPERATION_TIMEDOUT) {
            r.error = "timed out after " + std::to_string(timeout_ms) + " ms";
            return r;
        }
        r.error = curl_easy_strerror(static_cast<CURLcode>(curl_code));
        // libcurl's message may quote the URL, or the user or password of its userinfo.
        std::string cred = userinfo(url);
        bool quotes_url = curl_error.find("://") != std::string::npos;
        for (size_t i = 0; !cred.empty() && i <= cred.size();) {
            size_t colon = std::min(cred.find(':', i), cred.size());
            if (colon > i && curl_error.find(cred.substr(i, colon - i)) != std::string::npos) {
                quotes_url = true;
            }
            i = colon + 1;
        }
        if (!curl_error.empty() && !quotes_url) {
            r.error += ": " + curl_error;
        }
        return r;
    }
    r.http_status = http_status;
    r.ok = http_status >= expect_lo && http_status <= expect_hi;
    if (!r.ok) {
        r.error = "HTTP " + std::to_string(http_status) + " (expected " +
                  std::to_string(expect_lo) +
                  (expect_lo == expect_hi ? "" : ".." + std::to_string(expect_hi)) + ")";
    }
    return r;
}

void record_probe(RedisConn& redis, const std::string& route, const ProbeResult& r,
                  uint64_t checked_at_ms) {
    std::string key = keys::health_check(route);
    char dur[64];
    std::snprintf(dur, sizeof dur, "%.3f", r.duration_ms);
    std::string status = std::to_string(r.http_status), at = std::to_string(checked_at_ms);
    // Only the lease holder writes a route's hash during an interval, so the read-modify-write of
    // the count needs no script; MULTI keeps a reader from seeing half a result.
    if (!redis.ensure()) {
        throw std::runtime_error("cannot record the health check of route '" + route +
                                 "': " + redis.last_error());
    }
    redis.append({"MULTI"});
    if (r.ok) {
        redis.append({"HSET", key, "status", "ok", "http_status", status, "duration_ms", dur,
                      "checked_at_ms", at, "consecutive_failures", "0", "last_error", "",
                      "last_ok_at_ms", at});
    } else {
        redis.append({"HSET", key, "status", "failing", "http_status", status, "duration_ms", dur,
                      "checked_at_ms", at, "last_error", r.error});
        redis.append({"HINCRBY", key, "consecutive_failures", "1"});
    }
    redis.append({"EXEC"});
    std::vector<Reply> replies;
    if (!redis.read_replies(replies) || replies.empty() || is_error(replies.back()) ||
        replies.back()->type != REDIS_REPLY_ARRAY) {
        throw std::runtime_error("cannot record the health check of route '" + route +
                                 "': " + redis.last_error());
    }
}

void HealthChecks::start() {
    bool any = std::any_of(cfg_.routes.begin(), cfg_.routes.end(),
                           [](const Route& r) { return !r.health_url.empty(); });
    if (any) {
        stopping_ = false;
        thread_ = std::thread([this] { run(); });
    }
}

void HealthChecks::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

// Each turn: lease and start what is due, record what finished, then sleep until the next due
// time (a probe under way wakes the multi handle sooner).
void HealthChecks::run() {
    std::vector<size_t> checked;
    for (size_t i = 0; i < cfg_.routes.size(); ++i) {
        if (!cfg_.routes[i].health_url.empty()) {
            checked.push_back(i);
        }
    }
    Probes probes(cfg_.routes.size());
    std::vector<uint64_t> due(cfg_.routes.size(), mono_ms());
    while (!stopping_) {
        uint64_t now = mono_ms();
        for (size_t i : checked) {
            if (!probes.running(i) && due[i] <= now) {
                if (auto later = leased_elsewhere(cfg_.routes[i], now)) {
                    due[i] = *later;
                } else {
                    probes.start(i, cfg_.routes[i]);
                }
            }
        }
        probes.reap([&](const Probe& p, CURLcode code) {
            const Route& rt = cfg_.routes[p.route];
            record(redis_, rt, p, code);
            due[p.route] = mono_ms() + rt.health_interval_ms;
        });

        now = mono_ms();
        uint64_t next = now + 1000;
        for (size_t i : checked) {
            if (!probes.running(i)) {
                next = std::min(next, due[i]);
            }
        }
        uint64_t wait_ms = next > now ? std::min<uint64_t>(next - now, 250) : 0;
        if (probes.in_flight() > 0) {
            probes.poll(static_cast<int>(wait_ms));
        } else if (wait_ms > 0) {
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                         [&] { return stopping_.load(); });
        }
    }
}

// The route's lease for this interval (SET NX PX): nullopt when this worker took it and probes;
// otherwise when to look again: when the holder's lease ends, or soon if Redis failed.
std::optional<uint64_t> HealthChecks::leased_elsewhere(const Route& rt, uint64_t now) {
    std::string lease = keys::health_check_lease(rt.name);
    Reply got = redis_.command(
        {"SET", lease, cfg_.worker_id, "NX", "PX", std::to_string(rt.health_interval_ms)});
    if (!got || is_error(got)) {
        if (!redis_down_logged_) {
            log::warn("health checks: Redis unavailable; retrying",
                      {{"error", redis_.last_error()}});
            redis_down_logged_ = true;
        }
        return now + std::min<uint64_t>(rt.health_interval_ms, 2000);
    }
    redis_down_logged_ = false;
    if (got->type != REDIS_REPLY_NIL) {
        return std::nullopt;
    }
    Reply ttl = redis_.command({"PTTL", lease});
    long long left = ttl && ttl->type == REDIS_REPLY_INTEGER ? ttl->integer : 0;
    return now + static_cast<uint64_t>(std::clamp<long long>(
                     left, 10, static_cast<long long>(rt.health_interval_ms)));
}

}  // namespace hookq
