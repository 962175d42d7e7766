#include "worker/ops/replay.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "shared/units.h"
#include "shared/uuid.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/ops/events.h"

namespace hookq::ops {

namespace {

using Json = nlohmann::ordered_json;
using ctl::cell;
using ctl::is_null;
using ctl::must_query;

constexpr const char* kStatuses[] = {"dead", "failed", "delivered"};

std::string ts_param(const std::string& p) {
    return "('epoch'::timestamptz + " + p + "::bigint * interval '1 microsecond')";
}

// The status a selection names, as webhook_routes / webhook_events states.
std::string status_in(const std::string& status) {
    if (status == "dead") {
        return "('dead')";
    }
    if (status == "failed") {
        return "('dead', 'retrying', 'parked')";
    }
    return "('delivered')";
}

[[noreturn]] void bad(const std::string& field, const std::string& why) {
    throw Error(Error::bad_request, field + ": " + why);
}

Json selection_json(const ReplaySelection& s) {
    Json j;
    j["request_ids"] = s.request_ids;
    auto opt = [](const std::string& v) { return v.empty() ? Json() : Json(v); };
    j["source"] = opt(s.source);
    j["route"] = opt(s.route);
    j["status"] = opt(s.status);
    j["event_type"] = opt(s.event_type);
    j["since"] = opt(s.since);
    j["from"] = s.from_us ? Json(rfc3339(*s.from_us, 6)) : Json();
    j["to"] = s.to_us ? Json(rfc3339(*s.to_us, 6)) : Json();
    // The microseconds too: the runner's keyset bounds are exact, not re-parsed from text.
    j["from_us"] = s.from_us ? Json(*s.from_us) : Json();
    j["to_us"] = s.to_us ? Json(*s.to_us) : Json();
    if (s.scope) {
        j["scope"] = *s.scope;
    }
    return j;
}

std::string get_str(const nlohmann::json& j, const char* k) {
    auto it = j.find(k);
    return it == j.end() || !it->is_string() ? std::string() : it->get<std::string>();
}

void check_id(const std::string& id) {
    if (id.empty() || id.size() > 18 ||
        !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw Error(Error::bad_request,
                    "replay ids are numbers (see `hookqctl replay list`), not \"" + id + "\"");
    }
}

// Jobs a scoped token may see: those whose selection names one of its sources.
std::string scope_cond(const Scope& scope, std::vector<std::optional<std::string>>& params) {
    if (!scope.sources) {
        return "true";
    }
    params.emplace_back(*scope.sql_array());
    return "(selection->>'source') = ANY($" + std::to_string(params.size()) + "::text[])";
}

Json counts_and_sample(Pg& pg, const ReplayRequest& req, const nlohmann::json& sel) {
    std::vector<std::optional<std::string>> params;
    std::string where = replay_where(sel, params);
    std::string route_cond = replay_route_cond(sel, req.all_routes ? "all" : "failed", params);
    std::string limit = req.limit ? " LIMIT " + std::to_string(*req.limit) : "";
    // One pass: the selection (its oldest first, as the runner walks it), what each webhook would
    // be sent to, then the totals.
    std::string cte = "WITH sel AS (SELECT e.received_at, e.id FROM webhook_events e" + where +
                      " ORDER BY e.received_at, e.id" + limit +
                      "), per AS (SELECT sel.received_at, sel.id, "
                      "(SELECT count(*) FROM webhook_routes r WHERE r.received_at = "
                      "sel.received_at AND r.event_id = sel.id AND " +
                      route_cond + ") AS n FROM sel) ";
    auto totals = must_query(pg,
                             cte +
                                 "SELECT count(*), count(*) FILTER (WHERE n > 0), "
                                 "coalesce(sum(n), 0) FROM per",
                             params);
    auto by_route = must_query(pg,
                               "WITH sel AS (SELECT e.received_at, e.id FROM webhook_events e" +
                                   where + " ORDER BY e.received_at, e.id" + limit +
                                   ") SELECT r.route, count(*) FROM sel JOIN webhook_routes r ON "
                                   "r.received_at = sel.received_at AND r.event_id = sel.id "
                                   "WHERE " +
                                   route_cond + " GROUP BY r.route ORDER BY r.route",
                               params);
    auto sample = must_query(pg,
                             cte +
                                 "SELECT id::text FROM per WHERE n > 0 "
                                 "ORDER BY received_at, id LIMIT 10",
                             params);
    Json j;
    j["total"] = std::stoll(cell(totals, 0, 0));
    j["to_send"] = std::stoll(cell(totals, 0, 1));
    j["skipped"] = j["total"].get<int64_t>() - j["to_send"].get<int64_t>();
    j["deliveries"] = std::stoll(cell(totals, 0, 2));
    Json routes = Json::object();
    for (int i = 0; i < PQntuples(by_route.get()); ++i) {
        routes[cell(by_route, i, 0)] = std::stoll(cell(by_route, i, 1));
    }
    j["routes"] = std::move(routes);
    Json ids = Json::array();
    for (int i = 0; i < PQntuples(sample.get()); ++i) {
        ids.push_back(cell(sample, i, 0));
    }
    j["sample"] = std::move(ids);
    return j;
}

// The selection as stored: the request's, bounded by `now` when it has no end, so webhooks that
// arrive after the job was made are not part of it, however long it runs.
ReplaySelection frozen(const ReplayRequest& req, const Scope& scope, int64_t now_us) {
    ReplaySelection s = req.selection;
    if (!s.source.empty() && !scope.allows(s.source)) {
        throw Error(Error::bad_request, "source: this token may not see source '" + s.source + "'");
    }
    if (scope.sources) {
        if (s.source.empty()) {
            throw Error(Error::bad_request,
                        "source: this token is limited to some sources; name one (\"source\")");
        }
        s.scope = *scope.sources;
    }
    if (!s.to_us) {
        s.to_us = now_us;
    }
    return s;
}

int64_t pg_now_us(Pg& pg) {
    auto r = must_query(pg, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
    return std::stoll(cell(r, 0, 0));
}

}  // namespace

const char* const kReplayColumns =
    "id, state, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "created_by, selection::text, routes_mode, rate_per_s, \"limit\", total, sent, skipped, "
    "failed, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), error, "
    "CASE WHEN lease_expires > now() THEN lease_owner END, "
    "extract(epoch FROM (coalesce(finished_at, now()) - started_at)), skipped_pending";

Json replay_json(const PgResult& r, int i) {
    auto str_or_null = [&](int c) { return is_null(r, i, c) ? Json() : Json(cell(r, i, c)); };
    Json j;
    j["id"] = std::stoll(cell(r, i, 0));
    j["state"] = cell(r, i, 1);
    j["created_at"] = cell(r, i, 2);
    j["created_by"] = cell(r, i, 3);
    Json sel = Json::parse(cell(r, i, 4));
    sel.erase("from_us");
    sel.erase("to_us");
    sel.erase("fingerprint");
    j["selection"] = std::move(sel);
    j["routes_mode"] = cell(r, i, 5);
    j["rate"] = std::stod(cell(r, i, 6));
    j["limit"] = is_null(r, i, 7) ? Json() : Json(std::stoll(cell(r, i, 7)));
    int64_t total = std::stoll(cell(r, i, 8));
    int64_t sent = std::stoll(cell(r, i, 9));
    int64_t skipped = std::stoll(cell(r, i, 10));
    int64_t failed = std::stoll(cell(r, i, 11));
    j["total"] = total;
    j["sent"] = sent;
    j["skipped"] = skipped;
    // Of skipped: already pushed by another replay and not decided yet (not sent twice).
    j["skipped_pending"] = std::stoll(cell(r, i, 18));
    j["failed"] = failed;
    int64_t done = sent + skipped + failed;
    // Done is all of it, even when fewer than counted at creation were met (a webhook removed
    // by retention, or whose status changed, in the meantime).
    j["progress"] = cell(r, i, 1) == "done" ? 1.0
                    : total > 0             ? std::min(1.0, static_cast<double>(done) / total)
                                            : 0.0;
    j["started_at"] = str_or_null(12);
    j["finished_at"] = str_or_null(13);
    j["updated_at"] = cell(r, i, 14);
    j["error"] = str_or_null(15);
    j["worker"] = str_or_null(16);
    double elapsed = is_null(r, i, 17) ? 0 : std::stod(cell(r, i, 17));
    // Webhooks per second so far, and what is left at that pace (null until it can be told).
    double rate = elapsed > 0.5 && done > 0 ? static_cast<double>(done) / elapsed : 0;
    j["observed_rate"] = rate > 0 ? Json(std::round(rate * 10) / 10) : Json();
    j["eta_seconds"] = rate > 0 && total > done && j["state"] == "running"
                           ? Json(std::round(static_cast<double>(total - done) / rate))
                           : Json();
    return j;
}

std::string replay_status_cond(const nlohmann::json& sel,
                               std::vector<std::optional<std::string>>& params) {
    std::string status = get_str(sel, "status");
    if (status.empty()) {
        return "true";
    }
    std::string route = get_str(sel, "route");
    if (route.empty()) {
        return "e.status IN " + status_in(status);
    }
    // With a route, the status is that route's, as in the event search.
    params.emplace_back(route);
    return "EXISTS (SELECT 1 FROM webhook_routes r WHERE r.received_at = e.received_at AND "
           "r.event_id = e.id AND r.route = $" +
           std::to_string(params.size()) + " AND r.status IN " + status_in(status) + ")";
}

std::string replay_where(const nlohmann::json& sel, std::vector<std::optional<std::string>>& params,
                         bool with_status) {
    std::string where;
    auto param = [&](std::string v) {
        params.emplace_back(std::move(v));
        return "$" + std::to_string(params.size());
    };
    auto cond = [&](const std::string& c) { where += (where.empty() ? " WHERE " : " AND ") + c; };
    std::string source = get_str(sel, "source");
    std::string route = get_str(sel, "route");
    std::string event_type = get_str(sel, "event_type");
    if (!source.empty()) {
        cond("e.source = " + param(source));
    }
    if (sel.contains("scope") && sel["scope"].is_array()) {
        cond("e.source = ANY(" +
             param(pg_text_array(sel["scope"].get<std::vector<std::string>>())) + "::text[])");
    }
    if (!route.empty()) {
        cond(
            "EXISTS (SELECT 1 FROM webhook_routes r WHERE r.received_at = e.received_at "
            "AND r.event_id = e.id AND r.route = " +
            param(route) + ")");
    }
    if (with_status && !get_str(sel, "status").empty()) {
        cond(replay_status_cond(sel, params));
    }
    if (!event_type.empty()) {
        cond("e.event_type = " + param(event_type));
    }
    if (sel.contains("request_ids") && sel["request_ids"].is_array() &&
        !sel["request_ids"].empty()) {
        cond("e.id = ANY(" +
             param(pg_text_array(sel["request_ids"].get<std::vector<std::string>>())) +
             "::uuid[])");
    }
    if (sel.contains("from_us") && sel["from_us"].is_number_integer()) {
        cond("e.received_at >= " + ts_param(param(std::to_string(sel["from_us"].get<int64_t>()))));
    }
    if (sel.contains("to_us") && sel["to_us"].is_number_integer()) {
        cond("e.received_at < " + ts_param(param(std::to_string(sel["to_us"].get<int64_t>()))));
    }
    return where;
}

std::string replay_route_cond(const nlohmann::json& sel, const std::string& routes_mode,
                              std::vector<std::optional<std::string>>& params) {
    // "failed": the dead routes only. Delivered ones have the webhook; retrying and parked ones
    // have their copy waiting in Redis already, and one more would reach the application twice.
    std::string c = routes_mode == "all" ? "true" : "r.status = 'dead'";
    std::string route = get_str(sel, "route");
    if (!route.empty()) {
        params.emplace_back(route);
        c += " AND r.route = $" + std::to_string(params.size());
    }
    return c;
}

ReplayRequest parse_replay_request(const nlohmann::json& body, int64_t now_us) {
    if (!body.is_object()) {
        throw Error(Error::bad_request, "the body must be a JSON object");
    }
    ReplayRequest req;
    ReplaySelection& s = req.selection;
    auto text = [&](const std::string& k, const nlohmann::json& v) {
        if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 200) {
            bad(k, "must be a non-empty string");
        }
        return v.get<std::string>();
    };
    std::string from, to;
    for (const auto& [k, v] : body.items()) {
        if (v.is_null()) {
            continue;
        }
        if (k == "request_ids" || k == "ids") {
            if (!v.is_array()) {
                bad(k, "must be an array of request ids");
            }
            if (v.size() > kReplayMaxIds) {
                bad(k, "at most " + std::to_string(kReplayMaxIds) + " ids");
            }
            for (const auto& x : v) {
                auto id = x.is_string() ? Uuid::parse(x.get<std::string>()) : std::nullopt;
                if (!id) {
                    bad(k, "must be request ids (UUIDs), not " + x.dump());
                }
                s.request_ids.push_back(id->str());
            }
        } else if (k == "source") {
            s.source = text(k, v);
        } else if (k == "route") {
            s.route = text(k, v);
        } else if (k == "event_type") {
            s.event_type = text(k, v);
        } else if (k == "status") {
            s.status = text(k, v);
            if (std::find(std::begin(kStatuses), std::end(kStatuses), s.status) ==
                std::end(kStatuses)) {
                bad(k, "must be one of dead, failed, delivered; not \"" + s.status + "\"");
            }
        } else if (k == "since") {
            s.since = text(k, v);
            auto ms = parse_duration_ms(s.since);
            if (!ms || *ms == 0) {
                bad(k, "must be a duration such as 30m, 1h or 7d, not \"" + s.since + "\"");
            }
            // Longer ago than 1970 is all of it; "300000y" in microseconds would not fit.
            s.from_us = *ms >= static_cast<uint64_t>(now_us) / 1000
                            ? 0
                            : now_us - static_cast<int64_t>(*ms) * 1000;
        } else if (k == "from" || k == "to") {
            auto us = parse_time(text(k, v));
            if (!us) {
                bad(k, "must be an RFC 3339 time (2026-11-30T12:00:00Z) or a date, not \"" +
                           v.get<std::string>() + "\"");
            }
            (k == "from" ? s.from_us : s.to_us) = us;
            (k == "from" ? from : to) = v.get<std::string>();
        } else if (k == "dry_run" || k == "confirm") {
            if (!v.is_boolean()) {
                bad(k, "must be true or false");
            }
            (k == "dry_run" ? req.dry_run : req.confirm) = v.get<bool>();
        } else if (k == "limit") {
            if (!v.is_number_integer() || v.get<int64_t>() < 1) {
                bad(k, "must be a positive whole number");
            }
            req.limit = v.get<int64_t>();
        } else if (k == "rate") {
            if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > kReplayMaxRate) {
                bad(k, "must be a number of deliveries per second, above 0 and at most " +
                           std::to_string(static_cast<int>(kReplayMaxRate)));
            }
            req.rate = v.get<double>();
        } else if (k == "routes") {
            std::string m = v.is_string() ? v.get<std::string>() : "";
            if (m != "failed" && m != "all") {
                bad(k, "must be \"failed\" (only routes that did not succeed) or \"all\"");
            }
            req.all_routes = m == "all";
        } else {
            throw Error(Error::bad_request,
                        "unknown field '" + k +
                            "' (request_ids, source, route, status, event_type, since, from, to, "
                            "dry_run, confirm, limit, rate, routes)");
        }
    }
    if (!s.since.empty() && !from.empty()) {
        bad("since", "give since or from, not both");
    }
    if (s.from_us && s.to_us && *s.from_us >= *s.to_us) {
        bad("from", "must be before to");
    }
    // An empty selection would be every webhook ever recorded: that is asked for explicitly.
    if (s.request_ids.empty() && s.source.empty() && s.route.empty() && s.status.empty() &&
        s.event_type.empty() && !s.from_us && !s.to_us) {
        throw Error(Error::bad_request,
                    "empty selection: name request ids, a source, route, status, event type or a "
                    "time range (since, from/to)");
    }
    return req;
}

