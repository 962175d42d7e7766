#include "worker/jobs/health_checks.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

void HealthChecks::run() {
    CURLM* multi = curl_multi_init();
    std::vector<size_t> checked;
    for (size_t i = 0; i < cfg_.routes.size(); ++i) {
        if (!cfg_.routes[i].health_url.empty()) {
            checked.push_back(i);
        }
    }
    std::vector<uint64_t> due(cfg_.routes.size(), mono_ms());
    std::vector<Probe*> running(cfg_.routes.size(), nullptr);
    size_t in_flight = 0;
    bool redis_down_logged = false;

    while (!stopping_) {
        uint64_t now = mono_ms();
        // Lease and start every due probe that is not running yet.
        for (size_t i : checked) {
            if (running[i] || due[i] > now) {
                continue;
            }
            const Route& rt = cfg_.routes[i];
            std::string lease = keys::health_check_lease(rt.name);
            Reply got = redis_.command(
                {"SET", lease, cfg_.worker_id, "NX", "PX", std::to_string(rt.health_interval_ms)});
            if (!got || is_error(got)) {
                if (!redis_down_logged) {
                    log::warn("health checks: Redis unavailable; retrying",
                              {{"error", redis_.last_error()}});
                    redis_down_logged = true;
                }
                due[i] = now + std::min<uint64_t>(rt.health_interval_ms, 2000);
                continue;
            }
            redis_down_logged = false;
            if (got->type == REDIS_REPLY_NIL) {
                // Another worker probes this interval: look again when its lease ends.
                Reply ttl = redis_.command({"PTTL", lease});
                long long left = ttl && ttl->type == REDIS_REPLY_INTEGER ? ttl->integer : 0;
                due[i] = now + static_cast<uint64_t>(std::clamp<long long>(
                                   left, 10, static_cast<long long>(rt.health_interval_ms)));
                continue;
            }
            auto* p = new Probe;
            p->route = i;
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
            curl_easy_setopt(e, CURLOPT_PRIVATE, p);
            curl_multi_add_handle(multi, e);
            running[i] = p;
            ++in_flight;
        }

        int still = 0;
        curl_multi_perform(multi, &still);
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            Probe* p = nullptr;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
            const Route& rt = cfg_.routes[p->route];
            long code = 0;
            curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &code);
            curl_off_t total_us = 0;
            curl_easy_getinfo(p->easy, CURLINFO_TOTAL_TIME_T, &total_us);
            ProbeResult r = judge_probe(
                m->data.result, code, static_cast<double>(total_us) / 1000.0, rt.health_expect_lo,
                rt.health_expect_hi, rt.health_timeout_ms, p->errbuf, rt.health_url);
            try {
                record_probe(redis_, rt.name, r, p->started_wall_ms);
            } catch (const std::exception& ex) {
                log::warn("health checks: result not recorded", {{"error", ex.what()}});
            }
            if (!r.ok) {
                log::debug("health check failing", {{"route", rt.name}, {"error", r.error}});
            }
            due[p->route] = mono_ms() + rt.health_interval_ms;
            running[p->route] = nullptr;
            --in_flight;
            curl_multi_remove_handle(multi, p->easy);
            curl_easy_cleanup(p->easy);
            delete p;
        }

        now = mono_ms();
        uint64_t next = now + 1000;
        for (size_t i : checked) {
            if (!running[i]) {
                next = std::min(next, due[i]);
            }
        }
        uint64_t wait_ms = next > now ? std::min<uint64_t>(next - now, 250) : 0;
        if (in_flight > 0) {
            curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
        } else if (wait_ms > 0) {
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                         [&] { return stopping_.load(); });
        }
    }
    for (size_t i : checked) {
        if (Probe* p = running[i]) {
            curl_multi_remove_handle(multi, p->easy);
            curl_easy_cleanup(p->easy);
            delete p;
        }
    }
    curl_multi_cleanup(multi);
}

}  // namespace hookq
