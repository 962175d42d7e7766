#include "worker/ops/status.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <set>

#include "shared/redis_keys.h"
#include "worker/cli/breaker.h"
#include "worker/cli/common.h"
#include "worker/metrics.h"
#include "worker/ops/pauses.h"
#include "worker/pipeline/park.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must;
using ctl::must_query;

long long integer(RedisConn& redis, const std::vector<std::string_view>& argv) {
    auto r = must(redis, argv);
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

nlohmann::ordered_json queue_status(RedisConn& redis, const std::string& q) {
    uint64_t now_ms = ctl::redis_now_ms(redis);
    long long inflight = 0, live = 0, registered = 0;
    double inflight_age = 0;
    // One inflight list per registered worker, dead ones included until the reaper returns their
    // work, and its landing list (taken by an idle BLMOVE, not yet moved on by the next claim).
    // By name, never by SCAN: the keyspace holds a dedup key per webhook of the last days. A list
    // whose owner lost its registration is the reaper's sweep to find, and counts from then.
    auto members = must(redis, {"SMEMBERS", keys::workers(q)});
    for (size_t i = 0; i < members->elements; ++i) {
        std::string id(members->element[i]->str, members->element[i]->len);
        ++registered;
        // A worker that died keeps its membership until the reaper runs; its heartbeat key expired.
        // The per-queue copy lives on the queue's master: hookq:worker:<id> may be on another,
        // lost one, and must not make this queue look unreachable.
        live += integer(redis, {"EXISTS", keys::queue_heartbeat(q, id)});
        std::string list = keys::inflight(q, id);
        inflight += integer(redis, {"LLEN", list});
        inflight += integer(redis, {"LLEN", keys::claiming(q, id)});
        inflight_age = std::max(inflight_age, tail_age_s(redis, list, now_ms));
    }
    std::string now = std::to_string(now_ms);
    nlohmann::ordered_json j;
    j["queue"] = q;
    j["depth"] = integer(redis, {"LLEN", keys::queue(q)});
    j["inflight"] = inflight;
    j["retry"] = integer(redis, {"ZCARD", keys::retry(q)});
    j["retry_due"] = integer(redis, {"ZCOUNT", keys::retry(q), "-inf", now});
    j["parked"] = park::count(redis, q);  // held back by open or half-open breakers
    j["poison"] = integer(redis, {"LLEN", keys::poison(q)});
    j["oldest_age_s"] = tail_age_s(redis, keys::queue(q), now_ms);
    j["inflight_oldest_age_s"] = inflight_age;
    j["poison_oldest_age_s"] = tail_age_s(redis, keys::poison(q), now_ms);
    auto first_due = must(redis, {"ZRANGE", keys::retry(q), "0", "0", "WITHSCORES"});
    double overdue = 0;
    if (first_due->type == REDIS_REPLY_ARRAY && first_due->elements == 2) {
        double due = std::strtod(first_due->element[1]->str, nullptr);
        overdue = std::max(0.0, (static_cast<double>(now_ms) - due) / 1000.0);
    }
    j["retry_overdue_s"] = overdue;
    j["workers_live"] = live;
    j["workers_registered"] = registered;
    return j;
}

// `sources`/`routes`: text[] literals, or nullopt for everything.
nlohmann::ordered_json pg_status(Pg& pg, const std::optional<std::string>& sources,
                                 const std::optional<std::string>& routes) {
    nlohmann::ordered_json j;
    auto dead = must_query(pg,
                           "SELECT source, count(*), "
                           "extract(epoch FROM now() - min(failed_at))::float8 "
                           "FROM dead_letters WHERE requeued_at IS NULL "
                           "AND ($1::text[] IS NULL OR source = ANY($1::text[])) "
                           "GROUP BY source ORDER BY source",
                           {sources});
    nlohmann::ordered_json by_source = nlohmann::ordered_json::object();
    nlohmann::ordered_json oldest = nlohmann::ordered_json::object();
    long long dead_total = 0;
    for (int i = 0; i < PQntuples(dead.get()); ++i) {
        long long n = std::stoll(cell(dead, i, 1));
        by_source[cell(dead, i, 0)] = n;
        oldest[cell(dead, i, 0)] = std::max(0.0, std::stod(cell(dead, i, 2)));
        dead_total += n;
    }
    j["dead_letters"] = dead_total;
    j["dead_letters_by_source"] = by_source;
    j["dead_letters_oldest_s_by_source"] = oldest;

    // Counting an hour of webhook_events at thousands a second is seconds of PostgreSQL per call,
    // and the dashboard asks every second: the webhooks still pending (or dead) come from the
    // pending index, which holds only those; deliveries and the rates from the minute rollups.
    auto st = must_query(pg,
                         "SELECT status, count(*) FROM webhook_events "
                         "WHERE status <> 'delivered' AND received_at > now() - interval '1 hour' "
                         "AND ($1::text[] IS NULL OR source = ANY($1::text[])) GROUP BY status",
                         {sources});
    nlohmann::ordered_json events = nlohmann::ordered_json::object();
    for (const char* s : {"queued", "delivered", "retrying", "parked", "dead"}) {
        events[s] = 0;
    }
    for (int i = 0; i < PQntuples(st.get()); ++i) {
        events[cell(st, i, 0)] = std::stoll(cell(st, i, 1));
    }
    auto hour = must_query(pg,
                           "SELECT coalesce(sum(delivered), 0) FROM delivery_stats_minute "
                           "WHERE bucket > now() - interval '1 hour' "
                           "AND ($1::text[] IS NULL OR source = ANY($1::text[]))",
                           {sources});
    events["delivered"] = std::stoll(cell(hour, 0, 0));
    j["events_last_hour"] = events;

    // The minutes that began in the last five, over the seconds they cover (5 to 6 minutes).
    auto rate =
        must_query(pg,
                   "SELECT coalesce(sum(delivered), 0), coalesce(sum(attempts - delivered), "
                   "0), extract(epoch FROM now() - date_trunc('minute', now() - interval "
                   "'5 minutes'))::float8 FROM delivery_stats_minute "
                   "WHERE bucket >= date_trunc('minute', now() - interval '5 minutes') "
                   "AND ($1::text[] IS NULL OR route = ANY($1::text[]))",
                   {routes});
    double span = std::max(1.0, std::stod(cell(rate, 0, 2)));
    j["delivered_per_s_5m"] = std::stod(cell(rate, 0, 0)) / span;
    j["failed_attempts_per_s_5m"] = std::stod(cell(rate, 0, 1)) / span;

    // The oldest webhook still on its way: how far behind delivery is.
    auto lag = must_query(pg,
                          "SELECT extract(epoch FROM now() - min(received_at))::float8 "
                          "FROM webhook_events WHERE status IN ('queued', 'retrying', 'parked') "
                          "AND ($1::text[] IS NULL OR source = ANY($1::text[]))",
                          {sources});
    j["lag_s"] = is_null(lag, 0, 0) ? nlohmann::ordered_json(0.0)
                                    : nlohmann::ordered_json(std::stod(cell(lag, 0, 0)));
    return j;
}

}  // namespace

