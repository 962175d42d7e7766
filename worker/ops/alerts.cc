#include "worker/ops/alerts.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "shared/redis_keys.h"
#include "shared/units.h"
#include "worker/cli/common.h"
#include "worker/config.h"
#include "worker/ops/events.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr uint64_t kMinSilenceMs = 60 * 1000;
constexpr uint64_t kMaxSilenceMs = 30ull * 24 * 3600 * 1000;
constexpr size_t kMaxMatchers = 20;
constexpr size_t kMaxMatcherKey = 128;
constexpr size_t kMaxMatcherValue = 512;
constexpr size_t kMaxComment = 2000;
constexpr size_t kMaxFilter = 1024;
constexpr int kMaxSilencesListed = 1000;

std::string fmt_ts(const std::string& col) {
    return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

Json str_or_null(const PgResult& r, int row, int col) {
    return is_null(r, row, col) ? Json() : Json(cell(r, row, col));
}

Json num_or_null(const PgResult& r, int row, int col) {
    if (is_null(r, row, col)) {
        return Json();
    }
    double v = std::stod(cell(r, row, col));
    return std::isfinite(v) ? Json(v) : Json();
}

bool digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

void check_args(const std::map<std::string, std::string>& args,
                std::initializer_list<std::string_view> names) {
    for (const auto& [k, v] : args) {
        if (std::find(names.begin(), names.end(), k) == names.end()) {
            std::string known;
            for (auto n : names) {
                known += (known.empty() ? "" : ", ") + std::string(n);
            }
            throw Error(Error::bad_request,
                        "unknown parameter '" + k + "' (" + (known.empty() ? "none" : known) + ")");
        }
        if (v.size() > kMaxFilter) {
            throw Error(Error::bad_request,
                        k + ": longer than " + std::to_string(kMaxFilter) + " characters");
        }
    }
}

std::string arg(const std::map<std::string, std::string>& args, const char* k) {
    auto it = args.find(k);
    return it == args.end() ? std::string() : it->second;
}

// The labels condition of AlertScope::sees_labels in SQL, for the paged listing (filtering after
// the page is read would make pages short). $src, $routes, $dests are text[] parameters.
std::string sql_sees(const std::string& col, const std::string& src, const std::string& routes,
                     const std::string& dests) {
    return "((" + col + " ? 'source' OR " + col + " ? 'queue' OR " + col + " ? 'route' OR " + col +
           " ? 'destination') AND (NOT " + col + " ? 'source' OR " + col + "->>'source' = ANY(" +
           src + "::text[])) AND (NOT " + col + " ? 'queue' OR " + col + "->>'queue' = ANY(" + src +
           "::text[])) AND (NOT " + col + " ? 'route' OR " + col + "->>'route' = ANY(" + routes +
           "::text[])) AND (NOT " + col + " ? 'destination' OR " + col + "->>'destination' = ANY(" +
           dests + "::text[])))";
}

const char* const kSilenceColumns =
    "id, matchers::text, to_char(starts_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), to_char(ends_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), comment, created_by, to_char(created_at AT TIME ZONE "
    "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), to_char(expired_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), (expired_at IS NULL AND starts_at <= now() AND now() < "
    "ends_at)";

Json silence_json(const PgResult& r, int i) {
    Json s;
    s["id"] = std::stoll(cell(r, i, 0));
    s["matchers"] = Json::parse(cell(r, i, 1));
    s["starts_at"] = cell(r, i, 2);
    s["ends_at"] = cell(r, i, 3);
    s["comment"] = cell(r, i, 4);
    s["created_by"] = cell(r, i, 5);
    s["created_at"] = cell(r, i, 6);
    s["expired_at"] = str_or_null(r, i, 7);
    s["active"] = cell(r, i, 8) == "t";
    return s;
}

bool printable_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Checked matchers: an object whose keys are label names (or "rule") and whose values are
// strings, "rule" naming one of the rules.
Json check_matchers(const Json& m) {
    const std::string shape =
        "matchers must be an object of strings, e.g. {\"rule\": \"breaker_open\", \"route\": "
        "\"orders\"}";
    if (!m.is_object()) {
        throw Error(Error::bad_request, shape);
    }
    if (m.size() > kMaxMatchers) {
        throw Error(Error::bad_request,
                    "matchers: at most " + std::to_string(kMaxMatchers) + " keys");
    }
    for (const auto& [k, v] : m.items()) {
        if (!v.is_string()) {
            throw Error(Error::bad_request, shape + "; \"" + k + "\" is not a string");
        }
        if (k.empty() || k.size() > kMaxMatcherKey || !printable_text(k)) {
            throw Error(Error::bad_request, "matchers: a key is a label name (1-" +
                                                std::to_string(kMaxMatcherKey) +
                                                " printable characters)");
        }
        const auto& s = v.get_ref<const std::string&>();
        if (s.size() > kMaxMatcherValue || !valid_utf8(s)) {
            throw Error(Error::bad_request, "matchers: \"" + k + "\" is longer than " +
                                                std::to_string(kMaxMatcherValue) +
                                                " characters or not UTF-8");
        }
        if (k == "rule" && !known_alert_rule(s)) {
            throw Error(Error::bad_request, "matchers: unknown rule name \"" + s + "\" (one of " +
                                                alert_rule_names() + ")");
        }
    }
    return m;
}

int64_t pg_now_us(Pg& pg) {
    auto r = must_query(pg, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
    return std::stoll(cell(r, 0, 0));
}

}  // namespace

bool known_alert_rule(std::string_view rule) {
    const auto& names = hookq::alert_rule_names();
    return std::find(names.begin(), names.end(), rule) != names.end();
}

std::string alert_rule_names() {
    std::string out;
    for (const auto& r : hookq::alert_rule_names()) {
        out += (out.empty() ? "" : ", ") + r;
    }
    return out;
}

bool AlertScope::sees_labels(const nlohmann::ordered_json& labels) const {
    if (!sources) {
        return true;
    }
    if (!labels.is_object()) {
        return false;
    }
    bool any = false;
    for (const auto& [key, allowed] :
         {std::pair<const char*, const std::vector<std::string>*>{"source", &*sources},
          {"queue", &*sources},
          {"route", &routes},
          {"destination", &destinations}}) {
        auto it = labels.find(key);
        if (it == labels.end()) {
            continue;
        }
        if (!it->is_string() || !contains(*allowed, it->get<std::string>())) {
            return false;
        }
        any = true;
    }
    return any;
}

bool AlertScope::owns_matchers(const nlohmann::ordered_json& matchers) const {
    if (!sources) {
        return true;
    }
    if (!matchers.is_object()) {
        return false;
    }
    bool pinned = false;
    for (const auto& [key, allowed] :
         {std::pair<const char*, const std::vector<std::string>*>{"source", &*sources},
          {"queue", &*sources},
          {"route", &routes}}) {
        auto it = matchers.find(key);
        if (it == matchers.end()) {
            continue;
        }
        if (!it->is_string() || !contains(*allowed, it->get<std::string>())) {
            return false;
        }
        pinned = true;
    }
    return pinned;
}

AlertScope alert_scope(const Config& cfg, const Scope& scope) {
    AlertScope s;
    s.sources = scope.sources;
    if (!scope.sources) {
        return s;
    }
    for (const auto& r : cfg.routes) {
        if (scope.allows(r.source)) {
            s.routes.push_back(r.name);
            s.destinations.push_back(r.destination);
            if (!r.fallback_url.empty()) {
                if (auto d = url_destination(r.fallback_url)) {
                    s.destinations.push_back(*d);
                }
            }
        }
    }
    return s;
}

bool silence_matches(const nlohmann::ordered_json& matchers, const std::string& rule,
                     const nlohmann::ordered_json& labels) {
    if (!matchers.is_object()) {
        return false;
    }
    for (const auto& [k, v] : matchers.items()) {
        if (!v.is_string()) {
            return false;
        }
        const auto& want = v.get_ref<const std::string&>();
        if (k == "rule") {
            if (want != rule) {
                return false;
            }
            continue;
        }
        if (!labels.is_object()) {
            return false;
        }
        auto it = labels.find(k);
        if (it == labels.end() || !it->is_string() || it->get<std::string>() != want) {
            return false;
        }
    }
    return true;
}

Json list_alerts(Pg& pg, RedisConn* redis, const std::map<std::string, std::string>& args,
                 const AlertScope& scope) {
    check_args(args, {"state"});
    std::string state = arg(args, "state");
    std::string where;
    if (state.empty()) {
        // Recent recoveries stay in view for a day: "it fired at 3 a.m. and resolved" is news.
        where =
            "state <> 'resolved' OR coalesce(resolved_at, updated_at) >= now() - interval '24 "
            "hours'";
    } else if (state == "active") {
        where = "state IN ('pending', 'firing')";
    } else if (state == "pending" || state == "firing" || state == "resolved") {
        where = "state = '" + state + "'";
    } else {
        throw Error(
            Error::bad_request,
            "state: must be one of pending, firing, resolved, active; not \"" + state + "\"");
    }
    auto r = must_query(pg,
                        "SELECT fingerprint, rule, labels::text, severity, state, value, "
                        "threshold, summary, runbook, " +
                            fmt_ts("pending_since") + ", " + fmt_ts("firing_since") + ", " +
                            fmt_ts("resolved_at") + ", " + fmt_ts("last_notified_at") +
                            " FROM alerts WHERE " + where +
                            " ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 "
                            "ELSE 2 END, severity, fingerprint");
    // Every silence in force, matched here: there are few, and the rule is the engine's own.
    auto sil = must_query(pg,
                          "SELECT id, matchers::text FROM alert_silences WHERE expired_at IS NULL "
                          "AND starts_at <= now() AND now() < ends_at ORDER BY id");
    std::vector<std::pair<long long, Json>> silences;
    for (int i = 0; i < PQntuples(sil.get()); ++i) {
        silences.emplace_back(std::stoll(cell(sil, i, 0)), Json::parse(cell(sil, i, 1)));
    }
    Json alerts = Json::array();
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        auto labels = Json::parse(cell(r, i, 2));
        if (!scope.sees_labels(labels)) {
            continue;
        }
        Json a;
        a["fingerprint"] = cell(r, i, 0);
        a["rule"] = cell(r, i, 1);
        a["labels"] = labels;
        a["severity"] = cell(r, i, 3);
        a["state"] = cell(r, i, 4);
        a["value"] = num_or_null(r, i, 5);
        a["threshold"] = num_or_null(r, i, 6);
        a["summary"] = cell(r, i, 7);
        a["runbook"] = cell(r, i, 8);
        a["pending_since"] = str_or_null(r, i, 9);
        a["firing_since"] = str_or_null(r, i, 10);
        a["resolved_at"] = str_or_null(r, i, 11);
        a["last_notified_at"] = str_or_null(r, i, 12);
        Json by = Json::array();
        for (const auto& [id, m] : silences) {
            if (silence_matches(m, a["rule"].get<std::string>(), labels)) {
                by.push_back(id);
            }
        }
        a["silenced_by"] = std::move(by);
        alerts.push_back(std::move(a));
    }
    Json out;
    out["alerts"] = std::move(alerts);
    Json leader;
    if (redis) {
        // The listing does not depend on Redis: without it the leader is unknown, not an error.
        Reply rep = redis->command({"GET", keys::alerts_lease()});
        if (rep && rep->type == REDIS_REPLY_STRING) {
            leader = std::string(rep->str, rep->len);
        }
    }
    out["evaluator"] = Json{{"leader", leader}};
    return out;
}

