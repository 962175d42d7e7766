// The configured routes as an operator needs to see them (GET /api/v1/routes, `hookqctl routes`):
// where each sends, whether a destination flagged it (410 Gone) and its breaker, never a secret.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::ops {

// `url` without userinfo and fragment, every query value replaced by "REDACTED": a URL in a
// configuration is where a token is most often pasted.
std::string display_url(const std::string& url);

// [{"name", "source", "events", "destination", "url", "fallback_url", "timeout_ms",
//   "max_attempts", "flag", "breaker"}] in configuration order, the scope's sources only.
nlohmann::ordered_json list_routes(Pg& pg, RedisConn& redis, const Config& cfg,
                                   const Scope& scope = {});

}  // namespace hookq::ops
