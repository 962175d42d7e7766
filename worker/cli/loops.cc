#include "worker/cli/loops.h"

#include <cstdio>

#include "worker/cli/common.h"
#include "worker/ops/loops.h"

namespace hookq::ctl {

namespace {

ops::Actor cli_actor() {
    return ops::Actor{actor(), "", "", "", "hookqctl"};
}

int report(const nlohmann::ordered_json& j, bool json, const char* what, const char* field) {
    if (json) {
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s: %lld %s\n", j["queue"].get<std::string>().c_str(),
                    j[field].get<long long>(), what);
    }
    return 0;
}

template <typename F>
int guarded(F&& f) {
    try {
        return f();
    } catch (const ops::Error& e) {
        std::fprintf(stderr, "hookqctl: %s\n", e.what());
        return 1;
    }
}

}  // namespace

int loops_list(RedisConn& redis, const std::vector<std::string>& queues, bool json) {
    auto j = ops::list_loops(redis, queues);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    if (j.empty()) {
        std::printf("no loops\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"QUEUE", "HELD", "COUNT", "LAST_COUNT", "KEY"}};
    for (const auto& q : j) {
        std::string queue = q["queue"], held = std::to_string(q["held"].get<long long>());
        if (q["loops"].empty()) {
            rows.push_back({queue, held, "", "", ""});
        }
        for (const auto& e : q["loops"]) {
            rows.push_back({queue, held, std::to_string(e["count"].get<long long>()),
                            std::to_string(e["last_count"].get<long long>()),
                            printable(e["key"].get<std::string>())});
        }
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int loops_release(RedisConn& redis, Pg& pg, const std::string& queue,
                  const std::vector<std::string>& queues, bool json) {
    return guarded([&] {
        return report(ops::release_loops(redis, pg, queue, cli_actor(), queues), json,
                      "held envelopes back in the queue", "released");
    });
}

int loops_clear(RedisConn& redis, Pg& pg, const std::string& queue,
                const std::vector<std::string>& queues, bool json) {
    return guarded([&] {
        return report(ops::clear_loops(redis, pg, queue, cli_actor(), queues), json,
                      "looping entities forgotten", "cleared");
    });
}

}  // namespace hookq::ctl
