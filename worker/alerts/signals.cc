// The alerting engine's signals: what each rule observes, read from the rollups, the dead letters,
// Redis (queues, breakers, health checks) and the edges' counters; never delivery_attempts in
// bulk, never the delivery path.
#include <curl/curl.h>

#include <algorithm>
#include <cstdio>

#include "shared/redis_keys.h"
#include "worker/alerts/engine.h"
#include "worker/cli/common.h"
#include "worker/log.h"
#include "worker/ops/breakers.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"

namespace hookq::alerts {

namespace {

using ctl::cell;
using ctl::is_null;

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

std::string interval_sql(uint64_t ms) {
    return std::to_string(ms) + " milliseconds";
}

size_t collect(char* p, size_t size, size_t n, void* out) {
    auto* s = static_cast<std::string*>(out);
    if (s->size() > (8u << 20)) {
        return 0;  // an edge's status page is kilobytes; stop anything unbounded
    }
    s->append(p, size * n);
    return size * n;
}

}  // namespace

Engine::Observations Engine::evaluate(const std::string& rule, int64_t now) {
    const AlertRule& rc = acfg_.rules.at(rule);
    if (rule == "redis_down" || rule == "postgres_down") {
        bool down = rule == "redis_down" ? !redis_ok_ : !pg_ok_;
        Observation o;
        o.active = down;
        o.value = down ? 1 : 0;
        o.threshold = rc.threshold;
        o.summary = std::string(rule == "redis_down" ? "Redis" : "PostgreSQL") +
                    (down ? " unreachable from the alerting engine" : " reachable");
        return std::vector<Observation>{o};
    }
    static const std::set<std::string> pg_rules = {"failure_ratio", "slow_p95",
                                                   "slow_delivery", "dead_letters",
                                                   "source_silent", "fallback_used"};
    if (pg_rules.count(rule)) {
        if (!pg_ok_) {
            return std::nullopt;
        }
        if (rule == "dead_letters") {
            return dead_letters();
        }
        if (rule == "source_silent") {
            return source_silent(now);
        }
        if (rule == "fallback_used") {
            return fallback_used();
        }
        return delivery_stats(rule);
    }
    if (rule == "signature_failures") {
        return signature_failures(now);
    }
    if (!redis_ok_) {
        return std::nullopt;
    }
    if (rule == "breaker_open") {
        return breakers();
    }
    if (rule == "health_check") {
        return health_checks();
    }
    if (rule == "redis_memory") {
        return redis_memory();
    }
    return queues(rule);
}

// failure_ratio, slow_p95 and slow_delivery, per route, from the minute rollups the recorder keeps
// (migrations/0004): never from delivery_attempts.
Engine::Observations Engine::delivery_stats(const std::string& rule) {
    const AlertRule& rc = acfg_.rules.at(rule);
    PgResult r =
        ctl::query(pg_,
                   "SELECT route, sum(delivered)::text, sum(retried + dead)::text, "
                   "coalesce(hookq_hist_sum(duration_hist), '{}')::text FROM delivery_stats_minute "
                   "WHERE bucket >= date_trunc('minute', now() - $1::interval) GROUP BY route",
                   {interval_sql(rc.window_ms)});
    if (!r) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Observation o;
        o.labels = {{"route", cell(r, i, 0)}};
        double ok = std::stod(cell(r, i, 1));
        double failed = std::stod(cell(r, i, 2));
        double total = ok + failed;
        o.threshold = rc.threshold;
        if (rule == "failure_ratio") {
            o.value = total > 0 ? failed / total : 0;
            bool enough = total >= rc.min_count && total > 0;
            o.active = enough && o.value >= rc.threshold;
            o.summary = fmt(failed) + " of " + fmt(total) + " attempts failed in the last " +
                        fmt(static_cast<double>(rc.window_ms) / 1000) + " s";
            if (rc.warn_threshold > 0) {
                // The warning level is its own alert: crossing into critical resolves it and
                // fires the critical one, so an escalation is announced.
                Observation w = o;
                w.labels["level"] = "warning";
                w.threshold = rc.warn_threshold;
                w.severity = rc.warn_severity;
                w.active = enough && o.value >= rc.warn_threshold && o.value < rc.threshold;
                out.push_back(std::move(w));
            }
        } else {
            ops::Histogram h(kStatsBuckets, 0);
            ops::add_histogram(h, cell(r, i, 3));
            uint64_t n = 0;
            for (uint64_t c : h) {
                n += c;
            }
            if (rule == "slow_p95") {
                auto p95 = ops::percentile_ms(h, 0.95);
                o.value = p95 ? *p95 / 1000 : 0;
                o.active = p95 && static_cast<double>(n) >= std::max(1.0, rc.min_count) &&
                           o.value >= rc.threshold;
                o.summary = "p95 attempt duration " + fmt(o.value) + " s over " +
                            std::to_string(n) + " attempts";
            } else {
                // Attempts whose bucket lies wholly above the threshold.
                uint64_t thr_us = static_cast<uint64_t>(rc.threshold * 1e6);
                uint64_t slow = 0;
                for (size_t k = 1; k < h.size(); ++k) {
                    if (kStatsBounds[k - 1] >= thr_us) {
                        slow += h[k];
                    }
                }
                o.value = static_cast<double>(slow);
                o.active = slow >= 1;
                o.summary =
                    std::to_string(slow) + " attempts took over " + fmt(rc.threshold) + " s";
            }
        }
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::dead_letters() {
    const AlertRule& rc = acfg_.rules.at("dead_letters");
    PgResult r = ctl::query(pg_,
                            "SELECT route, source, count(*)::text FROM dead_letters WHERE "
                            "failed_at >= now() - $1::interval GROUP BY route, source",
                            {interval_sql(rc.window_ms)});
    if (!r) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Observation o;
        std::string source = cell(r, i, 1);
        o.labels = {{"route", cell(r, i, 0)}, {"source", source}};
        o.value = std::stod(cell(r, i, 2));
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        const auto& pay = acfg_.payment_sources;
        if (std::find(pay.begin(), pay.end(), source) != pay.end() &&
            severity_rank(rc.severity) > 1) {
            o.severity = "P1";
        }
        o.summary = fmt(o.value) + " dead letters in the last " +
                    fmt(static_cast<double>(rc.window_ms) / 60000) + " min";
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::source_silent(int64_t now) {
    std::vector<Observation> out;
    for (const auto& [source, after_ms] : acfg_.silent_after) {
        PgResult r = ctl::query(pg_,
                                "SELECT (extract(epoch FROM max(received_at)) * 1000)::bigint "
                                "FROM webhook_events WHERE source = $1 AND received_at > now() - "
                                "interval '90 days'",
                                {source});
        if (!r) {
            return std::nullopt;
        }
        // Never heard from since this worker started: silent since then.
        int64_t last = is_null(r, 0, 0) ? started_ms_ : std::stoll(cell(r, 0, 0));
        Observation o;
        o.labels = {{"source", source}};
        o.value = static_cast<double>(std::max<int64_t>(0, now - last)) / 1000;
        o.threshold = static_cast<double>(after_ms) / 1000;
        o.active = o.value >= o.threshold;
        o.summary = "no webhook from " + source + " for " + fmt(o.value) + " s";
        out.push_back(std::move(o));
    }
    return out;
}

// Attempts recorded against a route's fallback_url: the recorder writes the URL it used, so the
// signal costs the delivery path nothing.
Engine::Observations Engine::fallback_used() {
    const AlertRule& rc = acfg_.rules.at("fallback_used");
    std::vector<Observation> out;
    for (const auto& route : cfg_.routes) {
        if (route.fallback_url.empty()) {
            continue;
        }
        PgResult r = ctl::query(pg_,
                                "SELECT count(*)::text FROM delivery_attempts WHERE started_at >= "
                                "now() - $1::interval AND route = $2 AND split_part(url, '?', 1) "
                                "= split_part($3, '?', 1)",
                                {interval_sql(rc.window_ms), route.name, route.fallback_url});
        if (!r) {
            return std::nullopt;
        }
        Observation o;
        o.labels = {{"route", route.name}};
        o.value = std::stod(cell(r, 0, 0));
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        o.summary = fmt(o.value) + " deliveries went to the fallback URL";
        out.push_back(std::move(o));
    }
    return out;
}

// queue_depth, queue_age, retry_overdue, loop_detected and queue_unreachable, per queue, against
// Redis's clock. On Redis Cluster each queue lives on its own master: one that does not answer
// leaves its queue's alerts as they were (unknown) rather than blinding the rule for every queue,
// and is itself what queue_unreachable reports.
Engine::Observations Engine::queues(const std::string& rule) {
    const AlertRule& rc = acfg_.rules.at(rule);
    uint64_t now_ms = ctl::redis_now_ms(redis_);
    std::vector<Observation> out;
    for (const auto& q : cfg_.queues) {
        Observation o;
        o.labels = {{"queue", q}};
        o.threshold = rc.threshold;
        try {
            queue_signal(rule, q, now_ms, o);
        } catch (const std::exception& e) {
            if (rule != "queue_unreachable") {
                o.unknown = true;
                out.push_back(std::move(o));
                continue;
            }
            o.value = 1;
            o.summary = std::string("its Redis master does not answer (") + e.what() +
                        "): the edge refuses its webhooks (503), none are claimed, and recorded "
                        "deliveries wait in inflight for their ack";
        }
        o.active = rule == "queue_depth" ? o.value > rc.threshold : o.value >= rc.threshold;
        out.push_back(std::move(o));
    }
    return out;
}

void Engine::queue_signal(const std::string& rule, const std::string& q, uint64_t now_ms,
                          Observation& o) {
    const AlertRule& rc = acfg_.rules.at(rule);
    if (rule == "queue_unreachable") {
        ctl::must(redis_, {"EXISTS", keys::queue(q)});
        o.value = 0;
        o.summary = "its Redis master answers";
    } else if (rule == "queue_depth") {
        Reply r = ctl::must(redis_, {"LLEN", keys::queue(q)});
        o.value = static_cast<double>(r->integer);
        o.summary = fmt(o.value) + " webhooks waiting";
    } else if (rule == "queue_age") {
        o.value = std::max(0.0, ops::tail_age_s(redis_, keys::queue(q), now_ms));
        o.summary = "the oldest waiting webhook arrived " + fmt(o.value) + " s ago";
    } else if (rule == "loop_detected") {
        // The edge lists an entity here once it repeats past hookq_loop_limit; it stays
        // until `hookqctl loops clear`, so the alert holds until someone has looked.
        Reply r = ctl::must(redis_, {"ZCARD", keys::loops(q)});
        Reply held = ctl::must(redis_, {"LLEN", keys::held(q)});
        o.value = static_cast<double>(r->integer);
        o.summary = fmt(o.value) + " entities repeating past hookq_loop_limit, " +
                    fmt(static_cast<double>(held->integer)) + " webhooks held (hookqctl loops)";
    } else {
        // Past due by more than the window: retries merely scheduled are not a backlog.
        std::string before = std::to_string(now_ms - std::min(now_ms, rc.window_ms));
        Reply r = ctl::must(redis_, {"ZCOUNT", keys::retry(q), "-inf", before});
        o.value = static_cast<double>(r->integer);
        o.summary = fmt(o.value) + " retries overdue by more than " +
                    fmt(static_cast<double>(rc.window_ms) / 1000) + " s";
    }
}

Engine::Observations Engine::breakers() {
    auto list = ops::list_breakers(redis_, ops::known_destinations(cfg_));
    std::vector<Observation> out;
    for (const auto& b : list) {
        Observation o;
        std::string state = b.value("state", "closed");
        o.labels = {{"destination", b.value("destination", "")}};
        o.active = state == "open" || state == "half_open";
        o.value = o.active ? 1 : 0;
        o.threshold = 1;
        o.summary = o.active ? "circuit breaker " + state + ": deliveries are parked"
                             : "circuit breaker closed: deliveries flow again";
        out.push_back(std::move(o));
    }
    return out;
}

// The destination health checks' state (CONTRACT2: the hash hookq:hc:{<route>}).
Engine::Observations Engine::health_checks() {
    const AlertRule& rc = acfg_.rules.at("health_check");
    std::vector<Observation> out;
    for (const auto& route : cfg_.routes) {
        Reply r =
            ctl::must(redis_, {"HGET", keys::health_check(route.name), "consecutive_failures"});
        if (r->type != REDIS_REPLY_STRING) {
            continue;  // no health check on this route
        }
        Observation o;
        o.labels = {{"route", route.name}};
        o.value = std::strtod(std::string(r->str, r->len).c_str(), nullptr);
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        o.summary = fmt(o.value) + " consecutive failed health checks";
        out.push_back(std::move(o));
    }
    return out;
}

// Each Redis node's used memory as a share of its maxmemory (nodes without one have no limit to
// reach). At 1 Redis refuses writes and the edge answers 503 to everything on that node.
Engine::Observations Engine::redis_memory() {
    const AlertRule& rc = acfg_.rules.at("redis_memory");
    std::vector<Observation> out;
    auto nodes = ops::redis_memory(redis_);
    for (const auto& m : nodes) {
        if (m.reachable && m.max <= 0) {
            continue;
        }
        Observation o;
        o.labels = {{"node", m.node}};
        o.threshold = rc.threshold;
        if (!m.reachable) {
            o.unknown = true;  // a lost master keeps its alert's state; queue_unreachable speaks
            out.push_back(std::move(o));
            continue;
        }
        o.value = m.used / m.max;
        o.active = o.value > rc.threshold;
        o.summary = fmt(o.value * 100) + " % of maxmemory used (" + fmt(m.used / 1048576) + " of " +
                    fmt(m.max / 1048576) + " MiB)";
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::signature_failures(int64_t now) {
    const AlertRule& rc = acfg_.rules.at("signature_failures");
    if (acfg_.edge_metrics.empty()) {
        return std::vector<Observation>{};
    }
    std::map<std::string, double> increase;
    bool any = false;
    for (const auto& url : acfg_.edge_metrics) {
        std::string body;
        CURL* c = curl_easy_init();
        if (!c) {
            continue;
        }
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        CURLcode rc_curl = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        if (rc_curl != CURLE_OK || status != 200) {
            log::warn("alerting: cannot read the edge's counters",
                      {{"error", rc_curl != CURLE_OK ? curl_easy_strerror(rc_curl)
                                                     : "HTTP " + std::to_string(status)}});
            continue;
        }
        any = true;
        auto& samples = edge_samples_[url];
        samples.push_back(Sample{now, parse_edge_failures(body)});
        // Keep one sample at or before the window's start: the baseline.
        while (samples.size() > 2 && samples[1].ms <= now - static_cast<int64_t>(rc.window_ms)) {
            samples.pop_front();
        }
        const Sample& base = samples.front();
        for (const auto& [source, v] : samples.back().failures) {
            auto it = base.failures.find(source);
            double before = it == base.failures.end() ? 0 : it->second;
            increase[source] += v >= before ? v - before : v;  // a reload resets the counters
        }
    }
    if (!any) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (const auto& [source, n] : increase) {
        Observation o;
        o.labels = {{"source", source}};
        o.value = n;
        o.threshold = rc.threshold;
        o.active = n >= rc.threshold;
        o.summary = fmt(n) + " requests refused for their signature";
        out.push_back(std::move(o));
    }
    return out;
}

}  // namespace hookq::alerts
