// hookqctl alerts [events] and hookqctl silence add|list|expire: ops/alerts.h from the command
// line, printing with --json exactly what /api/v1/alerts, /api/v1/alerts/events and
// /api/v1/silences answer.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"

namespace hookq::ctl {

struct AlertCommands {
    CLI::App* alerts = nullptr;
    CLI::App* events = nullptr;
    CLI::App* silence = nullptr;
    CLI::App* add = nullptr;
    CLI::App* list = nullptr;
    CLI::App* expire = nullptr;

    std::string state;
    std::string fingerprint, cursor, limit;
    std::vector<std::string> matches;  // k=v
    std::string duration, until, comment;
    bool all = false;
    std::string id;

    bool parsed() const { return alerts->parsed() || silence->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_alert_commands(CLI::App& app, AlertCommands& cmds,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_alert_commands(const AlertCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
