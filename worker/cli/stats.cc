#include "worker/cli/stats.h"

#include <cstdio>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/stats.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

std::string num(const Json& v, const char* fmt) {
    if (v.is_null()) {
        return "-";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v.get<double>());
    return buf;
}

}  // namespace

int stats(Pg& pg, const Config& cfg, const std::map<std::string, std::string>& args, bool json) {
    Json j = ops::stats(pg, cfg, ops::parse_stats_query(args));
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("%s by %s, %s .. %s\n", j["window"].get<std::string>().c_str(),
                j["by"].get<std::string>().c_str(), j["from"].get<std::string>().c_str(),
                j["to"].get<std::string>().c_str());
    if (j["groups"].empty()) {
        std::printf("no delivery attempts\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{j["by"] == "route" ? "ROUTE" : "SOURCE", "COUNT",
                                                "OK%", "TIMEOUT%", "DEAD", "P50_MS", "P95_MS",
                                                "P99_MS", "E2E_P50_MS", "E2E_P95_MS"}};
    for (const auto& g : j["groups"]) {
        // Names come from the configuration, but print nothing a terminal would interpret.
        std::string key = g["key"].get<std::string>();
        for (char& c : key) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                c = '?';
            }
        }
        rows.push_back(
            {key, std::to_string(g["count"].get<long long>()),
             g["success_rate"].is_null() ? "-"
                                         : num(Json(g["success_rate"].get<double>() * 100), "%.1f"),
             g["timeout_rate"].is_null() ? "-"
                                         : num(Json(g["timeout_rate"].get<double>() * 100), "%.1f"),
             std::to_string(g["dead"].get<long long>()), num(g["duration_ms"]["p50"], "%.1f"),
             num(g["duration_ms"]["p95"], "%.1f"), num(g["duration_ms"]["p99"], "%.1f"),
             num(g["end_to_end_ms"]["p50"], "%.1f"), num(g["end_to_end_ms"]["p95"], "%.1f")});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

void add_stats_command(CLI::App& app, StatsCommand& c,
                       const std::function<void(CLI::App*)>& addresses) {
    c.stats = app.add_subcommand("stats", "delivery counts, rates and latencies (rollups)");
    addresses(c.stats);
    // The API's query parameters, flag for flag, as for events.
    for (const auto& [flag, param, help] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"--window", "window", "1h (per minute), 24h or 7d (per hour); default 1h"},
             {"--by", "by", "route or source; default route"},
             {"--source", "source", "only this source"},
             {"--route", "route", "only this route"}}) {
        c.stats->add_option_function<std::string>(
            flag, [&c, p = param](const std::string& v) { c.args[p] = v; }, help);
    }
}

int run_stats_command(const StatsCommand& c, const Target& target, bool json) {
    auto cfg = load_target(target, false);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    return stats(pg, cfg, c.args, json);
}

}  // namespace hookq::ctl
