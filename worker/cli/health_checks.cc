#include "worker/cli/health_checks.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/health_checks.h"
#include "worker/ops/slo.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

}  // namespace

int health_checks(RedisConn& redis, const Config& cfg, bool json) {
    Json j = ops::health_checks(redis, cfg);
    int rc = 0;
    for (const auto& r : j["routes"]) {
        rc = r["status"] == "failing" ? 1 : rc;
    }
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return rc;
    }
    if (j["routes"].empty()) {
        std::printf("no route has a health_url\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ROUTE", "STATUS", "HTTP", "MS", "FAILURES", "CHECKED_AT", "LAST_OK_AT", "URL", "ERROR"}};
    for (const auto& r : j["routes"]) {
        rows.push_back({json_cell(r["route"]), json_cell(r["status"]), json_cell(r["http_status"]),
                        json_cell(r["duration_ms"]), json_cell(r["consecutive_failures"]),
                        json_cell(r["checked_at"]), json_cell(r["last_ok_at"]), json_cell(r["url"]),
                        printable(json_cell(r["last_error"]))});
    }
    std::fputs(table(rows).c_str(), stdout);
    return rc;
}

int slo(RedisConn& redis, Pg& pg, const Config& cfg, bool json) {
    Json j = ops::slo(redis, pg, cfg);
    int rc = 0;
    for (const char* kind : {"sources", "routes"}) {
        for (const auto& x : j[kind]) {
            rc = x["status"] != "healthy" ? 1 : rc;
        }
    }
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return rc;
    }
    std::vector<std::vector<std::string>> rows{
        {"KIND", "NAME", "STATUS", "DELIVERIES", "FAILURES", "ERR_RATE", "LAG_S", "REASONS"}};
    for (const char* kind : {"sources", "routes"}) {
        for (const auto& x : j[kind]) {
            std::string reasons;
            for (const auto& r : x["reasons"]) {
                reasons += (reasons.empty() ? "" : "; ") + r.get<std::string>();
            }
            rows.push_back({kind == std::string("sources") ? "source" : "route",
                            json_cell(x["name"]), json_cell(x["status"]),
                            json_cell(x["deliveries"]), json_cell(x["failures"]),
                            json_cell(x["error_rate"]), json_cell(x["lag_seconds"]),
                            reasons.empty() ? "-" : printable(reasons)});
        }
    }
    std::fputs(table(rows).c_str(), stdout);
    return rc;
}

void add_health_check_commands(CLI::App& app, HealthCheckCommands& c,
                               const std::function<void(CLI::App*)>& addresses) {
    c.health_checks = app.add_subcommand("health-checks",
                                         "destination health checks; exits 1 when one is failing");
    addresses(c.health_checks);
    c.slo = app.add_subcommand("slo",
                               "SLO status per source and route; exits 1 unless all are healthy");
    addresses(c.slo);
}

int run_health_check_commands(const HealthCheckCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    if (c.health_checks->parsed()) {
        return health_checks(redis, cfg, json);
    }
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    return slo(redis, pg, cfg, json);
}

}  // namespace hookq::ctl
