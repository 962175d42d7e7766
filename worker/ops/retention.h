// Retention: what is older than each table's policy goes, the large tables by whole monthly
// partitions (a catalog change, never a DELETE that bloats them and runs as long as the rows it
// removes). `hookqctl cleanup` and the worker's periodic run call the same two operations.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"

namespace hookq::ops {

// What a cleanup would remove now, per the policy (0 ms keeps a table forever):
// {"cutoffs": {"events": "<RFC 3339>"|null, "attempts", "dead_letters", "audit"},
//  "partitions": [{"table", "partition", "from", "to", "rows", "bytes"}],
//  "deletes": [{"table", "rows"}],   // dead_letters, and stray rows in DEFAULT partitions
//  "rows": total, "bytes": total of the partitions}
// A partition goes only when all of its range is older than the cutoff, so a row can live up to
// a month past its retention. webhook_routes follows webhook_events' policy.
nlohmann::ordered_json retention_plan(Pg& pg, const RetentionConfig& policy);

// Applies the plan in one transaction, audited ("retention.cleanup", the plan as details), and
// returns it with "applied": true. One cleanup at a time (an advisory lock): a second one throws
// Error{conflict}. Dropping a partition locks its parent, so it waits at most `lock_timeout_ms`
// for a long query to finish — recording waits behind it no longer than that — then gives up
// with Error{conflict} and nothing changed.
nlohmann::ordered_json retention_apply(Pg& pg, const RetentionConfig& policy, const Actor& actor,
                                       uint64_t lock_timeout_ms = 500);

}  // namespace hookq::ops
