#include "worker/cli/routes.h"

#include <cstdio>

#include "worker/cli/common.h"
#include "worker/ops/routes.h"

namespace hookq::ctl {

int routes_list(Pg& pg, RedisConn& redis, const Config& cfg, bool json) {
    auto j = ops::list_routes(pg, redis, cfg);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    if (j.empty()) {
        std::printf("no routes\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ROUTE", "SOURCE", "DESTINATION", "BREAKER", "FLAG", "URL"}};
    for (const auto& r : j) {
        rows.push_back(
            {r["name"], r["source"], r["destination"], r["breaker"],
             r["flag"].is_null() ? "-" : "410: " + r["flag"]["reason"].get<std::string>(),
             r["url"]});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

void add_routes_command(CLI::App& app, RoutesCommand& c,
                        const std::function<void(CLI::App*)>& addresses) {
    c.routes = app.add_subcommand("routes", "configured routes, 410 flags and breakers");
    addresses(c.routes);
}

int run_routes_command(const RoutesCommand&, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    return routes_list(pg, redis, cfg, json);
}

}  // namespace hookq::ctl