Json list_alert_events(Pg& pg, const std::map<std::string, std::string>& args,
                       const AlertScope& scope) {
    check_args(args, {"limit", "cursor", "fingerprint"});
    int limit = 50;
    if (std::string l = arg(args, "limit"); !l.empty()) {
        if (!digits(l) || l.size() > 6 || std::stoi(l) < 1 || std::stoi(l) > kMaxAlertEventPage) {
            throw Error(Error::bad_request, "limit: must be a number from 1 to " +
                                                std::to_string(kMaxAlertEventPage) + ", not \"" +
                                                l + "\"");
        }
        limit = std::stoi(l);
    }
    std::vector<std::optional<std::string>> params;
    auto param = [&](std::optional<std::string> v) {
        params.push_back(std::move(v));
        return "$" + std::to_string(params.size());
    };
    std::string where;
    auto cond = [&](const std::string& c) { where += (where.empty() ? " WHERE " : " AND ") + c; };
    if (std::string c = arg(args, "cursor"); !c.empty()) {
        // "<at in unix µs>.<id>" of the page's last row: the walk is a keyset on (at, id), so
        // transitions recorded while an operator pages neither shift nor repeat rows.
        size_t dot = c.find('.');
        if (dot == std::string::npos || dot > 18 || c.size() - dot - 1 > 18 ||
            !digits(c.substr(0, dot)) || !digits(c.substr(dot + 1))) {
            throw Error(Error::bad_request,
                        "cursor must be the next_cursor of a previous page, unchanged");
        }
        std::string at = "('epoch'::timestamptz + " + param(c.substr(0, dot)) +
                         "::bigint * interval '1 microsecond')";
        cond("at <= " + at + " AND (at, id) < (" + at + ", " + param(c.substr(dot + 1)) +
             "::bigint)");
    }
    if (std::string f = arg(args, "fingerprint"); !f.empty()) {
        cond("fingerprint = " + param(f));
    }
    if (scope.sources) {
        cond(sql_sees("labels", param(pg_text_array(*scope.sources)),
                      param(pg_text_array(scope.routes)),
                      param(pg_text_array(scope.destinations))));
    }
    auto r = must_query(pg,
                        "SELECT id, " + fmt_ts("at") +
                            ", fingerprint, rule, labels::text, severity, state, value, "
                            "threshold, notified::text, (extract(epoch FROM at) * 1000000)::bigint "
                            "FROM alert_events" +
                            where + " ORDER BY at DESC, id DESC LIMIT " +
                            param(std::to_string(limit + 1)),
                        params);
    int n = PQntuples(r.get());
    Json events = Json::array();
    for (int i = 0; i < std::min(n, limit); ++i) {
        Json e;
        e["id"] = std::stoll(cell(r, i, 0));
        e["at"] = cell(r, i, 1);
        e["fingerprint"] = cell(r, i, 2);
        e["rule"] = cell(r, i, 3);
        e["labels"] = Json::parse(cell(r, i, 4));
        e["severity"] = cell(r, i, 5);
        e["state"] = cell(r, i, 6);
        e["value"] = num_or_null(r, i, 7);
        e["threshold"] = num_or_null(r, i, 8);
        e["notified"] = Json::parse(cell(r, i, 9));
        events.push_back(std::move(e));
    }
    Json out;
    out["events"] = std::move(events);
    out["next_cursor"] =
        n > limit ? Json(cell(r, limit - 1, 10) + "." + cell(r, limit - 1, 0)) : Json();
    return out;
}

