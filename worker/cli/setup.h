// hookqctl migrate, check-config and partitions: what the workers need before they start (the
// schema, a valid configuration) and ahead of time (the monthly partitions). They take the
// configuration file and --dsn alone: no Redis, no --json.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace hookq::ctl {

struct SetupCommands {
    CLI::App* migrate = nullptr;
    CLI::App* check = nullptr;
    CLI::App* partitions = nullptr;

    std::string dsn;  // empty: [postgres] of the configuration
    std::string dir;
    int months = 2;

    bool parsed() const { return migrate->parsed() || check->parsed() || partitions->parsed(); }
};

void add_setup_commands(CLI::App& app, SetupCommands& cmds);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_setup_commands(const SetupCommands& cmds, const std::string& config_path);

}  // namespace hookq::ctl
