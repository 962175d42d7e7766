#include "worker/ctl_status.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "shared/redis_keys.h"
#include "worker/context.h"
#include "worker/ctl_breaker.h"
#include "worker/ctl_common.h"
#include "worker/park.h"

namespace hookq::ctl {

namespace {

long long integer(RedisConn& redis, const std::vector<std::string_view>& argv) {
    auto r = must(redis, argv);
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

nlohmann::ordered_json queue_status(RedisConn& redis, const std::string& q) {
    long long inflight = 0;
    // One inflight list per worker, dead ones included until the reaper returns their work.
    for (const auto& key : scan_keys(redis, keys::inflight_pattern(q))) {
        inflight += integer(redis, {"LLEN", key});
    }
    std::string now = std::to_string(redis_now_ms(redis));
    long long live = 0, registered = 0;
    auto members = must(redis, {"SMEMBERS", keys::workers(q)});
    for (size_t i = 0; i < members->elements; ++i) {
        std::string id(members->element[i]->str, members->element[i]->len);
        ++registered;
        // A worker that died keeps its membership until the reaper runs; its heartbeat key expired.
        live += integer(redis, {"EXISTS", keys::worker_heartbeat(id)});
    }
    nlohmann::ordered_json j;
    j["queue"] = q;
    j["depth"] = integer(redis, {"LLEN", keys::queue(q)});
    j["inflight"] = inflight;
    j["retry"] = integer(redis, {"ZCARD", keys::retry(q)});
    j["retry_due"] = integer(redis, {"ZCOUNT", keys::retry(q), "-inf", now});
    j["parked"] = park::count(redis, q);  // held back by open or half-open breakers
    j["poison"] = integer(redis, {"LLEN", keys::poison(q)});
    j["workers_live"] = live;
    j["workers_registered"] = registered;
    return j;
}

nlohmann::ordered_json pg_status(Pg& pg) {
    nlohmann::ordered_json j;
    auto dead = must_query(pg,
                           "SELECT source, count(*) FROM dead_letters WHERE requeued_at IS NULL "
                           "GROUP BY source ORDER BY source");
    nlohmann::ordered_json by_source = nlohmann::ordered_json::object();
    long long dead_total = 0;
    for (int i = 0; i < PQntuples(dead.get()); ++i) {
        long long n = std::stoll(cell(dead, i, 1));
        by_source[cell(dead, i, 0)] = n;
        dead_total += n;
    }
    j["dead_letters"] = dead_total;
    j["dead_letters_by_source"] = by_source;

    auto st = must_query(pg,
                         "SELECT status, count(*) FROM webhook_events "
                         "WHERE received_at > now() - interval '1 hour' GROUP BY status");
    nlohmann::ordered_json events = nlohmann::ordered_json::object();
    for (const char* s : {"queued", "delivered", "retrying", "parked", "dead"}) {
        events[s] = 0;
    }
    for (int i = 0; i < PQntuples(st.get()); ++i) {
        events[cell(st, i, 0)] = std::stoll(cell(st, i, 1));
    }
    j["events_last_hour"] = events;

    auto rate = must_query(pg,
                           "SELECT count(*) FILTER (WHERE outcome = 'delivered'), "
                           "count(*) FILTER (WHERE outcome <> 'delivered') FROM delivery_attempts "
                           "WHERE started_at > now() - interval '5 minutes'");
    j["delivered_per_s_5m"] = std::stod(cell(rate, 0, 0)) / 300.0;
    j["failed_attempts_per_s_5m"] = std::stod(cell(rate, 0, 1)) / 300.0;

    // The oldest webhook still on its way: how far behind delivery is.
    auto lag = must_query(pg,
                          "SELECT extract(epoch FROM now() - min(received_at))::float8 "
                          "FROM webhook_events WHERE status IN ('queued', 'retrying', 'parked')");
    j["lag_s"] = is_null(lag, 0, 0) ? nlohmann::ordered_json(0.0)
                                    : nlohmann::ordered_json(std::stod(cell(lag, 0, 0)));
    return j;
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

int status(RedisConn& redis, Pg& pg, const std::vector<std::string>& queues, bool json) {
    nlohmann::ordered_json j;
    j["queues"] = nlohmann::ordered_json::array();
    for (const auto& q : queues) {
        j["queues"].push_back(queue_status(redis, q));
    }
    j["database"] = pg_status(pg);
    j["breakers"] = breaker_states(redis);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }

    std::vector<std::vector<std::string>> rows{
        {"QUEUE", "DEPTH", "INFLIGHT", "RETRY", "DUE", "PARKED", "POISON", "WORKERS"}};
    for (const auto& q : j["queues"]) {
        rows.push_back({q["queue"], std::to_string(q["depth"].get<long long>()),
                        std::to_string(q["inflight"].get<long long>()),
                        std::to_string(q["retry"].get<long long>()),
                        std::to_string(q["retry_due"].get<long long>()),
                        std::to_string(q["parked"].get<long long>()),
                        std::to_string(q["poison"].get<long long>()),
                        std::to_string(q["workers_live"].get<long long>()) + "/" +
                            std::to_string(q["workers_registered"].get<long long>())});
    }
    std::fputs(table(rows).c_str(), stdout);

    const auto& d = j["database"];
    std::string events;
    for (const auto& [k, v] : d["events_last_hour"].items()) {
        events += (events.empty() ? "" : " ") + k + "=" + std::to_string(v.get<long long>());
    }
    std::string dead = std::to_string(d["dead_letters"].get<long long>());
    if (!d["dead_letters_by_source"].empty()) {
        std::string parts;
        for (const auto& [k, v] : d["dead_letters_by_source"].items()) {
            parts += (parts.empty() ? "" : " ") + k + "=" + std::to_string(v.get<long long>());
        }
        dead += " (" + parts + ")";
    }
    std::vector<std::vector<std::string>> db{
        {"dead letters:", dead},
        {"events (1h):", events},
        {"delivered/s (5m):",
         fixed(d["delivered_per_s_5m"].get<double>(), 2) +
             "  failed attempts/s: " + fixed(d["failed_attempts_per_s_5m"].get<double>(), 2)},
        {"lag:", fixed(d["lag_s"].get<double>(), 1) + "s"},
    };
    std::printf("\n");
    std::fputs(table(db).c_str(), stdout);

    std::printf("\n");
    if (j["breakers"].empty()) {
        std::printf("breakers: none\n");
    } else {
        std::vector<std::vector<std::string>> br{{"DESTINATION", "STATE", "OPEN_UNTIL"}};
        for (const auto& b : j["breakers"]) {
            br.push_back({b["destination"], b["state"], b["open_until"]});
        }
        std::fputs(table(br).c_str(), stdout);
    }
    return 0;
}

}  // namespace hookq::ctl
