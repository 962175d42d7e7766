#include "worker/config/sections.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shared/secret.h"

namespace hookq::config_detail {

namespace {

// Strict: digits only, 1-65535. atoi() took "6379abc" as 6379.
std::optional<int> parse_port(std::string_view p) {
    if (p.empty() || p.size() > 5) {
        return std::nullopt;
    }
    int v = 0;
    for (char c : p) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + (c - '0');
    }
    if (v < 1 || v > 65535) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

void read_redis(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* redis = r.table(root, "redis");
    if (redis) {
        r.only_keys(*redis, "[redis]", {"address", "cluster", "password", "db", "timeout"});
        // "host:port", "[::1]:6379" (the brackets only delimit the address from the port).
        auto host_port = [](std::string_view a) -> std::optional<std::pair<std::string, int>> {
            size_t colon = a.rfind(':');
            if (colon == std::string_view::npos) {
                return std::nullopt;
            }
            std::string host(a.substr(0, colon));
            std::optional<int> port = parse_port(a.substr(colon + 1));
            if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
                host = host.substr(1, host.size() - 2);
            }
            if (!port || host.empty() || host.find_first_of("[] \t\r\n") != std::string::npos) {
                return std::nullopt;
            }
            return std::pair{host, *port};
        };
        if (auto a = r.str(*redis, "address")) {
            if (redis->contains("cluster")) {
                r.fail(r.where(*redis, "cluster"),
                       "[redis] 'cluster' and 'address' are mutually exclusive: 'address' is one "
                       "Redis, 'cluster' the seed nodes of a Redis Cluster");
            }
            if (a->starts_with("unix:")) {
                c.redis_unix = a->substr(5);
            } else {
                auto hp = host_port(*a);
                if (!hp) {
                    r.fail(r.where(*redis, "address"),
                           "'address' must be host:port (port 1-65535) or unix:/path/to/socket");
                }
                c.redis_host = hp->first;
                c.redis_port = hp->second;
            }
        }
        if (redis->contains("cluster")) {
            std::vector<std::string> seeds = r.strings(*redis, "cluster");
            if (seeds.empty()) {
                r.fail(r.where(*redis, "cluster"),
                       "[redis] 'cluster' must list at least one seed node (host:port)");
            }
            for (const std::string& seed : seeds) {
                auto hp = host_port(seed);
                if (!hp) {
                    r.fail(r.where(*redis, "cluster"), "[redis] 'cluster': '" + seed +
                                                           "' must be host:port (port 1-65535); "
                                                           "a cluster is reached over TCP only");
                }
                c.redis_cluster.push_back(*hp);
            }
        }
        if (auto p = r.str(*redis, "password")) {
            std::string err;
            auto s = load_secret(*p, err);
            if (!s) {
                r.fail(r.where(*redis, "password"), "'password': " + err);
            }
            c.redis_password = *s;
        }
        c.redis_db = static_cast<int>(r.integer(*redis, "db", 0, 1000).value_or(0));
        if (c.redis_db != 0 && !c.redis_cluster.empty()) {
            r.fail(r.where(*redis, "db"),
                   "[redis] 'db' must be 0 with 'cluster': Redis Cluster has database 0 only");
        }
        c.redis_timeout_ms = r.duration(*redis, "timeout", 50, 60000).value_or(c.redis_timeout_ms);
    }
}

void read_postgres(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* pg = r.table(root, "postgres");
    if (!pg) {
        r.fail(root.source(), "missing table [postgres] (with 'dsn')");
    }
    r.only_keys(*pg, "[postgres]", {"dsn", "batch_size", "flush_interval"});
    c.postgres_dsn = r.str(*pg, "dsn").value_or("");
    if (c.postgres_dsn.empty()) {
        r.fail(pg->source(), "[postgres] needs 'dsn'");
    }
    c.record_batch =
        static_cast<uint32_t>(r.integer(*pg, "batch_size", 1, 4000).value_or(c.record_batch));
    c.record_flush_ms = r.duration(*pg, "flush_interval", 1, 10000).value_or(c.record_flush_ms);
}

}  // namespace hookq::config_detail
