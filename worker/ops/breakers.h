// The per-destination circuit breakers the workers share in Redis: list, one, and reset (audited,
// parked deliveries released). The one implementation behind `hookqctl breaker ...` and
// /api/v1/breakers.
#pragma once

#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// The destinations whose breakers a scope may see and reset: those of the routes (and fallbacks)
// of its sources. nullopt: every destination.
using Destinations = std::optional<std::set<std::string>>;
Destinations scope_destinations(const Config& cfg, const Scope& scope);

// The destinations a listing looks at: the scope's, else every route's (and fallback's) of the
// configuration; nullopt only for a configuration without routes (hookqctl given only --redis).
// Listing them by name keeps a SCAN of the whole keyspace — a million dedup keys at a few
// thousand webhooks a second — off Redis, whose one thread the edge and the workers wait on.
Destinations known_destinations(const Config& cfg, const Scope& scope = {});

// [{"destination", "state", "open_until", "recent_failures", "changed_at"}], by destination:
// those of `only` that have a breaker, or (nullopt) every breaker found by SCAN.
nlohmann::ordered_json list_breakers(RedisConn& redis, const Destinations& only = std::nullopt);

// One breaker, as listed. Error::not_found when the workers have none for it (or it is outside
// `only`).
nlohmann::ordered_json get_breaker(RedisConn& redis, const std::string& destination,
                                   const Destinations& only = std::nullopt);

// Closes the breaker now and moves its parked deliveries back to their queues. Audited (and the
// transition recorded) in one transaction committed only once Redis has changed.
// {"destination", "from_state", "state": "closed", "parked_released"}.
nlohmann::ordered_json reset_breaker(RedisConn& redis, Pg& pg, const std::string& destination,
                                     const Actor& actor, const Destinations& only = std::nullopt);

}  // namespace hookq::ops
