// One look at the whole pipeline, from the Redis queues to what PostgreSQL has recorded: what
// `hookqctl status --json` prints and GET /api/v1/status returns, byte for byte the same JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// `queues`: those to report on (the configuration's, unless the operator named some). A scope
// limited to some sources sees the queues named after them, their dead letters, events, attempts
// (by the routes of `cfg` that serve them) and the breakers of those routes' destinations.
// Seconds since the edge received the element at the tail of `list` (the oldest: lists are pushed
// on the left), against Redis's clock `now_ms`; 0 when empty, -1 when it cannot be decoded.
double tail_age_s(RedisConn& redis, const std::string& list, uint64_t now_ms);

// One Redis node's memory: what the dedup keys and queues take against the limit past which the
// edge answers 503 (docs/scaling.md, "Memory").
struct RedisMemory {
    std::string node;       // "host:port", or the unix socket's path
    double used = 0;        // used_memory
    double max = 0;         // maxmemory; 0: no limit
    bool reachable = true;  // false: the node did not answer (a lost master), nothing else known
};
// used_memory and maxmemory from an INFO (memory) reply; nullopt when either is missing.
std::optional<RedisMemory> parse_info_memory(std::string_view info);

// Each Redis node's memory (INFO memory): the one Redis, or every master of a cluster; a node that
// does not answer is marked unreachable. Read for the status's "redis" (and so /metrics) and by
// the redis_memory alert.
std::vector<RedisMemory> redis_memory(RedisConn& redis);

nlohmann::ordered_json status(RedisConn& redis, Pg& pg, const Config& cfg,
                              const std::vector<std::string>& queues, const Scope& scope = {});

}  // namespace hookq::ops
