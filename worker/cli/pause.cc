#include "worker/cli/pause.h"

#include <cstdio>

#include "worker/cli/common.h"
#include "worker/ops/pauses.h"

namespace hookq::ctl {

namespace {

ops::Actor cli_actor() {
    return ops::Actor{actor(), "", "", "", "hookqctl"};
}

// 1 for what the operator asked wrongly (unknown name, already / not paused), as `breaker reset`.
template <typename F>
int run(F&& f, bool json) {
    nlohmann::ordered_json j;
    try {
        j = f();
    } catch (const ops::Error& e) {
        std::fprintf(stderr, "hookqctl: %s\n", e.what());
        return 1;
    }
    if (json) {
        std::printf("%s\n", j.dump().c_str());
    } else if (j["paused"].get<bool>()) {
        std::printf("%s %s paused\n", j["kind"].get<std::string>().c_str(),
                    printable(j["name"].get<std::string>()).c_str());
    } else {
        std::printf("%s %s resumed; %lld parked deliveries back in their queues\n",
                    j["kind"].get<std::string>().c_str(),
                    printable(j["name"].get<std::string>()).c_str(),
                    j["released"].get<long long>());
    }
    return 0;
}

}  // namespace

int pauses_list(RedisConn& redis, const Config& cfg, bool json) {
    auto j = ops::list_pauses(redis, cfg);
    if (json) {
        std::printf("%s\n", j.dump().c_str());
        return 0;
    }
    if (j["pauses"].empty()) {
        std::printf("nothing paused\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"KIND", "NAME", "BY", "AT", "PARKED", "REASON"}};
    for (const auto& p : j["pauses"]) {
        rows.push_back({p["kind"], printable(p["name"]), printable(p["by"]), p["at"],
                        std::to_string(p["parked"].get<long long>()), printable(p["reason"])});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int pause_set(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
              const std::string& name, const std::string& reason, bool json) {
    return run([&] { return ops::pause(redis, pg, cfg, kind, name, reason, cli_actor()); }, json);
}

int pause_lift(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
               const std::string& name, bool json) {
    return run([&] { return ops::resume(redis, pg, cfg, kind, name, cli_actor()); }, json);
}

}  // namespace hookq::ctl