Json preview_replay(Pg& pg, const ReplayRequest& req, const Scope& scope) {
    ReplaySelection s = frozen(req, scope, pg_now_us(pg));
    Json sel = selection_json(s);
    Json c = counts_and_sample(pg, req, nlohmann::json::parse(sel.dump()));
    Json j;
    j["dry_run"] = true;
    for (const auto& [k, v] : c.items()) {
        j[k] = v;
    }
    sel.erase("from_us");
    sel.erase("to_us");
    j["selection"] = std::move(sel);
    j["routes_mode"] = req.all_routes ? "all" : "failed";
    j["rate"] = req.rate;
    j["limit"] = req.limit ? Json(*req.limit) : Json();
    j["confirmation_required"] = j["total"].get<int64_t>() > kReplayConfirmAbove;
    j["estimated_seconds"] =
        std::round(static_cast<double>(j["deliveries"].get<int64_t>()) / req.rate * 10) / 10;
    return j;
}

std::string replay_fingerprint(const ReplayRequest& req, const Scope& scope) {
    const ReplaySelection& s = req.selection;
    nlohmann::json j;
    std::vector<std::string> ids = s.request_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    j["request_ids"] = ids;
    j["source"] = s.source;
    j["route"] = s.route;
    j["status"] = s.status;
    j["event_type"] = s.event_type;
    // "since 1h" twice is the same selection, though its start moved between the two.
    j["since"] = s.since;
    j["from_us"] = s.since.empty() && s.from_us ? nlohmann::json(*s.from_us) : nullptr;
    j["to_us"] = s.to_us ? nlohmann::json(*s.to_us) : nullptr;
    j["scope"] = scope.sources ? nlohmann::json(*scope.sources) : nullptr;
    j["routes"] = req.all_routes ? "all" : "failed";
    return j.dump();
}

