#include "worker/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "worker/config/reader.h"
#include "worker/config/sections.h"

namespace hookq {

namespace {

using config_detail::Reader;

// The heartbeat goes out every third of its TTL; one that hangs for the whole Redis timeout
// must still leave time for the next before the TTL runs out, or another worker requeues (and
// delivers again) what this one is delivering.
void check_heartbeat_ttl(const Reader& r, const toml::table& root, const Config& c) {
    if (c.redis_timeout_ms * 3 > c.heartbeat_ttl_ms * 2) {
        const toml::node* at = root.at_path("worker.heartbeat_ttl").node();
        if (!at) {
            at = root.at_path("redis.timeout").node();
        }
        r.fail(at ? at->source() : root.source(),
               "[worker] 'heartbeat_ttl' must be at least 1.5 times [redis] 'timeout' (" +
                   std::to_string(c.heartbeat_ttl_ms) + "ms against " +
                   std::to_string(c.redis_timeout_ms) + "ms)");
    }
}

// No [worker] queues: the routes' sources, in the order of the routes.
void default_queues(Config& c) {
    if (c.queues.empty()) {
        std::set<std::string> seen;
        for (const auto& rt : c.routes) {
            if (seen.insert(rt.source).second) {
                c.queues.push_back(rt.source);
            }
        }
    }
}

}  // namespace

// One reader per section (worker/config/sections.h), in this order: the first error found is the
// one reported, and a section that checks names against others comes after them.
Config load_config_string(std::string_view text, const std::string& path) {
    Reader r(path);
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        r.fail(e.source(), std::string(e.description()));
    }

    Config c;
    c.path = path;
    r.only_keys(root, "the top level",
                {"worker", "redis", "postgres", "breaker", "retry", "sources", "routes", "admin",
                 "retention", "slo", "alerts"});

    config_detail::read_worker(r, root, c);
    config_detail::read_redis(r, root, c);
    config_detail::read_postgres(r, root, c);
    config_detail::read_breaker(r, root, c);
    config_detail::read_default_retry(r, root, c);
    check_heartbeat_ttl(r, root, c);
    config_detail::read_sources(r, root, c);
    config_detail::read_routes(r, root, c);
    config_detail::read_admin(r, root, c);
    config_detail::read_retention(r, root, c);
    config_detail::read_alerts(r, root, c);
    default_queues(c);
    config_detail::read_slo(r, root, c);
    return c;
}

Config load_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(path + ":0:0: cannot open the configuration file");
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_config_string(ss.str(), path);
}

}  // namespace hookq
