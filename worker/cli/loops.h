// hookqctl loops [list]|release|clear: the entities the edge found repeating more than
// hookq_loop_limit allows, and the envelopes `hookq_loop_action hold` set aside.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

int loops_list(RedisConn& redis, const std::vector<std::string>& queues, bool json);
// Held envelopes back onto the queue (audited "loops.release").
int loops_release(RedisConn& redis, Pg& pg, const std::string& queue,
                  const std::vector<std::string>& queues, bool json);
// Forgets the queue's loop counters (audited "loops.clear").
int loops_clear(RedisConn& redis, Pg& pg, const std::string& queue,
                const std::vector<std::string>& queues, bool json);

struct LoopsCommands {
    CLI::App* loops = nullptr;
    CLI::App* release = nullptr;
    CLI::App* clear = nullptr;

    std::string queue;

    bool parsed() const { return loops->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_loops_commands(CLI::App& app, LoopsCommands& cmds,
                        const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_loops_commands(const LoopsCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
