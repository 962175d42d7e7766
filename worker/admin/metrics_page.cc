#include "worker/admin/metrics_page.h"

#include <algorithm>
#include <chrono>

#include "worker/admin/auth.h"
#include "worker/clock.h"
#include "worker/log.h"
#include "worker/ops/health_checks.h"
#include "worker/ops/slo.h"
#include "worker/ops/status.h"

namespace hookq::admin {

namespace {

constexpr uint64_t kScrapeIdleMs = 120 * 1000;

// What a lost Redis Cluster master kept the snapshot from reading (its queues, or the fleet-wide
// breakers and pauses) keeps the last values read: gauges that dropped to nothing would resolve
// the very alerts that matter then. hookq_queue_up says which queues are stale.
void keep_last_of_unreachable(Json& now, const Json& last) {
    if (last.is_null()) {
        return;
    }
    for (Json& q : now["queues"]) {
        if (q.value("reachable", true)) {
            continue;
        }
        for (const Json& old : last.value("queues", Json::array())) {
            if (old.value("queue", "") == q.value("queue", "") && old.contains("depth")) {
                for (const auto& [k, v] : old.items()) {
                    if (!q.contains(k)) {
                        q[k] = v;
                    }
                }
            }
        }
    }
    for (const char* k : {"breakers", "pauses", "routes_paused", "sources_paused"}) {
        if (!now.contains(k) && last.contains(k)) {
            now[k] = last[k];
        }
    }
}

}  // namespace

HttpReply MetricsPage::answer(MHD_Connection* c) {
    if (!cfg_.admin.metrics_public) {
        std::string authz = header(c, "Authorization");
        const AdminToken* token = authenticate(cfg_.admin.tokens, authz);
        if (!token) {
            log::info("admin API request refused",
                      {{"path", "/metrics"}, {"status", 401}, {"remote_addr", client_address(c)}});
            HttpReply r = error(401, "unauthorized",
                                authz.empty() ? "send Authorization: Bearer <token> (any role), "
                                                "or set [admin] metrics_public = true"
                                              : "the bearer token is not one of [admin]'s tokens");
            r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hookq\"");
            return r;
        }
        if (!token->sources.empty()) {
            // Metrics name every route, destination and queue: more than a limited token may see.
            return error(
                403, "forbidden",
                "token '" + token->name + "' is limited to some sources; /metrics covers them all");
        }
    }
    HttpReply r;
    std::string text = metrics::global().render();
    {
        std::lock_guard lock(mu_);
        uint64_t now = mono_ms();
        bool first = last_scrape_ms_ == 0 || now - last_scrape_ms_ >= kScrapeIdleMs;
        last_scrape_ms_ = now;
        metrics::SnapshotInfo info = info_;
        info.age_s = ok_ms_ ? static_cast<double>(now - ok_ms_) / 1000.0 : -1;
        text += metrics::render_snapshot(status_, info);
        text += metrics::render_health_slo(health_checks_, slo_);
        if (first) {
            cv_.notify_all();  // the refresh was paused: start it now
        }
    }
    r.text = std::move(text);
    return r;
}

void MetricsPage::refresh(Session& s) {
    uint64_t t0 = mono_ms();
    std::string err;
    bool pg_ok = s.pg_answers(err);
    bool redis_ok = s.redis_answers();
    Json st;
    bool ok = false;
    if (pg_ok && redis_ok) {
        try {
            st = ops::status(s.redis, s.pg, cfg_, cfg_.queues);
            ok = true;
        } catch (const std::exception& e) {
            err = e.what();
        }
    } else if (!redis_ok) {
        err = s.redis.last_error();
    }
    // The SLO status and the health checks' results for their gauges, computed here so that a
    // scrape never waits on them; each keeps its last value when it fails.
    Json slo, checks;
    if (redis_ok) {
        try {
            checks = ops::health_checks(s.redis, cfg_);
            if (pg_ok) {
                slo = ops::slo(s.redis, s.pg, cfg_);
            }
        } catch (const std::exception& e) {
            log::debug("metrics snapshot: SLO or health checks failed", {{"error", e.what()}});
        }
    }
    uint64_t now = mono_ms();
    std::lock_guard lock(mu_);
    if (!ok && (info_.ok || done_ms_ == 0)) {
        log::warn("metrics snapshot failed; /metrics keeps the last one",
                  {{"error", err}, {"redis", redis_ok}, {"postgres", pg_ok}});
    }
    info_.ok = ok;
    info_.redis_up = redis_ok;
    info_.postgres_up = pg_ok;
    info_.duration_s = static_cast<double>(now - t0) / 1000.0;
    done_ms_ = now;
    if (ok) {
        keep_last_of_unreachable(st, status_);
        status_ = std::move(st);
        ok_ms_ = now;
    }
    if (!checks.is_null()) {
        health_checks_ = std::move(checks);
    }
    if (!slo.is_null()) {
        slo_ = std::move(slo);
    }
}

void MetricsPage::loop() {
    Session s(cfg_);
    std::unique_lock lock(mu_);
    while (!stop_) {
        uint64_t now = mono_ms();
        bool watched = last_scrape_ms_ != 0 && now - last_scrape_ms_ < kScrapeIdleMs;
        uint64_t due = done_ms_ + cfg_.admin.metrics_refresh_ms;
        if (!watched || (done_ms_ != 0 && now < due)) {
            uint64_t wait = watched ? due - now : 1000;
            cv_.wait_for(lock, std::chrono::milliseconds(std::min<uint64_t>(wait, 1000)));
            continue;
        }
        lock.unlock();
        refresh(s);
        lock.lock();
    }
}

void MetricsPage::start() {
    if (thread_.joinable()) {
        return;
    }
    stop_ = false;
    thread_ = std::thread([this] { loop(); });
}

void MetricsPage::stop() {
    if (!thread_.joinable()) {
        return;
    }
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

}  // namespace hookq::admin
