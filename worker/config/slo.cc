#include "worker/config/sections.h"

#include <set>
#include <string>
#include <tuple>

namespace hookq::config_detail {

// [slo] and its [slo.sources.<name>] / [slo.routes.<name>] overrides, which start from the
// global thresholds. After the routes: an override must name a known source or route.
void read_slo(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* t = r.table(root, "slo");
    if (!t) {
        return;
    }
    auto read = [&](const toml::table& tt, std::string_view ctx, SloThresholds th,
                    bool nested) -> SloThresholds {
        if (nested) {
            r.only_keys(
                tt, ctx,
                {"error_rate_degraded", "error_rate_unhealthy", "lag_degraded", "lag_unhealthy",
                 "failures_degraded", "failures_unhealthy", "window", "sources", "routes"});
        } else {
            r.only_keys(tt, ctx,
                        {"error_rate_degraded", "error_rate_unhealthy", "lag_degraded",
                         "lag_unhealthy", "failures_degraded", "failures_unhealthy", "window"});
        }
        th.error_rate_degraded =
            r.number(tt, "error_rate_degraded", 0.0001, 1.0).value_or(th.error_rate_degraded);
        th.error_rate_unhealthy =
            r.number(tt, "error_rate_unhealthy", 0.0001, 1.0).value_or(th.error_rate_unhealthy);
        th.lag_degraded_ms =
            r.duration(tt, "lag_degraded", 1000, kDay).value_or(th.lag_degraded_ms);
        th.lag_unhealthy_ms =
            r.duration(tt, "lag_unhealthy", 1000, kDay).value_or(th.lag_unhealthy_ms);
        th.failures_degraded =
            static_cast<uint64_t>(r.integer(tt, "failures_degraded", 1, 1000000000)
                                      .value_or(static_cast<int64_t>(th.failures_degraded)));
        th.failures_unhealthy =
            static_cast<uint64_t>(r.integer(tt, "failures_unhealthy", 1, 1000000000)
                                      .value_or(static_cast<int64_t>(th.failures_unhealthy)));
        // The minute rollups are kept 48 h; a window ends at the current (partial) minute.
        th.window_ms = r.duration(tt, "window", 60 * 1000, 24 * 3600 * 1000).value_or(th.window_ms);
        if (th.error_rate_unhealthy < th.error_rate_degraded) {
            r.fail(r.where(tt, "error_rate_unhealthy"),
                   std::string(ctx) +
                       ": 'error_rate_unhealthy' must not be below "
                       "'error_rate_degraded'");
        }
        if (th.lag_unhealthy_ms < th.lag_degraded_ms) {
            r.fail(r.where(tt, "lag_unhealthy"),
                   std::string(ctx) + ": 'lag_unhealthy' must not be below 'lag_degraded'");
        }
        if (th.failures_unhealthy < th.failures_degraded) {
            r.fail(r.where(tt, "failures_unhealthy"),
                   std::string(ctx) +
                       ": 'failures_unhealthy' must not be below "
                       "'failures_degraded'");
        }
        return th;
    };
    c.slo.global = read(*t, "[slo]", c.slo.global, true);
    std::set<std::string> sources, routes;
    for (const auto& rt : c.routes) {
        sources.insert(rt.source);
        routes.insert(rt.name);
    }
    sources.insert(c.queues.begin(), c.queues.end());
    for (auto [kind, known, out] :
         {std::tuple{"sources", &sources, &c.slo.sources}, {"routes", &routes, &c.slo.routes}}) {
        const toml::table* sub = r.table(*t, kind);
        if (!sub) {
            continue;
        }
        for (auto&& [name, node] : *sub) {
            std::string ctx = "[slo." + std::string(kind) + "." + std::string(name.str()) + "]";
            if (!node.is_table()) {
                r.fail(name.source(), ctx + " must be a table");
            }
            if (!known->count(std::string(name.str()))) {
                r.fail(name.source(),
                       ctx + ": no " +
                           std::string(kind == std::string_view("sources") ? "source" : "route") +
                           " '" + std::string(name.str()) + "' is configured");
            }
            (*out)[std::string(name.str())] = read(*node.as_table(), ctx, c.slo.global, false);
        }
    }
}

}  // namespace hookq::config_detail
