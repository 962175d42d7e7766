// hookqctl poison list|show|retry|delete: the elements set aside in hookq:{Q}:poison (undecodable,
// or webhooks PostgreSQL refused to record), and putting them back on their queue.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "worker/cli/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ctl {

// An element's id: the first 16 hex digits of its SHA-256, stable while it sits in the list. A
// decodable element may also be named by its request id.
std::string poison_id(std::string_view element);

int poison_list(RedisConn& redis, const std::vector<std::string>& queues, int limit, bool json);
// `pg` may be null (PostgreSQL unreachable): the reason recorded there is then left out.
int poison_show(RedisConn& redis, Pg* pg, const std::vector<std::string>& queues,
                const std::string& id, bool json);
// Back onto the queue's consuming end, removed from the poison list in the same script, audited.
int poison_retry(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                 const std::vector<std::string>& ids, bool json);
int poison_delete(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                  const std::vector<std::string>& ids, bool json);

struct PoisonCommands {
    CLI::App* poison = nullptr;
    CLI::App* list = nullptr;
    CLI::App* show = nullptr;
    CLI::App* retry = nullptr;
    CLI::App* delete_ = nullptr;

    std::vector<std::string> queues;  // --queue; empty: the configuration's
    std::vector<std::string> ids;
    std::string id;
    int limit = 50;

    bool parsed() const { return poison->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_poison_commands(CLI::App& app, PoisonCommands& cmds,
                         const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_poison_commands(const PoisonCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
