#include "worker/cli/status.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/status.h"

namespace hookq::ctl {

namespace {

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

int status(RedisConn& redis, Pg& pg, const Config& cfg, const std::vector<std::string>& queues,
           bool json) {
    nlohmann::ordered_json j = ops::status(redis, pg, cfg, queues);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }

    std::vector<std::vector<std::string>> rows{
        {"QUEUE", "DEPTH", "INFLIGHT", "RETRY", "DUE", "PARKED", "POISON", "WORKERS"}};
    std::string unreachable;
    for (const auto& q : j["queues"]) {
        if (!q.value("reachable", true)) {
            rows.push_back({q["queue"], "unreachable", "-", "-", "-", "-", "-", "-"});
            unreachable += "queue " + q["queue"].get<std::string>() + ": " +
                           q.value("error", std::string()) + "\n";
            continue;
        }
        rows.push_back({q["queue"], std::to_string(q["depth"].get<long long>()),
                        std::to_string(q["inflight"].get<long long>()),
                        std::to_string(q["retry"].get<long long>()),
                        std::to_string(q["retry_due"].get<long long>()),
                        std::to_string(q["parked"].get<long long>()),
                        std::to_string(q["poison"].get<long long>()),
                        std::to_string(q["workers_live"].get<long long>()) + "/" +
                            std::to_string(q["workers_registered"].get<long long>())});
    }
    std::fputs(table(rows).c_str(), stdout);
    std::fputs(unreachable.c_str(), stdout);

    const auto& d = j["database"];
    std::string events;
    for (const auto& [k, v] : d["events_last_hour"].items()) {
        events += (events.empty() ? "" : " ") + k + "=" + std::to_string(v.get<long long>());
    }
    std::string dead = std::to_string(d["dead_letters"].get<long long>());
    if (!d["dead_letters_by_source"].empty()) {
        std::string parts;
        for (const auto& [k, v] : d["dead_letters_by_source"].items()) {
            parts += (parts.empty() ? "" : " ") + k + "=" + std::to_string(v.get<long long>());
        }
        dead += " (" + parts + ")";
    }
    std::vector<std::vector<std::string>> db{
        {"dead letters:", dead},
        {"events (1h):", events},
        {"delivered/s (5m):",
         fixed(d["delivered_per_s_5m"].get<double>(), 2) +
             "  failed attempts/s: " + fixed(d["failed_attempts_per_s_5m"].get<double>(), 2)},
        {"lag:", fixed(d["lag_s"].get<double>(), 1) + "s"},
    };
    std::printf("\n");
    std::fputs(table(db).c_str(), stdout);

    if (j.contains("redis") && !j["redis"].empty()) {
        std::vector<std::vector<std::string>> rm{{"REDIS", "USED", "MAXMEMORY", "SHARE"}};
        for (const auto& n : j["redis"]) {
            if (!n.value("reachable", true)) {
                rm.push_back({n["node"], "unreachable", "", ""});
                continue;
            }
            double used = n["used_memory_bytes"].get<double>();
            double max = n["maxmemory_bytes"].get<double>();
            rm.push_back({n["node"], fixed(used / 1048576, 1) + " MiB",
                          max > 0 ? fixed(max / 1048576, 1) + " MiB" : "no limit",
                          max > 0 ? fixed(100 * used / max, 1) + " %" : "-"});
        }
        std::printf("\n");
        std::fputs(table(rm).c_str(), stdout);
    }

    std::printf("\n");
    if (!j.contains("breakers")) {
        std::printf("breakers: unknown (%s)\n",
                    j["errors"].value("breakers", std::string()).c_str());
    } else if (j["breakers"].empty()) {
        std::printf("breakers: none\n");
    } else {
        std::vector<std::vector<std::string>> br{{"DESTINATION", "STATE", "OPEN_UNTIL"}};
        for (const auto& b : j["breakers"]) {
            br.push_back({b["destination"], b["state"], b["open_until"]});
        }
        std::fputs(table(br).c_str(), stdout);
    }
    return 0;
}

void add_status_command(CLI::App& app, StatusCommand& c,
                        const std::function<void(CLI::App*)>& addresses) {
    c.status = app.add_subcommand("status", "queues, workers, dead letters, rates, breakers");
    addresses(c.status);
    c.status->add_option("--queue", c.queues, "report on these queues (default: the config's)");
}

int run_status_command(const StatusCommand& c, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    return status(redis, pg, cfg, c.queues.empty() ? cfg.queues : c.queues, json);
}

}  // namespace hookq::ctl
