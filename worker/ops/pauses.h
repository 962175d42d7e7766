// Operator pauses per route and per source: the deliveries of a paused route (or of every route of
// a paused source) stay parked in Redis under "paused:<route>" until resumed, without spending an
// attempt. The one implementation behind `hookqctl pause|resume|pauses` and /api/v1/pauses.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// {"pauses": [{"kind": "route"|"source", "name", "by", "at", "reason", "parked"}]}, the scope's
// only.
nlohmann::ordered_json list_pauses(RedisConn& redis, const Config& cfg, const Scope& scope = {});

// kind "route" or "source". Error::bad_request for another kind or a too long reason,
// not_found for a name not configured (or outside the scope), conflict when already paused.
// Audited ("route.pause" / "source.pause") in a transaction committed once Redis has changed.
nlohmann::ordered_json pause(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
                             const std::string& name, const std::string& reason, const Actor& actor,
                             const Scope& scope = {});

// Lifts a pause and sends the parked deliveries of its routes back to their queues.
// Error::conflict when not paused. {"kind", "name", "paused": false, "released"}.
nlohmann::ordered_json resume(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
                              const std::string& name, const Actor& actor, const Scope& scope = {});

// The fields hookq:paused holds ("route:<name>", "source:<name>"), as the audit log has them: each
// pause and resume is committed there only once Redis changed, so the last of them per name says
// whether it is in force. For a worker that cannot read hookq:paused and has no copy of it yet;
// pauses older than the audit log's retention are not in it. Throws on a PostgreSQL error.
std::vector<std::string> paused_by_audit(Pg& pg);

}  // namespace hookq::ops
