#include "worker/ops/dead_letters.h"

#include <algorithm>

#include "shared/crypto.h"
#include "shared/envelope.h"
#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/ops/events.h"
#include "worker/pipeline/context.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must;
using ctl::must_query;

bool all_digits(const std::string& s, size_t max) {
    return !s.empty() && s.size() <= max &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
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
    throw Error(Error::bad_request,
                "cannot tell which queue source '" + source +
                    "' is consumed from; name the queue (--queue, or \"queue\" in the API)");
}

// A named queue overrides the guess, so a typo would requeue to a list nobody reads while the
// letter is marked requeued. A name is accepted when the configuration consumes it or Redis shows
// it in use.
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
    throw Error(Error::bad_request,
                "unknown queue '" + q +
                    "': not consumed by the configuration and not in use in Redis (known queues: " +
                    (list.empty() ? std::string("none") : list) + ")");
}

}  // namespace

Envelope envelope_from_row(const PgResult& r, int row, int col) {
    Envelope env;
    env.request_id = *Uuid::parse(cell(r, row, col));
    env.received_at_us = std::stoull(cell(r, row, col + 1));
    env.source = cell(r, row, col + 2);
    env.dedup_key = cell(r, row, col + 3);
    env.method = cell(r, row, col + 4);
    env.target = cell(r, row, col + 5);
    env.remote_addr = cell(r, row, col + 6);
    // PostgreSQL keeps the headers as a jsonb object: their original order is gone, and
    // repeated fields arrive joined, as the worker stored them.
    const auto headers = nlohmann::json::parse(cell(r, row, col + 7));
    for (const auto& [name, value] : headers.items()) {
        env.headers.emplace_back(name, value.is_string() ? value.get<std::string>() : value.dump());
    }
    env.body = from_hex(cell(r, row, col + 8));
    return env;
}

std::string requeue_element(const Envelope& env, const std::string& route) {
    // A retry record for the route, not the bare envelope: the bare envelope would be routed
    // afresh and redelivered to every route of the source, including those that already
    // succeeded. "-" (no route matched) has no route to name, so it is routed afresh, which is
    // the point of retrying it after fixing the configuration.
    if (route == "-") {
        return env.encode();
    }
    RetryRecord rec;
    rec.route = route;
    rec.attempt = 1;
    rec.first_attempt_us = now_us();
    rec.envelope = env.encode();
    return rec.encode();
}

std::string requeue_queue(const Config& cfg, const std::string& source, const std::string& forced) {
    return queue_for(cfg, source, forced);
}

void check_dead_letter_id(const std::string& id) {
    if (!all_digits(id, 18)) {
        throw Error(Error::bad_request,
                    "dead letter ids are numbers (see `hookqctl dlq list`), not \"" + id + "\"");
    }
}

