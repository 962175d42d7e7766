// hookqctl health: per-source health (ops/health.h). Exits 0 when every source is healthy, 1
// otherwise, so that it can serve as a monitoring check.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int health(RedisConn& redis, Pg& pg, const Config& cfg, bool json);

struct HealthCommand {
    CLI::App* health = nullptr;

    bool parsed() const { return health->parsed(); }
};

// Declares the command on `app`; `addresses` adds --dsn, --redis and --json to it.
void add_health_command(CLI::App& app, HealthCommand& cmd,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0 (every source healthy), 1 (not, or the operation failed), 2 (bad usage).
int run_health_command(const HealthCommand& cmd, const Target& target, bool json);

}  // namespace hookq::ctl
