// hookqctl breaker list|reset: the per-destination circuit breakers the workers share in Redis.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/config.h"

#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

// Declared, not included: this header also serves ops/status.cc (breaker_states()), which has no
// use for CLI11.
namespace CLI {
class App;
}

namespace hookq::ctl {

// One object per breaker: destination, state, open_until, recent_failures, changed_at.
nlohmann::json breaker_states(RedisConn& redis, const Config& cfg);
int breaker_list(RedisConn& redis, const Config& cfg, bool json);
// Closes the breaker of `destination` (as scheme://host:port, what `breaker list` shows).
int breaker_reset(RedisConn& redis, Pg& pg, const std::string& destination, bool json);

struct BreakerCommands {
    CLI::App* breaker = nullptr;
    CLI::App* list = nullptr;
    CLI::App* reset = nullptr;

    std::string destination;

    bool parsed() const;
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_breaker_commands(CLI::App& app, BreakerCommands& cmds,
                          const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_breaker_commands(const BreakerCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