nlohmann::ordered_json list_dead_letters(Pg& pg, const DeadLetterQuery& q, const Scope& scope) {
    if (q.limit < 1 || q.limit > kMaxDeadLetterPage) {
        throw Error(Error::bad_request,
                    "limit must be between 1 and " + std::to_string(kMaxDeadLetterPage));
    }
    if (!q.cursor.empty() && !all_digits(q.cursor, 18)) {
        throw Error(Error::bad_request,
                    "cursor must be the next_cursor of a previous page, not \"" + q.cursor + "\"");
    }
    auto opt = [](const std::string& s) {
        return s.empty() ? std::nullopt : std::optional<std::string>(s);
    };
    // One more than asked: whether there is a next page, without a count over the table.
    auto r =
        must_query(pg,
                   "SELECT id, event_id, source, route, reason, attempts, "
                   "to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                   "to_char(requeued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                   "FROM dead_letters WHERE ($1::text IS NULL OR source = $1) "
                   "AND ($2::text IS NULL OR route = $2) AND ($3::bool OR requeued_at IS NULL) "
                   "AND ($4::bigint IS NULL OR id < $4::bigint) "
                   "AND ($5::text[] IS NULL OR source = ANY($5::text[])) "
                   "ORDER BY id DESC LIMIT $6::int",
                   {opt(q.source), opt(q.route), q.include_requeued ? "true" : "false",
                    opt(q.cursor), scope.sql_array(), std::to_string(q.limit + 1)});
    nlohmann::ordered_json items = nlohmann::ordered_json::array();
    int n = PQntuples(r.get());
    for (int i = 0; i < std::min(n, q.limit); ++i) {
        nlohmann::ordered_json item;
        item["id"] = std::stoll(cell(r, i, 0));
        item["event_id"] = cell(r, i, 1);
        item["source"] = cell(r, i, 2);
        item["route"] = cell(r, i, 3);
        item["reason"] = cell(r, i, 4);
        item["attempts"] = std::stoi(cell(r, i, 5));
        item["failed_at"] = cell(r, i, 6);
        item["requeued_at"] =
            is_null(r, i, 7) ? nlohmann::ordered_json() : nlohmann::ordered_json(cell(r, i, 7));
        items.push_back(std::move(item));
    }
    nlohmann::ordered_json page;
    page["items"] = items;
    page["next_cursor"] =
        n > q.limit ? nlohmann::ordered_json(cell(r, q.limit - 1, 0)) : nlohmann::ordered_json();
    return page;
}

nlohmann::ordered_json get_dead_letter(Pg& pg, const std::string& id, const Scope& scope) {
    check_dead_letter_id(id);
    auto ts = [](const std::string& col) {
        return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
    };
    auto r = must_query(
        pg,
        "SELECT d.id, d.event_id, d.source, d.route, d.reason, d.attempts, " + ts("d.failed_at") +
            ", " + ts("d.requeued_at") + ", " + ts("d.received_at") +
            ", e.method, e.path, e.remote_addr, e.event_type, e.headers::text, "
            "octet_length(e.body), e.status, e.last_error, encode(e.body, 'hex'), "
            "(extract(epoch FROM d.received_at) * 1000000)::bigint "
            "FROM dead_letters d LEFT JOIN webhook_events e "
            "ON e.id = d.event_id AND e.received_at = d.received_at WHERE d.id = $1::bigint "
            "AND ($2::text[] IS NULL OR d.source = ANY($2::text[]))",
        {id, scope.sql_array()});
    if (PQntuples(r.get()) == 0) {
        throw Error(Error::not_found, "no dead letter " + id);
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
            j[names[c]] = nlohmann::ordered_json::parse(cell(r, 0, c));
        } else if (c == 0 || c == 5 || c == 14) {
            j[names[c]] = std::stoll(cell(r, 0, c));
        } else {
            j[names[c]] = cell(r, 0, c);
        }
    }
    // The body as GET /api/v1/events/{id} shows it; both null when the event row is gone.
    if (is_null(r, 0, 17)) {
        j["body_encoding"] = nullptr;
        j["body"] = nullptr;
    } else {
        auto b = body_json(crypto::hex_decode(cell(r, 0, 17)).value_or(""));
        j["body_encoding"] = std::move(b["body_encoding"]);
        j["body"] = std::move(b["body"]);
    }
    // No attempt starts before its webhook arrived: the bound prunes older partitions. An hour
    // of slack, as the edge's clock (received_at) and the worker's (started_at) may differ.
    auto a = must_query(pg,
                        "SELECT route, attempt, " + ts("started_at") +
                            ", round(duration_ms::numeric, 1), http_status, outcome, error, url "
                            "FROM delivery_attempts WHERE event_id = $1::uuid AND started_at >= "
                            "('epoch'::timestamptz + $2::bigint * interval '1 microsecond') - "
                            "interval '1 hour' ORDER BY started_at, attempt",
                        {cell(r, 0, 1), cell(r, 0, 18)});
    auto attempts = nlohmann::ordered_json::array();
    for (int i = 0; i < PQntuples(a.get()); ++i) {
        nlohmann::ordered_json at;
        at["route"] = cell(a, i, 0);
        at["attempt"] = std::stoi(cell(a, i, 1));
        at["started_at"] = cell(a, i, 2);
        at["duration_ms"] = std::stod(cell(a, i, 3));
        at["http_status"] = is_null(a, i, 4) ? nlohmann::ordered_json()
                                             : nlohmann::ordered_json(std::stoi(cell(a, i, 4)));
        at["outcome"] = cell(a, i, 5);
        at["error"] =
            is_null(a, i, 6) ? nlohmann::ordered_json() : nlohmann::ordered_json(cell(a, i, 6));
        at["url"] = cell(a, i, 7);
        attempts.push_back(std::move(at));
    }
    j["delivery_attempts"] = attempts;
    return j;
}

