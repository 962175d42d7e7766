#include "worker/cli/health.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/health.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

}  // namespace

int health(RedisConn& redis, Pg& pg, const Config& cfg, bool json) {
    Json j = ops::health(redis, pg, cfg);
    int rc = j["status"] == "healthy" ? 0 : 1;
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return rc;
    }
    std::printf("%s\n", j["status"].get<std::string>().c_str());
    std::vector<std::vector<std::string>> rows{{"SOURCE", "STATUS", "LAST_RECEIVED", "DEPTH",
                                                "OLDEST_S", "LAG_S", "ATTEMPTS_5M", "ERR_5M",
                                                "REASONS"}};
    for (const auto& s : j["sources"]) {
        std::string reasons;
        for (const auto& r : s["reasons"]) {
            reasons += (reasons.empty() ? "" : "; ") + r.get<std::string>();
        }
        rows.push_back({json_cell(s["source"]), json_cell(s["status"]),
                        json_cell(s["last_received_at"]), json_cell(s["queue_depth"]),
                        json_cell(s["oldest_age_seconds"]), json_cell(s["lag_seconds"]),
                        json_cell(s["deliveries_5m"]), json_cell(s["error_rate_5m"]),
                        reasons.empty() ? "-" : reasons});
    }
    std::fputs(table(rows).c_str(), stdout);
    return rc;
}

void add_health_command(CLI::App& app, HealthCommand& c,
                        const std::function<void(CLI::App*)>& addresses) {
    c.health =
        app.add_subcommand("health", "per-source health; exits 1 unless every source is healthy");
    addresses(c.health);
}

int run_health_command(const HealthCommand&, const Target& target, bool json) {
    // An unreachable backend is part of the answer (unhealthy), not a failure to answer.
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    redis.ensure();
    Pg pg(cfg.postgres_dsn);
    pg.connect();
    return health(redis, pg, cfg, json);
}

}  // namespace hookq::ctl
