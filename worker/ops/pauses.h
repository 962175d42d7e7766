// Operator pauses per route and per source: the deliveries of a paused route (or of every route of
// a paused source) stay parked in Redis under "paused:<route>" until resumed, without spending an
// attempt. The one implementation behind `hookqctl pause|resume|pauses` and /api/v1/pauses.
#pragma once

#include <string>

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

}  // namespace hookq::ops