double tail_age_s(RedisConn& redis, const std::string& list, uint64_t now_ms) {
    auto tail = must(redis, {"LINDEX", list, "-1"});
    std::string_view raw = tail->type == REDIS_REPLY_STRING ? std::string_view(tail->str, tail->len)
                                                            : std::string_view();
    return metrics::oldest_age_s(raw, now_ms * 1000);
}

std::optional<RedisMemory> parse_info_memory(std::string_view info) {
    RedisMemory m;
    bool used = false, max = false;
    while (!info.empty()) {
        size_t eol = info.find('\n');
        std::string_view line = info.substr(0, eol);
        info = eol == std::string_view::npos ? std::string_view() : info.substr(eol + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        auto value = [&](std::string_view key, double& out) {
            if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') {
                return false;
            }
            std::string_view v = line.substr(key.size() + 1);
            uint64_t n = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || end != v.data() + v.size()) {
                return false;
            }
            out = static_cast<double>(n);
            return true;
        };
        used = value("used_memory", m.used) || used;
        max = value("maxmemory", m.max) || max;
    }
    if (!used || !max) {
        return std::nullopt;
    }
    return m;
}

std::vector<RedisMemory> redis_memory(RedisConn& redis) {
    std::vector<RedisMemory> out;
    for (auto& [node, r] : redis.each_node({"INFO", "memory"})) {
        std::optional<RedisMemory> m;
        if (r && r->type == REDIS_REPLY_STRING) {
            m = parse_info_memory({r->str, r->len});
        }
        if (!m) {
            m.emplace();
            m->reachable = false;
        }
        m->node = node;
        out.push_back(std::move(*m));
    }
    return out;
}

