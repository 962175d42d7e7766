#include "worker/cli/breaker.h"

#include <cstdio>

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

}  // namespace hookq::ctl