Json create_replay(Pg& pg, const ReplayRequest& req, const Actor& actor, const Scope& scope) {
    ReplaySelection s = frozen(req, scope, pg_now_us(pg));
    Json sel = selection_json(s);
    const std::string fingerprint = replay_fingerprint(req, scope);
    sel["fingerprint"] = fingerprint;
    std::vector<std::optional<std::string>> params;
    std::string where = replay_where(nlohmann::json::parse(sel.dump()), params);
    std::string limit = req.limit ? " LIMIT " + std::to_string(*req.limit) : "";
    auto n = must_query(
        pg, "SELECT count(*) FROM (SELECT 1 FROM webhook_events e" + where + limit + ") s", params);
    int64_t total = std::stoll(cell(n, 0, 0));
    if (total > kReplayConfirmAbove && !req.confirm) {
        throw ConfirmationRequired(
            total, "confirmation required: the selection holds " + std::to_string(total) +
                       " webhooks (more than " + std::to_string(kReplayConfirmAbove) +
                       "); confirm (\"confirm\": true, hookqctl --yes) or set a limit");
    }
    must_query(pg, "BEGIN");
    std::optional<std::string> refused;
    try {
        // Creates one at a time, so two identical ones at once cannot both pass the check below.
        must_query(pg, "SELECT pg_advisory_xact_lock(hashtext('hookq.replay.create'))");
        // The same selection asked again while a job for it has not finished (a double click, a
        // retried request): refused, naming that job. The runners would not send anything twice
        // (replay_runner.h), but the second job would only skip what the first has pending.
        auto same = must_query(pg,
                               "SELECT id, state, created_by FROM replay_jobs WHERE state IN "
                               "('pending', 'running') AND selection->>'fingerprint' = $1 "
                               "ORDER BY id LIMIT 1",
                               {fingerprint});
        if (PQntuples(same.get()) > 0) {
            refused = cell(same, 0, 0);
            const std::string msg = "replay " + *refused + " (" + cell(same, 0, 1) +
                                    ", created by " + cell(same, 0, 2) +
                                    ") has the same selection and has not finished: watch it "
                                    "(hookqctl replay show " +
                                    *refused + "), or cancel it first";
            must_query(pg, "ROLLBACK");
            // Audited like the write it would have been: who tried what, and why it was refused.
            nlohmann::json details;
            details["selection"] = nlohmann::json::parse(sel.dump());
            details["selection"].erase("from_us");
            details["selection"].erase("to_us");
            details["selection"].erase("fingerprint");
            details["overlaps"] = std::stoll(*refused);
            details["error"] = msg;
            audit(pg, actor, "replay.refused", *refused, std::move(details));
            throw Error(Error::conflict, msg);
        }
        auto r = must_query(
            pg,
            "INSERT INTO replay_jobs (created_by, remote_addr, selection, routes_mode, "
            "rate_per_s, \"limit\", total) VALUES ($1, $2, $3::jsonb, $4, $5::double precision, "
            "$6::bigint, $7::bigint) RETURNING " +
                std::string(kReplayColumns),
            {actor.name,
             actor.remote_addr.empty() ? std::nullopt
                                       : std::optional<std::string>(actor.remote_addr),
             sel.dump(), req.all_routes ? "all" : "failed", std::to_string(req.rate),
             req.limit ? std::optional<std::string>(std::to_string(*req.limit)) : std::nullopt,
             std::to_string(total)});
        Json job = replay_json(r, 0);
        Json details;
        details["selection"] = job["selection"];
        details["routes_mode"] = job["routes_mode"];
        details["rate"] = req.rate;
        details["limit"] = job["limit"];
        details["total"] = total;
        audit(pg, actor, "replay.create", std::to_string(job["id"].get<int64_t>()),
              nlohmann::json::parse(details.dump()));
        must_query(pg, "COMMIT");
        return job;
    } catch (...) {
        if (!refused) {
            pg.exec("ROLLBACK");
        }
        throw;
    }
}

