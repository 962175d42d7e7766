#include "worker/config/sections.h"

#include <optional>
#include <string>
#include <utility>

namespace hookq::config_detail {

// health_url and its schedule. The interval's floor is a second (a probe is one small GET), so
// that a test or a staging setup need not wait minutes; the timeout must end before the next probe.
void read_health_check(const Reader& r, const toml::table& rt, Route& route,
                       const std::string& ctx) {
    route.health_url = r.str(rt, "health_url").value_or("");
    for (std::string_view key : {"health_interval", "health_timeout", "health_expect"}) {
        if (route.health_url.empty() && rt.get(key)) {
            r.fail(r.where(rt, key), ctx + ": '" + std::string(key) + "' needs 'health_url'");
        }
    }
    if (route.health_url.empty()) {
        return;
    }
    if (auto at = bad_url_byte(route.health_url)) {
        r.fail(r.where(rt, "health_url"),
               ctx + ": " + url_byte_error("health_url", route.health_url, *at));
    }
    if (!url_destination(route.health_url)) {
        r.fail(r.where(rt, "health_url"),
               ctx + ": 'health_url' must be an http:// or https:// URL");
    }
    route.health_interval_ms =
        r.duration(rt, "health_interval", 1000, 3600 * 1000).value_or(route.health_interval_ms);
    route.health_timeout_ms =
        r.duration(rt, "health_timeout", 1000, 30 * 1000).value_or(route.health_timeout_ms);
    if (route.health_timeout_ms > route.health_interval_ms) {
        r.fail(r.where(rt, rt.get("health_timeout") ? "health_timeout" : "health_interval"),
               ctx + ": 'health_timeout' must not be longer than 'health_interval'");
    }
    if (const toml::node* n = rt.get("health_expect")) {
        std::optional<std::pair<int, int>> range;
        auto status = [](std::string_view t) -> std::optional<int> {
            int v = 0;
            if (t.size() != 3) {
                return std::nullopt;
            }
            for (char c : t) {
                if (c < '0' || c > '9') {
                    return std::nullopt;
                }
                v = v * 10 + (c - '0');
            }
            return v >= 100 && v <= 599 ? std::optional(v) : std::nullopt;
        };
        if (n->is_integer()) {
            auto v = status(std::to_string(n->as_integer()->get()));
            if (v) {
                range = std::make_pair(*v, *v);
            }
        } else if (n->is_string()) {
            std::string_view t = n->as_string()->get();
            if (t.size() == 3 && t[0] >= '1' && t[0] <= '5' && t.substr(1) == "xx") {
                int h = (t[0] - '0') * 100;
                range = std::make_pair(h, h + 99);
            } else {
                size_t sep = t.find("..");
                size_t len = 2;
                if (sep == std::string_view::npos) {
                    sep = t.find('-');
                    len = 1;
                }
                auto lo = status(t.substr(0, sep));
                auto hi = sep == std::string_view::npos ? lo : status(t.substr(sep + len));
                if (lo && hi && *lo <= *hi) {
                    range = std::make_pair(*lo, *hi);
                }
            }
        }
        if (!range) {
            r.fail(n->source(), ctx +
                                    ": 'health_expect' must be a status (200), a range "
                                    "(\"200..399\") or a class (\"2xx\")");
        }
        route.health_expect_lo = range->first;
        route.health_expect_hi = range->second;
    }
}

}  // namespace hookq::config_detail
