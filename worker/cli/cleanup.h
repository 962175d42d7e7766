// hookqctl cleanup: retention on demand (ops/retention.h), what would go shown first.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

struct CleanupOptions {
    std::optional<uint64_t> older_than_ms;  // every table; otherwise [retention] of the config
    bool dry_run = false;
    bool json = false;
};

int cleanup(Pg& pg, const Config& cfg, const CleanupOptions& o);

struct CleanupCommand {
    CLI::App* cleanup = nullptr;

    std::string older_than;  // as given: checked, and made older_than_ms, when the command runs
    CleanupOptions opts;     // --dry-run; older_than_ms and json are set when the command runs

    bool parsed() const { return cleanup->parsed(); }
};

// Declares the command on `app`; `addresses` adds --dsn, --redis and --json to it.
void add_cleanup_command(CLI::App& app, CleanupCommand& cmd,
                         const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_cleanup_command(const CleanupCommand& cmd, const Target& target, bool json);

}  // namespace hookq::ctl