Json list_replays(Pg& pg, const Scope& scope, int limit) {
    std::vector<std::optional<std::string>> params;
    std::string c = scope_cond(scope, params);
    params.emplace_back(std::to_string(std::clamp(limit, 1, 1000)));
    auto r = must_query(pg,
                        "SELECT " + std::string(kReplayColumns) + " FROM replay_jobs WHERE " + c +
                            " ORDER BY id DESC LIMIT $" + std::to_string(params.size()) + "::int",
                        params);
    Json items = Json::array();
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        items.push_back(replay_json(r, i));
    }
    Json j;
    j["replays"] = std::move(items);
    return j;
}

Json get_replay(Pg& pg, const std::string& id, const Scope& scope) {
    check_id(id);
    std::vector<std::optional<std::string>> params{id};
    std::string c = scope_cond(scope, params);
    auto r = must_query(pg,
                        "SELECT " + std::string(kReplayColumns) +
                            " FROM replay_jobs WHERE id = $1::bigint AND " + c,
                        params);
    if (PQntuples(r.get()) == 0) {
        throw Error(Error::not_found, "no replay " + id);
    }
    return replay_json(r, 0);
}

namespace {

Json change_state(Pg& pg, const std::string& id, const Actor& actor, const Scope& scope,
                  const std::string& action) {
    check_id(id);
    must_query(pg, "BEGIN");
    try {
        std::vector<std::optional<std::string>> params{id};
        std::string c = scope_cond(scope, params);
        auto cur = must_query(
            pg, "SELECT state FROM replay_jobs WHERE id = $1::bigint AND " + c + " FOR UPDATE",
            params);
        if (PQntuples(cur.get()) == 0) {
            throw Error(Error::not_found, "no replay " + id);
        }
        std::string from = cell(cur, 0, 0);
        std::string sql;
        if (action == "replay.cancel") {
            if (from != "pending" && from != "running") {
                throw Error(Error::conflict,
                            "replay " + id + " is " + from + ": nothing to cancel");
            }
            // The lease is left as it is: the runner notices the state at its next progress
            // write, and a resume waits for that lease to lapse or be released.
            sql =
                "UPDATE replay_jobs SET state = 'cancelled', finished_at = now(), "
                "updated_at = now() WHERE id = $1::bigint";
        } else {
            if (from != "cancelled" && from != "failed") {
                throw Error(Error::conflict, "replay " + id + " is " + from +
                                                 ": only a cancelled or failed replay resumes");
            }
            sql =
                "UPDATE replay_jobs SET state = 'pending', finished_at = NULL, error = NULL, "
                "updated_at = now() WHERE id = $1::bigint";
        }
        must_query(pg, sql, {id});
        audit(pg, actor, action, id, {{"from_state", from}});
        auto r = must_query(
            pg, "SELECT " + std::string(kReplayColumns) + " FROM replay_jobs WHERE id = $1::bigint",
            {id});
        Json j = replay_json(r, 0);
        must_query(pg, "COMMIT");
        return j;
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
}

}  // namespace

Json cancel_replay(Pg& pg, const std::string& id, const Actor& actor, const Scope& scope) {
    return change_state(pg, id, actor, scope, "replay.cancel");
}

Json resume_replay(Pg& pg, const std::string& id, const Actor& actor, const Scope& scope) {
    return change_state(pg, id, actor, scope, "replay.resume");
}

}  // namespace hookq::ops
