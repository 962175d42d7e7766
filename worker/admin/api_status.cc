// The overview endpoints: /status, /health, /slo, /destinations/health, /routes and /stats.
#include "worker/admin/api_handlers.h"
#include "worker/clock.h"
#include "worker/ops/health.h"
#include "worker/ops/health_checks.h"
#include "worker/ops/routes.h"
#include "worker/ops/slo.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"

namespace hookq::admin::handlers {

namespace {
constexpr uint64_t kStatusCacheMs = 1000;  // Api::StatusCache
}  // namespace

HttpReply status(Call& c) {
    std::string key = c.scope.sources ? ops::pg_text_array(*c.scope.sources) : "*";
    Api::StatusCache& cache = c.api.status_cache;
    uint64_t now = mono_ms();
    {
        std::lock_guard lock(cache.mu);
        auto it = cache.by_scope.find(key);
        if (it != cache.by_scope.end() && now - it->second.first < kStatusCacheMs) {
            return ok(it->second.second);
        }
    }
    Json body = ops::status(c.s.redis, c.s.pg, c.cfg, c.cfg.queues, c.scope);
    std::lock_guard lock(cache.mu);
    cache.by_scope[key] = {now, body};
    return ok(std::move(body));
}

// Answers when a backend is down too: that is when it matters. Unreachable Redis or PostgreSQL
// makes the sources unhealthy (200, with the reasons), where other endpoints answer 503.
HttpReply health(Call& c) {
    return ok(ops::health(c.s.redis, c.s.pg, c.cfg, c.scope));
}

HttpReply slo(Call& c) {
    return ok(ops::slo(c.s.redis, c.s.pg, c.cfg, c.scope));
}

HttpReply destinations_health(Call& c) {
    return ok(ops::health_checks(c.s.redis, c.cfg, c.scope));
}

HttpReply routes(Call& c) {
    return ok(ops::list_routes(c.s.pg, c.s.redis, c.cfg, c.scope));
}

HttpReply stats(Call& c) {
    ops::StatsQuery q = ops::parse_stats_query(c.args);
    if (auto no = c.source_refused(q.source)) {
        return *no;
    }
    return ok(ops::stats(c.s.pg, c.cfg, q, c.scope));
}

}  // namespace hookq::admin::handlers
