// hookqctl stats: delivery statistics per route or source (ops/stats.h).
#pragma once

#include <functional>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

// `args` are the API's query parameters (window, by, source, route): --json prints exactly what
// GET /api/v1/stats returns with them.
int stats(Pg& pg, const Config& cfg, const std::map<std::string, std::string>& args, bool json);

struct StatsCommand {
    CLI::App* stats = nullptr;

    std::map<std::string, std::string> args;  // the API's query parameters, as stats() takes

    bool parsed() const { return stats->parsed(); }
};

// Declares the command on `app`; `addresses` adds --dsn, --redis and --json to it.
void add_stats_command(CLI::App& app, StatsCommand& cmd,
                       const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_stats_command(const StatsCommand& cmd, const Target& target, bool json);

}  // namespace hookq::ctl
