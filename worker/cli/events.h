// hookqctl events [filters] and hookqctl events show ID: the search and detail of ops/events.h.
#pragma once

#include <functional>
#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

// `args` are the API's query parameters (source, route, ..., cursor, limit). One page, exactly
// what GET /api/v1/events returns with the same parameters.
int events_list(Pg& pg, const std::map<std::string, std::string>& args, bool json);
int events_show(Pg& pg, const std::string& id, bool json);

struct EventsCommands {
    CLI::App* events = nullptr;
    CLI::App* show = nullptr;

    std::map<std::string, std::string> args;  // the API's query parameters, as events_list takes
    std::string id;

    bool parsed() const { return events->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_events_commands(CLI::App& app, EventsCommands& cmds,
                         const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_events_commands(const EventsCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
