// hookqctl status: one look at the whole pipeline, from the Redis queues to what PostgreSQL has
// recorded, for the operator who has just been paged.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

// Prints ops::status (worker/ops/status.h): `queues` are those to report on (the configuration's,
// unless the operator named some).
int status(RedisConn& redis, Pg& pg, const Config& cfg, const std::vector<std::string>& queues,
           bool json);

struct StatusCommand {
    CLI::App* status = nullptr;

    std::vector<std::string> queues;  // --queue; empty: the configuration's

    bool parsed() const { return status->parsed(); }
};

// Declares the command on `app`; `addresses` adds --dsn, --redis and --json to it.
void add_status_command(CLI::App& app, StatusCommand& cmd,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_status_command(const StatusCommand& cmd, const Target& target, bool json);

}  // namespace hookq::ctl
