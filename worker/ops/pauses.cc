#include "worker/ops/pauses.h"

#include <map>
#include <set>
#include <stdexcept>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/pipeline/park.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::must;
using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr size_t kMaxReason = 500;

std::string rfc3339_ms(uint64_t ms) {
    if (ms == 0) {
        return "";
    }
    return rfc3339(static_cast<int64_t>(ms * 1000));
}

void check_kind(const std::string& kind) {
    if (kind != "route" && kind != "source") {
        throw Error(Error::bad_request,
                    "what is paused is a route or a source, not '" + kind + "'");
    }
}

// The routes a pause of `kind` `name` holds back; not_found when it names nothing configured the
// scope may see.
std::vector<std::string> routes_of(const Config& cfg, const std::string& kind,
                                   const std::string& name, const Scope& scope) {
    if (name.empty() || name.size() > 200) {
        throw Error(Error::bad_request, "a " + kind + " name is 1 to 200 characters");
    }
    std::vector<std::string> out;
    for (const auto& r : cfg.routes) {
        if (!scope.allows(r.source)) {
            continue;
        }
        if ((kind == "route" && r.name == name) || (kind == "source" && r.source == name)) {
            out.push_back(r.name);
        }
    }
    if (out.empty()) {
        throw Error(Error::not_found, "no " + kind + " named '" + name + "'");
    }
    return out;
}

long long parked_count(RedisConn& redis, const Config& cfg,
                       const std::vector<std::string>& routes) {
    long long n = 0;
    for (const auto& q : cfg.queues) {
        for (const auto& r : routes) {
            auto reply = redis.command({"ZCARD", keys::parked(q, keys::paused_destination(r))});
            if (reply && reply->type == REDIS_REPLY_INTEGER) {
                n += reply->integer;
            }
        }
    }
    return n;
}

}  // namespace

Json list_pauses(RedisConn& redis, const Config& cfg, const Scope& scope) {
    auto reply = must(redis, {"HGETALL", keys::paused()});
    std::map<std::string, Json> sorted;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        std::string field(reply->element[i]->str, reply->element[i]->len);
        std::string value(reply->element[i + 1]->str, reply->element[i + 1]->len);
        size_t colon = field.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        std::string kind = field.substr(0, colon), name = field.substr(colon + 1);
        std::vector<std::string> routes;
        try {
            routes = routes_of(cfg, kind, name, scope);
        } catch (const Error&) {
            // Outside the scope, or no longer configured: a scoped token does not see it; an
            // unscoped one does, so that a stale pause can still be lifted.
            if (scope.sources) {
                continue;
            }
        }
        Json p;
        p["kind"] = kind;
        p["name"] = name;
        auto info = nlohmann::json::parse(value, nullptr, false);
        p["by"] = info.is_object() ? info.value("by", "") : "";
        p["at"] = info.is_object() ? rfc3339_ms(info.value("at_ms", uint64_t{0})) : "";
        p["reason"] = info.is_object() ? info.value("reason", "") : "";
        p["routes"] = routes;
        p["parked"] = parked_count(redis, cfg, routes);
        sorted[field] = std::move(p);
    }
    Json list = Json::array();
    for (auto& [_, p] : sorted) {
        list.push_back(std::move(p));
    }
    Json out;
    out["pauses"] = std::move(list);
    return out;
}

