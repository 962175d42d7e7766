// hookqctl health-checks and hookqctl slo: the destination health checks (ops/health_checks.h)
// and the SLO status (ops/slo.h), as the API answers them with --json. Both exit 1 when something
// is not well (a check failing; a source or route not healthy), so they serve as monitoring checks.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int health_checks(RedisConn& redis, const Config& cfg, bool json);
int slo(RedisConn& redis, Pg& pg, const Config& cfg, bool json);

struct HealthCheckCommands {
    CLI::App* health_checks = nullptr;
    CLI::App* slo = nullptr;

    bool parsed() const { return health_checks->parsed() || slo->parsed(); }
};

// Declares health-checks and slo on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_health_check_commands(CLI::App& app, HealthCheckCommands& cmds,
                               const std::function<void(CLI::App*)>& addresses);
// The exit status: 0 (all well), 1 (not, or the operation failed), 2 (bad usage).
int run_health_check_commands(const HealthCheckCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