nlohmann::ordered_json status(RedisConn& redis, Pg& pg, const Config& cfg,
                              const std::vector<std::string>& queues, const Scope& scope) {
    std::optional<std::string> routes;
    std::set<std::string> destinations;
    if (scope.sources) {
        std::vector<std::string> names;
        for (const auto& r : cfg.routes) {
            if (scope.allows(r.source)) {
                names.push_back(r.name);
                destinations.insert(r.destination);
                if (!r.fallback_url.empty()) {
                    destinations.insert(url_destination(r.fallback_url).value_or(""));
                }
            }
        }
        routes = pg_text_array(names);
    }
    nlohmann::ordered_json j;
    // On Redis Cluster each queue lives on its own master, and the fleet-wide keys (breakers,
    // pauses) on some master: one that is lost costs the status only what lives on it, marked
    // (`reachable`: false, `error`), so that the operator sees the rest when it matters most.
    // Without any Redis the call fails as a whole, as before.
    j["queues"] = nlohmann::ordered_json::array();
    size_t unreachable = 0;
    for (const auto& q : queues) {
        if (!scope.allows(q)) {
            continue;
        }
        try {
            nlohmann::ordered_json one = queue_status(redis, q);
            one["reachable"] = true;
            j["queues"].push_back(std::move(one));
        } catch (const std::exception& e) {
            if (cfg.redis_cluster.empty()) {
                throw;  // one Redis: nothing else would answer either
            }
            j["queues"].push_back({{"queue", q}, {"reachable", false}, {"error", e.what()}});
            ++unreachable;
        }
    }
    if (unreachable && unreachable == j["queues"].size()) {
        ctl::redis_now_ms(redis);  // no queue answered: is any Redis there at all?
    }
    j["database"] = pg_status(pg, scope.sql_array(), routes);
    nlohmann::ordered_json errors = nlohmann::ordered_json::object();
    try {
        nlohmann::ordered_json breakers = nlohmann::ordered_json::array();
        for (const auto& b : ctl::breaker_states(redis, cfg)) {
            if (!scope.sources || destinations.count(b["destination"].get<std::string>())) {
                breakers.push_back(nlohmann::ordered_json(b));
            }
        }
        j["breakers"] = breakers;
    } catch (const std::exception& e) {
        errors["breakers"] = e.what();
    }
    // Pauses: the list, and every route and source of the scope with whether it is held back
    // (the hookq_route_paused / hookq_source_paused gauges are rendered from these).
    try {
        j["pauses"] = list_pauses(redis, cfg, scope)["pauses"];
    } catch (const std::exception& e) {
        errors["pauses"] = e.what();
    }
    // Redis's own memory: fleet-wide, so not for a token limited to some sources.
    if (!scope.sources) {
        nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
        for (const auto& m : redis_memory(redis)) {
            if (!m.reachable) {
                nodes.push_back({{"node", m.node}, {"reachable", false}});
                continue;
            }
            nodes.push_back({{"node", m.node},
                             {"reachable", true},
                             {"used_memory_bytes", static_cast<uint64_t>(m.used)},
                             {"maxmemory_bytes", static_cast<uint64_t>(m.max)}});
        }
        j["redis"] = std::move(nodes);
    }
    if (!errors.empty()) {
        // Absent, not empty: "no breaker open" would be a claim nobody could check.
        j["errors"] = errors;
    }
    if (!j.contains("pauses")) {
        return j;
    }
    nlohmann::ordered_json route_paused = nlohmann::ordered_json::object();
    nlohmann::ordered_json source_paused = nlohmann::ordered_json::object();
    for (const auto& r : cfg.routes) {
        if (scope.allows(r.source)) {
            route_paused[r.name] = false;
            source_paused[r.source] = false;
        }
    }
    for (const auto& p : j["pauses"]) {
        if (p["kind"] == "source") {
            source_paused[p["name"].get<std::string>()] = true;
        }
        for (const auto& r : p["routes"]) {
            route_paused[r.get<std::string>()] = true;
        }
    }
    j["routes_paused"] = route_paused;
    j["sources_paused"] = source_paused;
    return j;
}

}  // namespace hookq::ops