Json list_silences(Pg& pg, const std::map<std::string, std::string>& args,
                   const AlertScope& scope) {
    check_args(args, {"all"});
    std::string all = arg(args, "all");
    if (!all.empty() && all != "0" && all != "1" && all != "true" && all != "false") {
        throw Error(Error::bad_request, "all: must be 1 or 0 (true or false), not \"" + all + "\"");
    }
    bool every = all == "1" || all == "true";
    auto r = must_query(pg, std::string("SELECT ") + kSilenceColumns + " FROM alert_silences" +
                                (every ? "" : " WHERE expired_at IS NULL AND ends_at > now()") +
                                " ORDER BY id DESC LIMIT " + std::to_string(kMaxSilencesListed));
    Json list = Json::array();
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Json s = silence_json(r, i);
        if (scope.owns_matchers(s["matchers"])) {
            list.push_back(std::move(s));
        }
    }
    Json out;
    out["silences"] = std::move(list);
    return out;
}

Json create_silence(Pg& pg, const nlohmann::ordered_json& req, const Actor& actor,
                    const AlertScope& scope) {
    if (!req.is_object()) {
        throw Error(Error::bad_request,
                    "the body must be a JSON object: {\"matchers\": {...}, \"duration\": \"2h\" "
                    "(or \"ends_at\": RFC 3339), \"comment\": \"why\"}");
    }
    for (const auto& [k, v] : req.items()) {
        if (k != "matchers" && k != "duration" && k != "ends_at" && k != "comment") {
            throw Error(Error::bad_request,
                        "unknown field '" + k + "' (matchers, duration, ends_at, comment)");
        }
    }
    if (!req.contains("matchers")) {
        throw Error(Error::bad_request,
                    "matchers is required (an object of strings; {} silences every alert)");
    }
    Json matchers = check_matchers(req["matchers"]);
    if (!scope.owns_matchers(matchers)) {
        std::string mine;
        for (const auto& s : *scope.sources) {
            mine += (mine.empty() ? "" : ", ") + s;
        }
        throw Error(Error::bad_request,
                    "this token is limited to the sources " + mine +
                        ": the matchers must pin source, queue or route to one of them (or a "
                        "route serving them), and no other source or route");
    }
    auto comment_it = req.find("comment");
    if (comment_it == req.end() || !comment_it->is_string()) {
        throw Error(Error::bad_request, "comment is required: why the alerts are silenced");
    }
    std::string comment = comment_it->get<std::string>();
    if (comment.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw Error(Error::bad_request, "comment is required: why the alerts are silenced");
    }
    if (comment.size() > kMaxComment || !valid_utf8(comment)) {
        throw Error(Error::bad_request,
                    "comment: at most " + std::to_string(kMaxComment) + " bytes of UTF-8");
    }
    bool has_duration = req.contains("duration"), has_ends = req.contains("ends_at");
    if (has_duration == has_ends) {
        throw Error(Error::bad_request,
                    "give either duration (\"2h\", 1m to 30d) or ends_at (RFC 3339), not " +
                        std::string(has_duration ? "both" : "neither"));
    }
    must_query(pg, "BEGIN");
    try {
        int64_t now_us = pg_now_us(pg);  // the transaction's now(): the rows' starts_at
        int64_t ends_us;
        if (has_duration) {
            const auto& d = req["duration"];
            std::optional<uint64_t> ms;
            if (d.is_string()) {
                ms = parse_duration_ms(d.get<std::string>());
            }
            if (!ms || *ms < kMinSilenceMs || *ms > kMaxSilenceMs) {
                throw Error(
                    Error::bad_request,
                    "duration: must be from 1m to 30d, such as \"2h\" or \"90m\", not " + d.dump());
            }
            ends_us = now_us + static_cast<int64_t>(*ms) * 1000;
        } else {
            const auto& e = req["ends_at"];
            std::optional<int64_t> us;
            if (e.is_string()) {
                us = parse_time(e.get<std::string>());
            }
            if (!us) {
                throw Error(Error::bad_request,
                            "ends_at: must be an RFC 3339 time such as 2026-11-30T18:00:00Z, not " +
                                e.dump());
            }
            if (*us <= now_us) {
                throw Error(Error::bad_request,
                            "ends_at: " + e.get<std::string>() + " is in the past");
            }
            if (*us - now_us < static_cast<int64_t>(kMinSilenceMs) * 1000 ||
                *us - now_us > static_cast<int64_t>(kMaxSilenceMs) * 1000) {
                throw Error(Error::bad_request,
                            "ends_at: must be from 1 minute to 30 days from now");
            }
            ends_us = *us;
        }
        auto r = must_query(
            pg,
            std::string("INSERT INTO alert_silences (matchers, starts_at, ends_at, comment, "
                        "created_by) VALUES ($1::jsonb, now(), 'epoch'::timestamptz + "
                        "$2::bigint * interval '1 microsecond', $3, $4) RETURNING ") +
                kSilenceColumns,
            {matchers.dump(), std::to_string(ends_us), comment, actor.name});
        Json s = silence_json(r, 0);
        audit(pg, actor, "silence.create", std::to_string(s["id"].get<long long>()),
              {{"matchers", nlohmann::json::parse(matchers.dump())},
               {"ends_at", s["ends_at"].get<std::string>()},
               {"comment", comment}});
        must_query(pg, "COMMIT");
        return s;
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
}

Json expire_silence(Pg& pg, const std::string& id, const Actor& actor, const AlertScope& scope) {
    if (!digits(id) || id.size() > 18) {
        throw Error(Error::bad_request,
                    "silence ids are numbers (see `hookqctl silence list`), not \"" +
                        ctl::printable(id.substr(0, 64)) + "\"");
    }
    must_query(pg, "BEGIN");
    try {
        auto r = must_query(pg,
                            std::string("SELECT ") + kSilenceColumns +
                                ", ends_at <= now() FROM alert_silences WHERE id = $1 FOR UPDATE",
                            {id});
        if (PQntuples(r.get()) == 0) {
            throw Error(Error::not_found, "no silence " + id);
        }
        Json s = silence_json(r, 0);
        if (!scope.owns_matchers(s["matchers"])) {
            throw Error(Error::not_found, "no silence " + id);  // as absent: nothing leaks
        }
        if (!s["expired_at"].is_null()) {
            throw Error(Error::conflict, "silence " + id + " was already expired at " +
                                             s["expired_at"].get<std::string>());
        }
        if (cell(r, 0, 9) == "t") {
            throw Error(Error::conflict,
                        "silence " + id + " already ended at " + s["ends_at"].get<std::string>());
        }
        must_query(pg, "UPDATE alert_silences SET expired_at = now() WHERE id = $1", {id});
        audit(pg, actor, "silence.expire", id,
              {{"matchers", nlohmann::json::parse(s["matchers"].dump())},
               {"ends_at", s["ends_at"].get<std::string>()}});
        must_query(pg, "COMMIT");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    Json out;
    out["expired"] = std::stoll(id);
    return out;
}

}  // namespace hookq::ops
