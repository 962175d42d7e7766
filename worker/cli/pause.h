// hookqctl pause|resume route|source NAME, hookqctl pauses: operator pauses of deliveries.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int pauses_list(RedisConn& redis, const Config& cfg, bool json);
int pause_set(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
              const std::string& name, const std::string& reason, bool json);
int pause_lift(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
               const std::string& name, bool json);

struct PauseCommands {
    CLI::App* pause = nullptr;
    CLI::App* resume = nullptr;
    CLI::App* pauses = nullptr;

    std::string kind;  // route or source: the subcommand of pause or resume that ran
    std::string name, reason;

    bool parsed() const { return pause->parsed() || resume->parsed() || pauses->parsed(); }
};

// Declares pause, resume and pauses on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_pause_commands(CLI::App& app, PauseCommands& cmds,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_pause_commands(const PauseCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
