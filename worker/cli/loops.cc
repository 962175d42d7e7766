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

void add_loops_commands(CLI::App& app, LoopsCommands& c,
                        const std::function<void(CLI::App*)>& addresses) {
    c.loops =
        app.add_subcommand("loops", "entities repeating past hookq_loop_limit, held webhooks");
    addresses(c.loops);
    c.release = c.loops->add_subcommand("release", "held webhooks back to the queue (audited)");
    addresses(c.release);
    c.release->add_option("queue", c.queue, "the queue, as configured")->required();
    c.clear = c.loops->add_subcommand("clear", "forget a queue's loop counters (audited)");
    addresses(c.clear);
    c.clear->add_option("queue", c.queue, "the queue, as configured")->required();
}

int run_loops_commands(const LoopsCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    if (!c.release->parsed() && !c.clear->parsed()) {
        return loops_list(redis, cfg.queues, json);
    }
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.release->parsed()) {
        return loops_release(redis, pg, c.queue, cfg.queues, json);
    }
    return loops_clear(redis, pg, c.queue, cfg.queues, json);
}

}  // namespace hookq::ctl
