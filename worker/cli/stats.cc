#include "worker/cli/stats.h"

#include <cstdio>

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

}  // namespace hookq::ctl
