#include "worker/config/sections.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "shared/crypto.h"
#include "shared/secret.h"

namespace hookq::config_detail {

namespace {

// A dotted field path such as "events[].action": no empty step, no bare "[]".
bool field_path_ok(std::string_view path) {
    if (path.empty()) {
        return false;
    }
    for (size_t at = 0; at <= path.size();) {
        size_t dot = std::min(path.find('.', at), path.size());
        std::string_view seg = path.substr(at, dot - at);
        if (seg.empty() || seg == "[]") {
            return false;
        }
        at = dot + 1;
    }
    return true;
}

void read_batches(const Reader& r, const toml::table& rt, Route& route, const std::string& ctx) {
    route.split = r.str(rt, "split").value_or("");
    if (!route.split.empty() &&
        (!field_path_ok(route.split) || route.split.find("[]") != std::string::npos)) {
        r.fail(r.where(rt, "split"), ctx +
                                         ": 'split' must name the body's array of events by a "
                                         "field path without [] such as \"events\"");
    }
    route.order_key = r.str(rt, "order_key").value_or("");
    if (rt.get("order_key") && !field_path_ok(route.order_key)) {
        r.fail(r.where(rt, "order_key"),
               ctx + ": 'order_key' is not a field path such as \"events[].meta.href\"");
    }
    if (rt.get("coalesce_window")) {
        if (route.order_key.empty()) {
            r.fail(r.where(rt, "coalesce_window"),
                   ctx + ": 'coalesce_window' needs 'order_key' (what to coalesce by)");
        }
        route.coalesce_window_us =
            1000 * r.duration(rt, "coalesce_window", 1, 3600 * 1000).value_or(0);
    }
}

}  // namespace

void read_sources(const Reader& r, const toml::table& root, Config& c) {
    if (const toml::table* s = r.table(root, "sources")) {
        for (auto&& [name, node] : *s) {
            if (!node.is_table()) {
                r.fail(name.source(), "sources." + std::string(name.str()) + " must be a table");
            }
            const toml::table& st = *node.as_table();
            std::string ctx = "[sources." + std::string(name.str()) + "]";
            r.only_keys(st, ctx, {"event_header", "event_field"});
            SourceConfig sc;
            sc.event_header = r.str(st, "event_header").value_or("");
            sc.event_field = r.str(st, "event_field").value_or("");
            if (!sc.event_header.empty() && !sc.event_field.empty()) {
                r.fail(st.source(), ctx + ": set 'event_header' or 'event_field', not both");
            }
            c.sources[std::string(name.str())] = sc;
        }
    }
}

void read_routes(const Reader& r, const toml::table& root, Config& c) {
    const toml::node* routes = root.get("routes");
    if (!routes) {
        r.fail(root.source(), "no [[routes]]: the worker would have nowhere to deliver");
    }
    if (!routes->is_array_of_tables()) {
        r.fail(routes->source(), "'routes' must be an array of tables ([[routes]])");
    }
    std::set<std::string> names;
    for (const toml::node& rn : *routes->as_array()) {
        const toml::table& rt = *rn.as_table();
        Route route;
        route.index = c.routes.size();
        route.name = r.str(rt, "name").value_or("");
        // Names are stored as text, which drops a NUL ("a" and "a\u0000" would share rows), and
        // are written into log lines and metric labels.
        if (auto at = control_byte(route.name)) {
            // Not echoed: the message is a C string, and a terminal takes control bytes as orders.
            r.fail(r.where(rt, "name"), "[[routes]]: 'name' must not contain control characters (" +
                                            byte_at(route.name, *at) + ")");
        }
        std::string ctx = "[[routes]] '" + route.name + "'";
        r.only_keys(rt, ctx,
                    {"name",
                     "source",
                     "events",
                     "match",
                     "url",
                     "timeout",
                     "retry",
                     "rate_limit",
                     "fallback_url",
                     "secret",
                     "forward_headers",
                     "forward_headers_allow",
                     "forward_headers_deny",
                     "forward_query",
                     "redact_query",
                     "health_url",
                     "health_interval",
                     "health_timeout",
                     "health_expect",
                     "split",
                     "order_key",
                     "coalesce_window"});
        if (route.name.empty()) {
            r.fail(rt.source(), "[[routes]] needs a non-empty 'name'");
        }
        if (!names.insert(route.name).second) {
            r.fail(r.where(rt, "name"), "duplicate route name '" + route.name + "'");
        }
        route.source = r.str(rt, "source").value_or("");
        if (route.source.empty()) {
            r.fail(rt.source(), ctx + " needs 'source'");
        }
        // The source names the default queue, whose keys carry it as the hash tag {Q}: a brace
        // would end the tag early and put the queue's keys in different slots.
        if (route.source.find_first_of("{}") != std::string::npos) {
            r.fail(r.where(rt, "source"), ctx + ": 'source' must not contain '{' or '}'");
        }
        if (auto at = control_byte(route.source)) {
            r.fail(r.where(rt, "source"), ctx + ": 'source' must not contain control characters (" +
                                              byte_at(route.source, *at) + ")");
        }
        route.events = r.strings(rt, "events");
        if (const toml::table* mt = r.table(rt, "match")) {
            for (const auto& [key, node] : *mt) {
                FieldMatch m{std::string(key.str()), {}};
                if (!field_path_ok(m.path)) {
                    r.fail(key.source(), ctx + ": 'match' key \"" + m.path +
                                             "\" is not a field path such as \"events[].action\"");
                }
                if (node.is_string()) {
                    m.values.push_back(node.as_string()->get());
                } else {
                    m.values = r.strings(*mt, key.str());
                }
                if (m.values.empty()) {
                    r.fail(node.source(),
                           ctx + ": 'match' \"" + m.path +
                               "\" must be a string or a non-empty array of strings");
                }
                route.match.push_back(std::move(m));
            }
        }
        route.url = r.str(rt, "url").value_or("");
        if (auto at = bad_url_byte(route.url)) {
            r.fail(r.where(rt, "url"), ctx + ": " + url_byte_error("url", route.url, *at));
        }
        auto dest = url_destination(route.url);
        if (!dest) {
            r.fail(r.where(rt, "url"), ctx + ": 'url' must be an http:// or https:// URL");
        }
        route.destination = *dest;
        route.fallback_url = r.str(rt, "fallback_url").value_or("");
        if (auto at = bad_url_byte(route.fallback_url)) {
            r.fail(r.where(rt, "fallback_url"),
                   ctx + ": " + url_byte_error("fallback_url", route.fallback_url, *at));
        }
        if (!route.fallback_url.empty() && !url_destination(route.fallback_url)) {
            r.fail(r.where(rt, "fallback_url"),
                   ctx + ": 'fallback_url' must be an http:// or https:// URL");
        }
        // Up to 5 minutes for applications that process inline; such a transfer holds one of
        // the loop's slots for as long, and a drain cut short by drain_timeout redelivers it.
        route.timeout_ms = r.duration(rt, "timeout", 1000, 300000).value_or(10000);
        route.retry = c.default_retry;
        if (const toml::table* rr = r.table(rt, "retry")) {
            route.retry = read_retry(r, *rr, c.default_retry, ctx + ".retry");
        }
        if (auto rl = r.str(rt, "rate_limit")) {
            auto per_s = parse_rate(*rl);
            if (!per_s) {
                r.fail(r.where(rt, "rate_limit"),
                       ctx + ": 'rate_limit' must look like \"100/min\", \"10/s\" or \"5/h\"");
            }
            route.rate_limit = RateLimit{*per_s, std::max(1.0, std::floor(*per_s))};
        }
        if (auto spec = r.str(rt, "secret")) {
            std::string err;
            auto secret = load_secret(*spec, err);
            if (!secret) {
                r.fail(r.where(rt, "secret"), ctx + ": 'secret': " + err);
            }
            std::string_view s = *secret;
            if (!s.starts_with("whsec_")) {
                r.fail(r.where(rt, "secret"), ctx + ": 'secret' must be a whsec_<base64> secret");
            }
            auto key = crypto::base64_decode(s.substr(6));
            if (!key || key->empty()) {
                r.fail(r.where(rt, "secret"),
                       ctx + ": 'secret' is not valid base64 after the whsec_ prefix");
            }
            route.signing_key = *key;
        }
        read_forwarding(r, rt, route, ctx);
        read_health_check(r, rt, route, ctx);
        read_batches(r, rt, route, ctx);
        c.routes.push_back(std::move(route));
    }
}

std::set<std::string> known_sources(const Config& c) {
    std::set<std::string> known;
    for (const auto& rt : c.routes) {
        known.insert(rt.source);
    }
    for (const auto& [name, sc] : c.sources) {
        known.insert(name);
    }
    return known;
}

}  // namespace hookq::config_detail
