// The operator's side of alerting (the engine in worker/alerts/ writes the rows): alerts and
// their transitions, and silences, listed, created and expired (audited). The one implementation
// behind `hookqctl alerts` / `hookqctl silence` and /api/v1/alerts, /api/v1/silences.
#pragma once

#include <map>
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

inline constexpr int kMaxAlertEventPage = 1000;

// The rule names of the engine (worker/alerts/), the only values a silence's "rule" matcher may
// take.
bool known_alert_rule(std::string_view rule);
// "failure_ratio, dead_letters, ...", for error messages.
std::string alert_rule_names();

// What a source-limited token sees of alerting. An alert belongs to its sources when it carries
// at least one of the labels source, queue, route, destination and every one of them it carries
// names a source of the token (queue: a queue is named after its source), a route serving one, or
// a destination of those routes. Alerts with none of them (redis_down{}, postgres_down{}) concern
// every source: only unrestricted tokens see them. A silence is the token's when its matchers pin
// (carry) at least one of source, queue, route and each of those it pins is the token's, so that
// whatever it mutes is an alert the token sees; destinations are shared between teams' routes and
// never count as a pin.
struct AlertScope {
    std::optional<std::vector<std::string>> sources;  // nullopt: everything
    std::vector<std::string> routes;                  // the routes of `sources`
    std::vector<std::string> destinations;            // and their destinations and fallbacks

    bool sees_labels(const nlohmann::ordered_json& labels) const;
    bool owns_matchers(const nlohmann::ordered_json& matchers) const;
};
AlertScope alert_scope(const Config& cfg, const Scope& scope);

// A silence's matchers against an alert: every key equal, "rule" to the rule name, any other key
// to the label of that name (absent: no match). An empty object matches everything.
bool silence_matches(const nlohmann::ordered_json& matchers, const std::string& rule,
                     const nlohmann::ordered_json& labels);

// GET /api/v1/alerts. `args`: state = pending | firing | resolved | active (pending and firing);
// none: all but those resolved more than 24 hours ago. `redis` (may be null) gives the evaluator's
// leader, null when Redis cannot say. Error::bad_request for an unknown or wrong parameter.
nlohmann::ordered_json list_alerts(Pg& pg, RedisConn* redis,
                                   const std::map<std::string, std::string>& args,
                                   const AlertScope& scope = {});

// GET /api/v1/alerts/events: newest first, `limit` (1-1000, default 50), `cursor` (the previous
// page's next_cursor), `fingerprint`. {"events": [...], "next_cursor": "..." | null}.
nlohmann::ordered_json list_alert_events(Pg& pg, const std::map<std::string, std::string>& args,
                                         const AlertScope& scope = {});

// GET /api/v1/silences: the ones in force (not expired, not ended), or with all=1 every one
// (newest first, the last 1000).
nlohmann::ordered_json list_silences(Pg& pg, const std::map<std::string, std::string>& args,
                                     const AlertScope& scope = {});

// POST /api/v1/silences: {"matchers": {...}, "duration": "2h" | "ends_at": "...", "comment":
// "..."}. The new silence (as listed); audited "silence.create". Error::bad_request names what is
// wrong; a limited token's matchers must pin one of its sources or routes.
nlohmann::ordered_json create_silence(Pg& pg, const nlohmann::ordered_json& request,
                                      const Actor& actor, const AlertScope& scope = {});

// DELETE /api/v1/silences/{id}: {"expired": id}; audited "silence.expire". Error::not_found for an
// unknown id (or one outside the scope), conflict when it has already expired or ended.
nlohmann::ordered_json expire_silence(Pg& pg, const std::string& id, const Actor& actor,
                                      const AlertScope& scope = {});

}  // namespace hookq::ops
