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

void add_pause_commands(CLI::App& app, PauseCommands& c,
                        const std::function<void(CLI::App*)>& addresses) {
    // Pauses: deliveries of a paused route (or source) stay parked until resumed.
    c.pause = app.add_subcommand("pause", "hold back deliveries of a route or source (audited)");
    c.pause->require_subcommand(1);
    c.resume = app.add_subcommand("resume", "lift a pause; parked deliveries go back (audited)");
    c.resume->require_subcommand(1);
    c.pauses = app.add_subcommand("pauses", "what is paused");
    addresses(c.pauses);
    for (auto* parent : {c.pause, c.resume}) {
        for (const char* kind : {"route", "source"}) {
            auto* sub = parent->add_subcommand(kind, std::string("a ") + kind + " by name");
            addresses(sub);
            sub->add_option("name", c.name, std::string(kind) + " name")->required();
            if (parent == c.pause) {
                sub->add_option("--reason", c.reason, "why (shown in status and the audit log)");
            }
            sub->callback([&c, kind] { c.kind = kind; });
        }
    }
}

int run_pause_commands(const PauseCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, true);
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    if (c.pauses->parsed()) {
        return pauses_list(redis, cfg, json);
    }
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.pause->parsed()) {
        return pause_set(redis, pg, cfg, c.kind, c.name, c.reason, json);
    }
    return pause_lift(redis, pg, cfg, c.kind, c.name, json);
}

}  // namespace hookq::ctl
