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

}  // namespace hookq::ctl
