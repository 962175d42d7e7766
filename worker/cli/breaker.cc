#include "worker/cli/breaker.h"

#include <cstdio>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/ops/breakers.h"

namespace hookq::ctl {

nlohmann::json breaker_states(RedisConn& redis, const Config& cfg) {
    return nlohmann::json::parse(ops::list_breakers(redis, ops::known_destinations(cfg)).dump());
}

int breaker_list(RedisConn& redis, const Config& cfg, bool json) {
    auto j = ops::list_breakers(redis, ops::known_destinations(cfg));
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    if (j.empty()) {
        std::printf("no breakers\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"DESTINATION", "STATE", "OPEN_UNTIL", "RECENT_FAILURES", "CHANGED_AT"}};
    for (const auto& b : j) {
        rows.push_back({b["destination"], b["state"], b["open_until"],
                        std::to_string(b["recent_failures"].get<size_t>()), b["changed_at"]});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int breaker_reset(RedisConn& redis, Pg& pg, const std::string& destination, bool json) {
    nlohmann::ordered_json j;
    try {
        j = ops::reset_breaker(redis, pg, destination, ops::Actor{actor(), "", "", "", "hookqctl"});
    } catch (const ops::Error& e) {
        if (e.kind != ops::Error::not_found) {
            throw;
        }
        std::fprintf(stderr, "hookqctl: %s\n", e.what());
        return 1;
    }
    if (json) {
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s: %s -> closed; %lld parked deliveries back in their queues\n",
                    destination.c_str(), j["from_state"].get<std::string>().c_str(),
                    j["parked_released"].get<long long>());
    }
    return 0;
}

bool BreakerCommands::parsed() const {
    return breaker->parsed();
}

void add_breaker_commands(CLI::App& app, BreakerCommands& c,
                          const std::function<void(CLI::App*)>& addresses) {
    c.breaker = app.add_subcommand("breaker", "circuit breakers per destination");
    c.breaker->require_subcommand(1);
    c.list = c.breaker->add_subcommand("list", "every breaker and its state");
    addresses(c.list);
    c.reset = c.breaker->add_subcommand("reset", "close a breaker now (audited)");
    addresses(c.reset);
    c.reset->add_option("destination", c.destination, "scheme://host:port, as listed")->required();
}

int run_breaker_commands(const BreakerCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    if (c.list->parsed()) {
        return breaker_list(redis, cfg, json);
    }
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    return breaker_reset(redis, pg, c.destination, json);
}

}  // namespace hookq::ctl
