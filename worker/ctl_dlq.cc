#include "worker/ctl_dlq.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "shared/envelope.h"
#include "shared/redis_keys.h"
#include "worker/context.h"
#include "worker/ctl_common.h"

namespace hookq::ctl {

namespace {

void check_ids(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
        if (id.empty() || id.size() > 18 ||
            !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            throw std::runtime_error(
                "dead letter ids are numbers (see `hookqctl dlq list`), not \"" + id + "\"");
        }
    }
}

std::string from_hex(const std::string& hex) {
    auto nibble = [](char c) -> int { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    }
    return out;
}

// The edge queues a webhook on the queue named in its location, which PostgreSQL does not record;
// the source names it in the usual setup (the worker's default queues are the routes' sources).
std::string queue_for(const Config& cfg, const std::string& source, const std::string& forced) {
    if (!forced.empty()) {
        return forced;
    }
    if (std::find(cfg.queues.begin(), cfg.queues.end(), source) != cfg.queues.end()) {
        return source;
    }
    if (cfg.queues.size() == 1) {
        return cfg.queues.front();
    }
    throw std::runtime_error("cannot tell which queue source '" + source +
                             "' is consumed from; name it with --queue");
}

// --queue overrides the guess, so a typo would requeue to a list nobody reads while the letter is
// marked requeued. A name is accepted when the configuration consumes it or Redis shows it in use.
void check_queue(RedisConn& redis, const Config& cfg, const std::string& q) {
    std::vector<std::string> known = cfg.queues;
    for (const Route& r : cfg.routes) {
        if (std::find(known.begin(), known.end(), r.source) == known.end()) {
            known.push_back(r.source);
        }
    }
    if (std::find(known.begin(), known.end(), q) != known.end()) {
        return;
    }
    if (!q.empty() && q.find_first_of("{}") == std::string::npos) {
        auto n = must(redis, {"EXISTS", keys::queue(q), keys::retry(q), keys::workers(q)});
        if (n->type == REDIS_REPLY_INTEGER && n->integer > 0) {
            return;
        }
    }
    std::string list;
    for (const auto& k : known) {
        list += (list.empty() ? "" : ", ") + k;
    }
    throw std::runtime_error("unknown queue '" + q +
                             "': not consumed by the configuration and not in use in Redis "
                             "(known queues: " +
                             (list.empty() ? std::string("none") : list) + ")");
}

void print_json(const nlohmann::json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

}  // namespace

int dlq_list(Pg& pg, const DlqListOptions& o) {
    auto r = must_query(
        pg,
        "SELECT id, event_id, source, route, reason, attempts, "
        "to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "to_char(requeued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM dead_letters WHERE ($1::text IS NULL OR source = $1) "
        "AND ($2::bool OR requeued_at IS NULL) ORDER BY failed_at DESC, id DESC LIMIT $3::int",
        {o.source.empty() ? std::nullopt : std::optional(o.source), o.all ? "true" : "false",
         std::to_string(o.limit)});
    auto j = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows{
        {"ID", "EVENT", "SOURCE", "ROUTE", "ATTEMPTS", "FAILED_AT", "REQUEUED_AT", "REASON"}};
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        j.push_back(
            {{"id", std::stoll(cell(r, i, 0))},
             {"event_id", cell(r, i, 1)},
             {"source", cell(r, i, 2)},
             {"route", cell(r, i, 3)},
             {"reason", cell(r, i, 4)},
             {"attempts", std::stoi(cell(r, i, 5))},
             {"failed_at", cell(r, i, 6)},
             {"requeued_at", is_null(r, i, 7) ? nlohmann::json() : nlohmann::json(cell(r, i, 7))}});
        rows.push_back({cell(r, i, 0), cell(r, i, 1), cell(r, i, 2), cell(r, i, 3), cell(r, i, 5),
                        cell(r, i, 6), is_null(r, i, 7) ? "-" : cell(r, i, 7), cell(r, i, 4)});
    }
    if (o.json) {
        print_json(j);
    } else if (rows.size() == 1) {
        std::printf("no dead letters\n");
    } else {
        std::fputs(table(rows).c_str(), stdout);
    }
    return 0;
}

int dlq_show(Pg& pg, const std::string& id, bool json) {
    check_ids({id});
    auto r =
        must_query(pg,
                   "SELECT d.id, d.event_id, d.source, d.route, d.reason, d.attempts, d.failed_at, "
                   "d.requeued_at, d.received_at, e.method, e.path, e.remote_addr, e.event_type, "
                   "e.headers::text, length(e.body), e.status, e.last_error "
                   "FROM dead_letters d LEFT JOIN webhook_events e "
                   "ON e.id = d.event_id AND e.received_at = d.received_at WHERE d.id = $1::bigint",
                   {id});
    if (PQntuples(r.get()) == 0) {
        std::fprintf(stderr, "hookqctl: no dead letter %s\n", id.c_str());
        return 1;
    }
    const char* names[] = {"id",           "event_id",    "source",      "route",       "reason",
                           "attempts",     "failed_at",   "requeued_at", "received_at", "method",
                           "path",         "remote_addr", "event_type",  "headers",     "body_size",
                           "event_status", "last_error"};
    nlohmann::ordered_json j;
    for (int c = 0; c < 17; ++c) {
        if (is_null(r, 0, c)) {
            j[names[c]] = nullptr;
        } else if (c == 13) {
            j[names[c]] = nlohmann::json::parse(cell(r, 0, c));
        } else if (c == 0 || c == 5 || c == 14) {
            j[names[c]] = std::stoll(cell(r, 0, c));
        } else {
            j[names[c]] = cell(r, 0, c);
        }
    }
    auto a = must_query(pg,
                        "SELECT route, attempt, started_at, round(duration_ms::numeric, 1), "
                        "http_status, outcome, error, url FROM delivery_attempts "
                        "WHERE event_id = $1::uuid ORDER BY started_at, attempt",
                        {cell(r, 0, 1)});
    auto attempts = nlohmann::ordered_json::array();
    std::vector<std::vector<std::string>> rows{
        {"ROUTE", "ATTEMPT", "STARTED_AT", "MS", "HTTP", "OUTCOME", "ERROR"}};
    for (int i = 0; i < PQntuples(a.get()); ++i) {
        attempts.push_back(
            {{"route", cell(a, i, 0)},
             {"attempt", std::stoi(cell(a, i, 1))},
             {"started_at", cell(a, i, 2)},
             {"duration_ms", std::stod(cell(a, i, 3))},
             {"http_status",
              is_null(a, i, 4) ? nlohmann::json() : nlohmann::json(std::stoi(cell(a, i, 4)))},
             {"outcome", cell(a, i, 5)},
             {"error", is_null(a, i, 6) ? nlohmann::json() : nlohmann::json(cell(a, i, 6))},
             {"url", cell(a, i, 7)}});
        rows.push_back({cell(a, i, 0), cell(a, i, 1), cell(a, i, 2), cell(a, i, 3),
                        is_null(a, i, 4) ? "-" : cell(a, i, 4), cell(a, i, 5), cell(a, i, 6)});
    }
    j["delivery_attempts"] = attempts;
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    for (const auto& [k, v] : j.items()) {
        if (k == "delivery_attempts") {
            continue;
        }
        std::string text = v.is_string() ? v.get<std::string>() : v.is_null() ? "-" : v.dump();
        std::printf("%-13s %s\n", (k + ":").c_str(), text.c_str());
    }
    std::printf("\n");
    if (rows.size() == 1) {
        std::printf("no delivery attempts\n");
    } else {
        std::fputs(table(rows).c_str(), stdout);
    }
    return 0;
}

int dlq_retry(Pg& pg, RedisConn& redis, const Config& cfg, const DlqRetryOptions& o) {
    check_ids(o.ids);
    if (!o.queue.empty()) {
        check_queue(redis, cfg, o.queue);
    }
    auto results = nlohmann::json::array();
    int failed = 0;
    for (const auto& id : o.ids) {
        nlohmann::json res{{"id", std::stoll(id)}};
        must_query(pg, "BEGIN");
        try {
            // FOR UPDATE: two operators retrying the same letter requeue it once.
            auto r = must_query(
                pg,
                "SELECT d.event_id, d.route, d.requeued_at IS NOT NULL, e.id, "
                "(extract(epoch FROM e.received_at) * 1000000)::bigint, e.source, e.dedup_key, "
                "e.method, e.path, coalesce(e.remote_addr, ''), e.headers::text, "
                "encode(e.body, 'hex') FROM dead_letters d LEFT JOIN webhook_events e "
                "ON e.id = d.event_id AND e.received_at = d.received_at "
                "WHERE d.id = $1::bigint FOR UPDATE OF d",
                {id});
            std::string skip;
            if (PQntuples(r.get()) == 0) {
                skip = "no such dead letter";
            } else if (is_null(r, 0, 3)) {
                skip = "its event row is gone (cleaned up?)";
            } else if (cell(r, 0, 2) == "t" && !o.force) {
                skip = "already requeued (--force to requeue again)";
            }
            if (!skip.empty()) {
                pg.exec("ROLLBACK");
                res["result"] = "skipped";
                res["why"] = skip;
                ++failed;
                results.push_back(res);
                continue;
            }
            Envelope env;
            env.request_id = *Uuid::parse(cell(r, 0, 3));
            env.received_at_us = std::stoull(cell(r, 0, 4));
            env.source = cell(r, 0, 5);
            env.dedup_key = cell(r, 0, 6);
            env.method = cell(r, 0, 7);
            env.target = cell(r, 0, 8);
            env.remote_addr = cell(r, 0, 9);
            // PostgreSQL keeps the headers as a jsonb object: their original order is gone, and
            // repeated fields arrive joined, as the worker stored them.
            const auto headers = nlohmann::json::parse(cell(r, 0, 10));
            for (const auto& [name, value] : headers.items()) {
                env.headers.emplace_back(
                    name, value.is_string() ? value.get<std::string>() : value.dump());
            }
            env.body = from_hex(cell(r, 0, 11));
            std::string route = cell(r, 0, 1);
            std::string queue = queue_for(cfg, env.source, o.queue);
            // A retry record for the dead route, not the bare envelope: the bare envelope would be
            // routed afresh and redelivered to every route of the source, including those that
            // already succeeded. "-" (no route matched) has no route to name, so it is routed
            // afresh, which is the point of retrying it after fixing the configuration.
            std::string element;
            if (route == "-") {
                element = env.encode();
            } else {
                RetryRecord rec;
                rec.route = route;
                rec.attempt = 1;
                rec.first_attempt_us = now_us();
                rec.envelope = env.encode();
                element = rec.encode();
            }
            res["event_id"] = cell(r, 0, 0);
            res["route"] = route;
            res["queue"] = queue;
            if (o.dry_run) {
                pg.exec("ROLLBACK");
                res["result"] = "would requeue";
                results.push_back(res);
                continue;
            }
            must_query(pg, "UPDATE dead_letters SET requeued_at = now() WHERE id = $1::bigint",
                       {id});
            audit(pg, "dlq.retry", id,
                  {{"event_id", res["event_id"]},
                   {"route", route},
                   {"queue", queue},
                   {"source", env.source}});
            // Pushed last, committed right after: if the push fails nothing is recorded; if the
            // commit fails the webhook is delivered once more, which at-least-once allows.
            must(redis, {"LPUSH", keys::queue(queue), element});
            must_query(pg, "COMMIT");
            res["result"] = "requeued";
        } catch (...) {
            pg.exec("ROLLBACK");
            throw;
        }
        results.push_back(res);
    }
    if (o.json) {
        print_json(results);
    } else {
        for (const auto& res : results) {
            std::string line = std::to_string(res["id"].get<long long>()) + ": " +
                               res["result"].get<std::string>();
            if (res.contains("queue")) {
                line += " event " + res["event_id"].get<std::string>() + " route " +
                        res["route"].get<std::string>() + " on queue " +
                        res["queue"].get<std::string>();
            }
            if (res.contains("why")) {
                line += " (" + res["why"].get<std::string>() + ")";
            }
            std::printf("%s\n", line.c_str());
        }
    }
    return failed ? 1 : 0;
}

int dlq_delete(Pg& pg, const std::vector<std::string>& ids, bool json) {
    check_ids(ids);
    auto results = nlohmann::json::array();
    int failed = 0;
    for (const auto& id : ids) {
        must_query(pg, "BEGIN");
        try {
            auto r = must_query(pg,
                                "DELETE FROM dead_letters WHERE id = $1::bigint "
                                "RETURNING event_id, source, route, reason",
                                {id});
            if (PQntuples(r.get()) == 0) {
                pg.exec("ROLLBACK");
                ++failed;
                results.push_back({{"id", std::stoll(id)}, {"result", "not found"}});
                continue;
            }
            audit(pg, "dlq.delete", id,
                  {{"event_id", cell(r, 0, 0)},
                   {"source", cell(r, 0, 1)},
                   {"route", cell(r, 0, 2)},
                   {"reason", cell(r, 0, 3)}});
            must_query(pg, "COMMIT");
            results.push_back({{"id", std::stoll(id)}, {"result", "deleted"}});
        } catch (...) {
            pg.exec("ROLLBACK");
            throw;
        }
    }
    if (json) {
        print_json(results);
    } else {
        for (const auto& res : results) {
            std::printf("%lld: %s\n", res["id"].get<long long>(),
                        res["result"].get<std::string>().c_str());
        }
    }
    return failed ? 1 : 0;
}

}  // namespace hookq::ctl
