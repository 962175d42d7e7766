// hookqctl dlq list|show|retry|delete: the dead letters in PostgreSQL, and putting them back on the
// queue they came from.
#pragma once

#include <string>
#include <vector>

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

}  // namespace hookq::ctl