Json pause(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
           const std::string& name, const std::string& reason, const Actor& actor,
           const Scope& scope) {
    check_kind(kind);
    if (reason.size() > kMaxReason) {
        throw Error(Error::bad_request, "reason is at most 500 characters");
    }
    auto routes = routes_of(cfg, kind, name, scope);
    uint64_t now = ctl::redis_now_ms(redis);
    std::string who = actor.name + " (" + actor.via + ")";
    nlohmann::json info{{"by", who}, {"at_ms", now}, {"reason", reason}};
    std::string field = kind + ":" + name;
    // The row goes in first and is committed only once Redis has changed: a pause is never in
    // force unaudited, nor audited when it did not happen.
    must_query(pg, "BEGIN");
    try {
        audit(pg, actor, kind + ".pause", name, {{"reason", reason}});
        auto r = must(redis, {"HSETNX", keys::paused(), field, info.dump()});
        if (r->type != REDIS_REPLY_INTEGER || r->integer == 0) {
            throw Error(Error::conflict, kind + " '" + name + "' is already paused");
        }
        must_query(pg, "COMMIT");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    Json j;
    j["kind"] = kind;
    j["name"] = name;
    j["paused"] = true;
    j["by"] = who;
    j["at"] = rfc3339_ms(now);
    j["reason"] = reason;
    j["routes"] = routes;
    return j;
}

Json resume(RedisConn& redis, Pg& pg, const Config& cfg, const std::string& kind,
            const std::string& name, const Actor& actor, const Scope& scope) {
    check_kind(kind);
    std::vector<std::string> routes;
    try {
        routes = routes_of(cfg, kind, name, scope);
    } catch (const Error& e) {
        // A pause of something no longer configured can still be lifted by an unscoped actor.
        if (e.kind != Error::not_found || scope.sources) {
            throw;
        }
        auto left = must(redis, {"HEXISTS", keys::paused(), kind + ":" + name});
        if (left->type != REDIS_REPLY_INTEGER || left->integer == 0) {
            throw;
        }
        if (kind == "route") {
            routes.push_back(name);
        }
    }
    std::string field = kind + ":" + name;
    must_query(pg, "BEGIN");
    try {
        audit(pg, actor, kind + ".resume", name, nlohmann::json::object());
        auto r = must(redis, {"HDEL", keys::paused(), field});
        if (r->type != REDIS_REPLY_INTEGER || r->integer == 0) {
            throw Error(Error::conflict, kind + " '" + name + "' is not paused");
        }
        must_query(pg, "COMMIT");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    // After the HDEL, at a Redis time later than any worker's fetch that still saw the pause: the
    // release marker makes a park decided from such a copy, acked after this, go to the queue.
    uint64_t now = ctl::redis_now_ms(redis);
    long long released = 0;
    for (const auto& route : routes) {
        // A route still held back by its source's pause (or its own) stays parked.
        auto still = must(redis, {"HEXISTS", keys::paused(), "route:" + route});
        bool held = still->type == REDIS_REPLY_INTEGER && still->integer == 1;
        if (!held) {
            for (const auto& r : cfg.routes) {
                if (r.name == route) {
                    auto s = must(redis, {"HEXISTS", keys::paused(), "source:" + r.source});
                    held = s->type == REDIS_REPLY_INTEGER && s->integer == 1;
                }
            }
        }
        if (held) {
            continue;
        }
        long long n = park::release_all(redis, cfg.queues, keys::paused_destination(route), now);
        if (n < 0) {
            throw std::runtime_error("Redis: cannot move the parked deliveries of " + route +
                                     " back to their queues: " + redis.last_error());
        }
        released += n;
    }
    Json j;
    j["kind"] = kind;
    j["name"] = name;
    j["paused"] = false;
    j["released"] = released;
    return j;
}

std::vector<std::string> paused_by_audit(Pg& pg) {
    auto r = must_query(pg,
                        "SELECT kind || ':' || target FROM ("
                        " SELECT DISTINCT ON (kind, target) kind, target, what FROM ("
                        "  SELECT split_part(action, '.', 1) AS kind, target,"
                        "   split_part(action, '.', 2) AS what, at, id FROM audit_log"
                        "  WHERE action IN ('route.pause', 'route.resume', 'source.pause',"
                        "   'source.resume') AND target IS NOT NULL) a"
                        " ORDER BY kind, target, at DESC, id DESC) last"
                        " WHERE what = 'pause'");
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        out.push_back(cell(r, i, 0));
    }
    return out;
}

}  // namespace hookq::ops
