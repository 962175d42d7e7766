// hookqctl replay [selection] [--dry-run] [--yes] [--detach] and replay list|show|cancel|resume:
// ops/replay.h, with a progress bar (rate, ETA) on a terminal until the job ends. --json prints
// what /api/v1/replays answers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

struct ReplayOptions {
    std::vector<std::string> ids;
    std::string source, route, status, event_type, since, from, to;
    double rate = 50;
    int64_t limit = 0;  // 0: none
    bool all_routes = false;
    bool dry_run = false;
    bool yes = false;     // confirm a selection over 1000 webhooks
    bool detach = false;  // print the job and return; the workers run it
    bool json = false;
};

int replay_create(Pg& pg, const ReplayOptions& o);
int replay_list(Pg& pg, bool json);
int replay_show(Pg& pg, const std::string& id, bool json);
int replay_cancel(Pg& pg, const std::string& id, bool json);
int replay_resume(Pg& pg, const std::string& id, bool json);

struct ReplayCommands {
    CLI::App* replay = nullptr;
    CLI::App* list = nullptr;
    CLI::App* show = nullptr;
    CLI::App* cancel = nullptr;
    CLI::App* resume = nullptr;

    ReplayOptions opts;  // the selection; json is set when the command runs
    std::string id;

    bool parsed() const { return replay->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_replay_commands(CLI::App& app, ReplayCommands& cmds,
                         const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_replay_commands(const ReplayCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
