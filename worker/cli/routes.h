// hookqctl routes: the configured routes, their 410 flags and breakers (ops/routes.h).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int routes_list(Pg& pg, RedisConn& redis, const Config& cfg, bool json);

struct RoutesCommand {
    CLI::App* routes = nullptr;

    bool parsed() const { return routes->parsed(); }
};

// Declares the command on `app`; `addresses` adds --dsn, --redis and --json to it.
void add_routes_command(CLI::App& app, RoutesCommand& cmd,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_routes_command(const RoutesCommand& cmd, const Target& target, bool json);

}  // namespace hookq::ctl
