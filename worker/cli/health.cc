#include "worker/cli/health.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/health.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

std::string text(const Json& v) {
    if (v.is_null()) {
        return "-";
    }
    if (v.is_number_float()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3g", v.get<double>());
        return buf;
    }
    return v.is_string() ? v.get<std::string>() : v.dump();
}

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
        rows.push_back({text(s["source"]), text(s["status"]), text(s["last_received_at"]),
                        text(s["queue_depth"]), text(s["oldest_age_seconds"]),
                        text(s["lag_seconds"]), text(s["deliveries_5m"]), text(s["error_rate_5m"]),
                        reasons.empty() ? "-" : reasons});
    }
    std::fputs(table(rows).c_str(), stdout);
    return rc;
}

}  // namespace hookq::ctl
