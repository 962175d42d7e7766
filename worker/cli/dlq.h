// hookqctl dlq list|show|retry|delete: the dead letters in PostgreSQL, and putting them back on the
// queue they came from.
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

struct DlqListOptions {
    std::string source;
    int limit = 50;
    bool all = false;  // also those already requeued
    bool json = false;
};
int dlq_list(Pg& pg, const DlqListOptions& o);
int dlq_show(Pg& pg, const std::string& id, bool json);

struct DlqRetryOptions {
    std::vector<std::string> ids;
    std::string queue;  // empty: derived from the source and the configured queues
    bool dry_run = false;
    bool force = false;  // requeue even if already requeued
    bool json = false;
};
int dlq_retry(Pg& pg, RedisConn& redis, const Config& cfg, const DlqRetryOptions& o);
int dlq_delete(Pg& pg, const std::vector<std::string>& ids, bool json);

struct DlqCommands {
    CLI::App* dlq = nullptr;
    CLI::App* list = nullptr;
    CLI::App* show = nullptr;
    CLI::App* retry = nullptr;
    CLI::App* delete_ = nullptr;

    // json is set in both when the command runs.
    DlqListOptions list_opts;
    DlqRetryOptions retry_opts;
    std::string id;
    std::vector<std::string> ids;  // of delete (retry's are in retry_opts)

    bool parsed() const { return dlq->parsed(); }
};

// Declares the subcommands on `app`; `addresses` adds --dsn, --redis and --json to one.
void add_dlq_commands(CLI::App& app, DlqCommands& cmds,
                      const std::function<void(CLI::App*)>& addresses);
// The exit status: 0, 1 (the operation failed), 2 (bad usage).
int run_dlq_commands(const DlqCommands& cmds, const Target& target, bool json);

}  // namespace hookq::ctl