RetryResult retry_dead_letter(Pg& pg, RedisConn& redis, const Config& cfg, const std::string& id,
                              const RetryRequest& req, const Actor& actor, const Scope& scope) {
    check_dead_letter_id(id);
    if (!req.queue.empty()) {
        check_queue(redis, cfg, req.queue);
    }
    nlohmann::ordered_json res;
    res["id"] = std::stoll(id);
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
            "WHERE d.id = $1::bigint AND ($2::text[] IS NULL OR d.source = ANY($2::text[])) "
            "FOR UPDATE OF d",
            {id, scope.sql_array()});
        std::string skip;
        RetryOutcome outcome = RetryOutcome::requeued;
        if (PQntuples(r.get()) == 0) {
            skip = "no such dead letter";
            outcome = RetryOutcome::not_found;
        } else if (is_null(r, 0, 3)) {
            skip = "its event row is gone (cleaned up?)";
            outcome = RetryOutcome::gone;
        } else if (cell(r, 0, 2) == "t" && !req.force) {
            skip = "already requeued (force to requeue again: --force, or \"force\": true)";
            outcome = RetryOutcome::already_requeued;
        }
        if (!skip.empty()) {
            pg.exec("ROLLBACK");
            res["result"] = "skipped";
            res["why"] = skip;
            return {outcome, res};
        }
        Envelope env = envelope_from_row(r, 0, 3);
        std::string route = cell(r, 0, 1);
        std::string queue = queue_for(cfg, env.source, req.queue);
        std::string element = requeue_element(env, route);
        res["event_id"] = cell(r, 0, 0);
        res["route"] = route;
        res["queue"] = queue;
        if (req.dry_run) {
            pg.exec("ROLLBACK");
            res["result"] = "would requeue";
            return {RetryOutcome::would_requeue, res};
        }
        must_query(pg, "UPDATE dead_letters SET requeued_at = now() WHERE id = $1::bigint", {id});
        audit(pg, actor, "dlq.retry", id,
              {{"event_id", res["event_id"].get<std::string>()},
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
    return {RetryOutcome::requeued, res};
}

nlohmann::ordered_json delete_dead_letter(Pg& pg, const std::string& id, const Actor& actor,
                                          const Scope& scope) {
    check_dead_letter_id(id);
    must_query(pg, "BEGIN");
    try {
        auto r = must_query(pg,
                            "DELETE FROM dead_letters WHERE id = $1::bigint "
                            "AND ($2::text[] IS NULL OR source = ANY($2::text[])) "
                            "RETURNING event_id, source, route, reason",
                            {id, scope.sql_array()});
        if (PQntuples(r.get()) == 0) {
            pg.exec("ROLLBACK");
            // Outside the scope reads the same as absent: a scoped token learns nothing of others.
            throw Error(Error::not_found, "no dead letter " + id);
        }
        audit(pg, actor, "dlq.delete", id,
              {{"event_id", cell(r, 0, 0)},
               {"source", cell(r, 0, 1)},
               {"route", cell(r, 0, 2)},
               {"reason", cell(r, 0, 3)}});
        must_query(pg, "COMMIT");
    } catch (const Error&) {
        throw;
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    nlohmann::ordered_json res;
    res["deleted"] = std::stoll(id);
    return res;
}

}  // namespace hookq::ops
