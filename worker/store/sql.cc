#include "worker/store/sql.h"

#include <algorithm>
#include <array>
#include <tuple>
#include <ctime>
#include <map>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace hookq {

namespace {

// Placeholders "($1::uuid,$2,...),(...)" for `rows` rows with the given per-column casts.
std::string values_clause(size_t rows, const std::vector<std::string_view>& casts) {
    std::string out;
    out.reserve(rows * casts.size() * 12);
    size_t n = 1;
    for (size_t r = 0; r < rows; ++r) {
        out += r ? ",(" : "(";
        for (size_t c = 0; c < casts.size(); ++c) {
            if (c) {
                out += ',';
            }
            out += '$';
            out += std::to_string(n++);
            out += casts[c];
        }
        out += ')';
    }
    return out;
}

std::optional<std::string> nullable(std::string s) {
    if (s.empty()) {
        return std::nullopt;
    }
    return s;
}

}  // namespace

std::string sanitize_text(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size();
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == 0) {
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (p[i + k] & 0xC0) == 0x80;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid too.
        ok = ok && !(len == 2 && cp < 0x80) && !(len == 3 && cp < 0x800) &&
             !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (ok) {
            out.append(s.data() + i, len);
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

std::string format_timestamp_us(uint64_t unix_us) {
    time_t secs = static_cast<time_t>(unix_us / 1000000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       unix_us % 1000000);
}

std::string headers_json(const EnvelopeView& env) {
    // An object is what operators query (headers->>'X-GitHub-Event'); repeated fields are joined
    // as HTTP allows.
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& h : env.headers) {
        std::string name = sanitize_text(h.name);
        std::string value = sanitize_text(h.value);
        auto it = j.find(name);
        if (it == j.end()) {
            j[name] = value;
        } else {
            *it = it->get<std::string>() + ", " + value;
        }
    }
    return j.dump();
}

std::string_view route_status(OutcomeKind k) {
    switch (k) {
        case OutcomeKind::delivered:
            return "delivered";
        case OutcomeKind::retry:
            return "retrying";
        case OutcomeKind::parked:
            return "parked";
        case OutcomeKind::dead:
            return "dead";
        case OutcomeKind::split:
            return "split";
        case OutcomeKind::waiting:
            return "waiting";
        case OutcomeKind::coalesced:
            return "coalesced";
    }
    return "dead";
}

std::string event_status(const Job& job) {
    bool retry = false, parked = false, dead = false, delivered = false;
    for (const auto& o : job.outcomes) {
        retry |= o.kind == OutcomeKind::retry;
        // Held back behind another delivery of the same entity: like parked, not failing.
        parked |= o.kind == OutcomeKind::parked || o.kind == OutcomeKind::waiting;
        dead |= o.kind == OutcomeKind::dead;
        // The route's part is done: its events went out as deliveries of their own, or the
        // update went out merged into a newer one.
        delivered |= o.kind == OutcomeKind::delivered || o.kind == OutcomeKind::split ||
                     o.kind == OutcomeKind::coalesced;
    }
    if (retry) {
        return "retrying";
    }
    if (parked) {
        return "parked";
    }
    if (dead) {
        return "dead";
    }
    return delivered ? "delivered" : "dead";
}

bool writes_nothing(const Job& j) {
    if (!j.decoded || !j.retry || !j.attempts.empty() || j.outcomes.empty()) {
        return false;
    }
    return std::all_of(j.outcomes.begin(), j.outcomes.end(),
                       [](const RouteOutcome& o) { return o.kind == OutcomeKind::parked; });
}

namespace {

// Appends INSERTs of `n` rows, as many statements as the parameter limit needs. add_row(s, i)
// adds the parameters of row i.
template <class AddRow>
void emit_rows(std::vector<Statement>& out, size_t n, const std::string& head,
               const std::vector<std::string_view>& casts, const std::string& tail,
               size_t max_params, AddRow add_row) {
    size_t per = std::max<size_t>(1, max_params / casts.size());
    for (size_t i = 0; i < n; i += per) {
        size_t k = std::min(per, n - i);
        Statement s;
        s.rows = k;
        s.sql = head + values_clause(k, casts) + tail;
        s.params.reserve(k * casts.size());
        s.formats.reserve(k * casts.size());
        for (size_t r = i; r < i + k; ++r) {
            add_row(s, r);
        }
        out.push_back(std::move(s));
    }
}

// A PostgreSQL array literal of the given elements, each double-quoted (none contains a quote or
// a backslash: they are uuids and our own timestamps).
std::string array_literal(const std::vector<std::string>& items) {
    std::string out = "{";
    for (size_t i = 0; i < items.size(); ++i) {
        out += i ? ",\"" : "\"";
        out += items[i];
        out += '"';
    }
    out += '}';
    return out;
}

struct EventRow {
    const Job* job = nullptr;
    bool insert = false;  // some claim of it came from the queue itself: the row may not exist yet
};

struct Summary {
    uint32_t attempts = 0;
    std::optional<std::string> delivered_at;
    std::optional<std::string> last_error;
};
Summary summary(const Job& j) {
    Summary s;
    uint64_t delivered_us = 0;
    std::string last_error;
    for (const auto& o : j.outcomes) {
        s.attempts = std::max(s.attempts, o.attempt);
        if (o.kind == OutcomeKind::delivered) {
            delivered_us = std::max(delivered_us, o.at_us);
        } else if (!o.reason.empty()) {
            last_error = o.route + ": " + o.reason;
        }
    }
    if (delivered_us) {
        s.delivered_at = format_timestamp_us(delivered_us);
    }
    s.last_error = nullable(sanitize_text(last_error));
    return s;
}

}  // namespace

size_t stats_bucket(uint64_t us) {
    return static_cast<size_t>(
        std::upper_bound(std::begin(kStatsBounds), std::end(kStatsBounds), us) -
        std::begin(kStatsBounds));
}

bool attempt_timed_out(const AttemptRow& a) {
    // CURLE_OPERATION_TIMEDOUT's texts: "Operation timed out after ...", "Connection timed out
    // after ...", "Resolving timed out after ...", or curl_easy_strerror's "Timeout was reached".
    // A status means the destination answered, whatever happened to the body afterwards.
    std::string_view e = a.error;
    return a.http_status == 0 &&
           (e.find("timed out") != std::string_view::npos || e.starts_with("Timeout was reached"));
}

namespace {

struct StatsAgg {
    uint64_t attempts = 0, delivered = 0, retried = 0, dead = 0, parked = 0, timeouts = 0;
    uint64_t duration_us = 0;
    std::array<uint64_t, kStatsBuckets> duration{};
    std::array<uint64_t, kStatsBuckets> e2e{};

    void add(const StatsAgg& o) {
        attempts += o.attempts;
        delivered += o.delivered;
        retried += o.retried;
        dead += o.dead;
        parked += o.parked;
        timeouts += o.timeouts;
        duration_us += o.duration_us;
        for (size_t i = 0; i < kStatsBuckets; ++i) {
            duration[i] += o.duration[i];
            e2e[i] += o.e2e[i];
        }
    }
};

// "[3:5]={2,0,1}": the histogram without the zeros at either end, subscript = bucket + 1; "{}"
// when empty.
std::string hist_literal(const std::array<uint64_t, kStatsBuckets>& h) {
    size_t lo = 0, hi = kStatsBuckets;
    while (lo < hi && h[lo] == 0) {
        ++lo;
    }
    while (hi > lo && h[hi - 1] == 0) {
        --hi;
    }
    if (lo == hi) {
        return "{}";
    }
    std::string out = "[" + std::to_string(lo + 1) + ":" + std::to_string(hi) + "]={";
    for (size_t i = lo; i < hi; ++i) {
        if (i > lo) {
            out += ',';
        }
        out += std::to_string(h[i]);
    }
    out += '}';
    return out;
}

using StatsRows = std::map<std::tuple<uint64_t, std::string, std::string>, StatsAgg>;

void emit_stats(std::vector<Statement>& out, std::string_view table, const StatsRows& rows,
                std::string_view worker_id, size_t max_params) {
    std::vector<const StatsRows::value_type*> v;
    v.reserve(rows.size());
    for (const auto& kv : rows) {
        v.push_back(&kv);
    }
    std::string t(table);
    emit_rows(out, v.size(),
              "INSERT INTO " + t +
                  " AS t (bucket, source, route, worker_id, attempts, delivered, retried, dead, "
                  "parked, timeouts, duration_us_sum, duration_hist, e2e_hist) VALUES ",
              {"::timestamptz", "", "", "", "::bigint", "::bigint", "::bigint", "::bigint",
               "::bigint", "::bigint", "::bigint", "::bigint[]", "::bigint[]"},
              " ON CONFLICT (bucket, source, route, worker_id) DO UPDATE SET "
              "attempts = t.attempts + EXCLUDED.attempts, "
              "delivered = t.delivered + EXCLUDED.delivered, "
              "retried = t.retried + EXCLUDED.retried, dead = t.dead + EXCLUDED.dead, "
              "parked = t.parked + EXCLUDED.parked, timeouts = t.timeouts + EXCLUDED.timeouts, "
              "duration_us_sum = t.duration_us_sum + EXCLUDED.duration_us_sum, "
              "duration_hist = hookq_hist_add(t.duration_hist, EXCLUDED.duration_hist), "
              "e2e_hist = hookq_hist_add(t.e2e_hist, EXCLUDED.e2e_hist)",
              max_params, [&](Statement& s, size_t i) {
                  const auto& [key, a] = *v[i];
                  s.add(format_timestamp_us(std::get<0>(key)));
                  s.add(std::get<1>(key));
                  s.add(std::get<2>(key));
                  s.add(std::string(worker_id));
                  for (uint64_t n : {a.attempts, a.delivered, a.retried, a.dead, a.parked,
                                     a.timeouts, a.duration_us}) {
                      s.add(std::to_string(n));
                  }
                  s.add(hist_literal(a.duration));
                  s.add(hist_literal(a.e2e));
              });
}

}  // namespace

void stats_rollups(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                   std::string_view worker_id, size_t max_params) {
    constexpr uint64_t kMinuteUs = 60 * 1000000ULL, kHourUs = 3600 * 1000000ULL;
    // Per attempt: one lookup in a map keyed by views into the job (no allocation unless the
    // minute, source and route are new to this batch), a few additions. Everything else below is
    // per key: a batch of hundreds of attempts has a handful of keys.
    using Key = std::tuple<uint64_t, std::string_view, std::string_view>;
    std::map<Key, StatsAgg> minutes;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& a : j->attempts) {
            StatsAgg& g =
                minutes[Key{a.started_us - a.started_us % kMinuteUs, j->env.source, a.route}];
            ++g.attempts;
            g.delivered += a.outcome == OutcomeKind::delivered;
            g.retried += a.outcome == OutcomeKind::retry;
            g.dead += a.outcome == OutcomeKind::dead;
            g.timeouts += attempt_timed_out(a);
            g.duration_us += a.duration_us;
            ++g.duration[stats_bucket(a.duration_us)];
            if (a.outcome == OutcomeKind::delivered) {
                uint64_t end = a.started_us + a.duration_us;
                uint64_t rx = j->env.received_at_us;
                ++g.e2e[stats_bucket(end > rx ? end - rx : 0)];
            }
        }
        // A route parked behind its breaker made no attempt: counted apart, when it was decided.
        // A retry record parked again writes nothing at all (writes_nothing): each webhook's route
        // counts once, at the park that first held it back.
        if (writes_nothing(*j)) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            if (o.kind == OutcomeKind::parked) {
                ++minutes[Key{o.at_us - o.at_us % kMinuteUs, j->env.source, o.route}].parked;
            }
        }
    }
    if (minutes.empty()) {
        return;
    }
    // Keyed by the text written: two names that differ only in bytes PostgreSQL refuses would
    // otherwise be two rows of one key in a statement, which ON CONFLICT DO UPDATE rejects. The
    // map's order is the order the rows are locked in.
    StatsRows by_minute, by_hour;
    for (const auto& [k, g] : minutes) {
        auto [bucket, source, route] = k;
        std::string src = sanitize_text(source), rt = sanitize_text(route);
        by_hour[{bucket - bucket % kHourUs, src, rt}].add(g);
        by_minute[{bucket, std::move(src), std::move(rt)}].add(g);
    }
    emit_stats(out, "delivery_stats_minute", by_minute, worker_id, max_params);
    emit_stats(out, "delivery_stats_hour", by_hour, worker_id, max_params);
}

std::vector<Statement> event_inserts(const std::vector<const Job*>& inserts, size_t max_params) {
    std::vector<Statement> out;
    emit_rows(
        out, inserts.size(),
        "INSERT INTO webhook_events (id, received_at, source, dedup_key, event_type, method, "
        "path, remote_addr, headers, body, status, attempts, delivered_at, last_error) VALUES ",
        {"::uuid", "::timestamptz", "", "", "", "", "", "", "::jsonb", "::bytea", "", "::int",
         "::timestamptz", ""},
        " ON CONFLICT (received_at, id) DO UPDATE SET status = EXCLUDED.status, "
        "event_type = COALESCE(EXCLUDED.event_type, webhook_events.event_type), "
        "attempts = GREATEST(webhook_events.attempts, EXCLUDED.attempts), "
        "delivered_at = COALESCE(EXCLUDED.delivered_at, webhook_events.delivered_at), "
        "last_error = COALESCE(EXCLUDED.last_error, webhook_events.last_error), "
        "updated_at = now()",
        max_params, [&](Statement& s, size_t i) {
            const Job* j = inserts[i];
            const EnvelopeView& e = j->env;
            Summary sum = summary(*j);
            s.add(e.request_id.str());
            s.add(format_timestamp_us(e.received_at_us));
            s.add(sanitize_text(e.source));
            s.add(sanitize_text(e.dedup_key));
            s.add(nullable(sanitize_text(j->event_type)));
            s.add(sanitize_text(e.method));
            s.add(sanitize_text(e.target));
            s.add(nullable(sanitize_text(e.remote_addr)));
            s.add(headers_json(e));
            s.add(std::string(e.body), /*binary=*/true);
            s.add(event_status(*j));
            s.add(std::to_string(sum.attempts));
            s.add(sum.delivered_at);
            s.add(sum.last_error);
        });
    return out;
}

std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id, size_t max_params) {
    std::vector<Statement> out;

    // A crash between commit and ack redelivers; a batch can even hold the same webhook twice.
    // ON CONFLICT DO UPDATE may not touch a row twice in one statement, so keep the last.
    std::vector<EventRow> events;
    std::unordered_map<std::string, size_t> seen;
    for (const Job* j : jobs) {
        if (!j->decoded || writes_nothing(*j)) {
            continue;
        }
        std::string id = j->env.request_id.str();
        auto [it, fresh] = seen.emplace(id, events.size());
        if (fresh) {
            events.push_back({j, !j->retry});
        } else {
            events[it->second].job = j;
            events[it->second].insert |= !j->retry;
        }
    }

    // The body and headers are written once, by the first claim; a claim from a retry record
    // updates only the small columns, so a webhook retried for days is not sent again each time.
    // Should its row be missing (a forged or very old retry record), the recorder inserts it
    // from event_inserts(), told by the UPDATE's RETURNING which ones exist.
    //
    // These statements also lock each webhook's row until COMMIT, before its route rows are
    // written: two workers finishing different routes of one webhook at once are serialized, so
    // the second one's status derivation sees the first one's route row. Locking in id order
    // keeps two batches from deadlocking on each other.
    std::sort(events.begin(), events.end(), [](const EventRow& a, const EventRow& b) {
        return a.job->env.request_id.bytes < b.job->env.request_id.bytes;
    });
    std::vector<const Job*> inserts, updates;
    for (const EventRow& e : events) {
        (e.insert ? inserts : updates).push_back(e.job);
    }
    for (auto& st : event_inserts(inserts, max_params)) {
        out.push_back(std::move(st));
    }
    emit_rows(out, updates.size(),
              "UPDATE webhook_events AS e SET status = v.status, "
              "event_type = COALESCE(v.event_type, e.event_type), "
              "attempts = GREATEST(e.attempts, v.attempts), "
              "delivered_at = COALESCE(v.delivered_at, e.delivered_at), "
              "last_error = COALESCE(v.last_error, e.last_error), updated_at = now() FROM (VALUES ",
              {"::uuid", "::timestamptz", "", "", "::int", "::timestamptz", ""},
              ") AS v (id, received_at, event_type, status, attempts, delivered_at, last_error) "
              "WHERE e.received_at = v.received_at AND e.id = v.id RETURNING e.id::text",
              max_params, [&](Statement& s, size_t i) {
                  const Job* j = updates[i];
                  s.jobs.push_back(j);
                  Summary sum = summary(*j);
                  s.add(j->env.request_id.str());
                  s.add(format_timestamp_us(j->env.received_at_us));
                  s.add(nullable(sanitize_text(j->event_type)));
                  s.add(event_status(*j));
                  s.add(std::to_string(sum.attempts));
                  s.add(sum.delivered_at);
                  s.add(sum.last_error);
              });

    // Per-route state, last one winning per (webhook, route) for the same reason as above; then
    // the webhook's status is derived from all its routes, so that "delivered" means every route
    // delivered, whichever claim wrote last.
    std::map<std::pair<std::string, std::string>, std::pair<const Job*, const RouteOutcome*>>
        route_rows;
    for (const Job* j : jobs) {
        if (!j->decoded || writes_nothing(*j)) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            route_rows[{j->env.request_id.str(), o.route}] = {j, &o};
        }
    }
    std::vector<std::pair<const Job*, const RouteOutcome*>> rr;
    rr.reserve(route_rows.size());
    for (const auto& [key, v] : route_rows) {
        rr.push_back(v);
    }
    emit_rows(
        out, rr.size(),
        "INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error) "
        "VALUES ",
        {"::uuid", "::timestamptz", "", "", "::int", ""},
        // Delivered is final for a route: the application has it (so are split and coalesced:
        // their events went out in other deliveries). A later outcome for the same
        // route comes from a second copy (a reaped or retried element finishing after the first)
        // and must not turn the row back into "retrying" or "dead".
        " ON CONFLICT (received_at, event_id, route) DO UPDATE SET status = CASE "
        "WHEN webhook_routes.status IN ('delivered', 'split', 'coalesced') "
        "THEN webhook_routes.status ELSE EXCLUDED.status END, "
        "attempts = GREATEST(webhook_routes.attempts, EXCLUDED.attempts), "
        "last_error = COALESCE(EXCLUDED.last_error, webhook_routes.last_error), "
        "updated_at = now()",
        max_params, [&](Statement& s, size_t i) {
            const auto& [j, o] = rr[i];
            s.add(j->env.request_id.str());
            s.add(format_timestamp_us(j->env.received_at_us));
            s.add(sanitize_text(o->route));
            s.add(std::string(route_status(o->kind)));
            s.add(std::to_string(o->attempt));
            s.add(o->kind == OutcomeKind::delivered ? std::nullopt
                                                    : nullable(sanitize_text(o->reason)));
        });
    // Updates coalesced into a delivery that is done (ordering.h): their route is done too, by
    // that delivery, which their row names.
    struct MergedRow {
        const MergedUpdate* m;
        const std::string* route;
        std::string into;
    };
    std::vector<MergedRow> merged;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const OrderHold& h : j->holds) {
            bool done = std::any_of(j->outcomes.begin(), j->outcomes.end(), [&](const auto& o) {
                return o.route == h.route &&
                       (o.kind == OutcomeKind::delivered || o.kind == OutcomeKind::dead);
            });
            for (size_t i = 0; done && i < h.merged.size(); ++i) {
                merged.push_back({&h.merged[i], &h.route, j->env.request_id.str()});
            }
        }
    }
    emit_rows(
        out, merged.size(),
        "INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error) "
        "VALUES ",
        {"::uuid", "::timestamptz", "", "", "::int", ""},
        " ON CONFLICT (received_at, event_id, route) DO UPDATE SET status = CASE "
        "WHEN webhook_routes.status = 'delivered' THEN 'delivered' ELSE EXCLUDED.status END, "
        "last_error = EXCLUDED.last_error, updated_at = now()",
        max_params, [&](Statement& s, size_t i) {
            s.add(merged[i].m->id);
            s.add(format_timestamp_us(merged[i].m->received_us));
            s.add(sanitize_text(*merged[i].route));
            s.add(std::string(route_status(OutcomeKind::coalesced)));
            s.add("0");
            s.add("merged into " + merged[i].into);
        });
    if (!events.empty() || !merged.empty()) {
        std::vector<std::string> ids, times;
        for (const EventRow& e : events) {
            ids.push_back(e.job->env.request_id.str());
            times.push_back(format_timestamp_us(e.job->env.received_at_us));
        }
        for (const MergedRow& m : merged) {
            ids.push_back(m.m->id);
            times.push_back(format_timestamp_us(m.m->received_us));
        }
        Statement s;
        s.rows = ids.size();
        s.sql =
            "UPDATE webhook_events AS e SET status = d.status FROM (SELECT received_at, event_id, "
            "CASE WHEN bool_and(status IN ('delivered', 'split', 'coalesced')) THEN 'delivered' "
            "WHEN bool_or(status = 'retrying') THEN 'retrying' "
            "WHEN bool_or(status IN ('parked', 'waiting')) THEN 'parked' ELSE 'dead' END "
            "AS status "
            "FROM webhook_routes WHERE (received_at, event_id) IN "
            "(SELECT * FROM unnest($1::timestamptz[], $2::uuid[])) GROUP BY received_at, event_id"
            ") AS d WHERE e.received_at = d.received_at AND e.id = d.event_id "
            "AND e.status <> d.status";
        s.add(array_literal(times));
        s.add(array_literal(ids));
        out.push_back(std::move(s));
    }

    std::vector<std::pair<const Job*, const AttemptRow*>> att;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& a : j->attempts) {
            att.emplace_back(j, &a);
        }
    }
    emit_rows(
        out, att.size(),
        "INSERT INTO delivery_attempts (event_id, route, url, attempt, started_at, "
        "duration_ms, http_status, outcome, error, worker_id) VALUES ",
        {"::uuid", "", "", "::int", "::timestamptz", "::double precision", "::int", "", "", ""}, "",
        max_params, [&](Statement& s, size_t i) {
            const auto& [j, a] = att[i];
            s.add(j->env.request_id.str());
            s.add(sanitize_text(a->route));
            s.add(sanitize_text(a->url));
            s.add(std::to_string(a->attempt));
            s.add(format_timestamp_us(a->started_us));
            s.add(fmt::format("{:.3f}", static_cast<double>(a->duration_us) / 1000.0));
            s.add(a->http_status ? std::optional(std::to_string(a->http_status)) : std::nullopt);
            s.add(std::string(to_string(a->outcome)));
            s.add(nullable(sanitize_text(a->error)));
            s.add(std::string(worker_id));
        });

    // Dead letters and route flags, last one winning per key for the same reason as above.
    std::map<std::pair<std::string, std::string>, std::pair<const Job*, const RouteOutcome*>> dead;
    std::map<std::string, std::pair<const Job*, const RouteOutcome*>> flags;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            if (o.kind == OutcomeKind::dead) {
                dead[{j->env.request_id.str(), o.route}] = {j, &o};
            }
            if (o.flag_route) {
                flags[o.route] = {j, &o};
            }
        }
    }
    std::vector<std::pair<const std::pair<std::string, std::string>*,
                          const std::pair<const Job*, const RouteOutcome*>*>>
        dl;
    for (const auto& [key, v] : dead) {
        dl.emplace_back(&key, &v);
    }
    emit_rows(out, dl.size(),
              "INSERT INTO dead_letters (event_id, received_at, source, route, reason, "
              "attempts, failed_at) VALUES ",
              {"::uuid", "::timestamptz", "", "", "", "::int", "::timestamptz"},
              " ON CONFLICT (event_id, route) DO UPDATE SET reason = EXCLUDED.reason, "
              "attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at, "
              "requeued_at = NULL",
              max_params, [&](Statement& s, size_t i) {
                  const auto& [key, v] = dl[i];
                  s.add(key->first);
                  s.add(format_timestamp_us(v->first->env.received_at_us));
                  s.add(sanitize_text(v->first->env.source));
                  s.add(sanitize_text(key->second));
                  s.add(sanitize_text(v->second->reason));
                  s.add(std::to_string(v->second->attempt));
                  s.add(format_timestamp_us(v->second->at_us));
              });
    std::vector<const std::pair<const std::string, std::pair<const Job*, const RouteOutcome*>>*> fl;
    for (const auto& kv : flags) {
        fl.push_back(&kv);
    }
    emit_rows(out, fl.size(),
              "INSERT INTO route_flags (route, reason, event_id, flagged_at) VALUES ",
              {"", "", "::uuid", "::timestamptz"},
              " ON CONFLICT (route) DO UPDATE SET reason = EXCLUDED.reason, "
              "event_id = EXCLUDED.event_id, flagged_at = EXCLUDED.flagged_at, cleared_at = NULL",
              max_params, [&](Statement& s, size_t i) {
                  const auto& [route, v] = *fl[i];
                  s.add(sanitize_text(route));
                  s.add(sanitize_text(v.second->reason));
                  s.add(v.first->env.request_id.str());
                  s.add(format_timestamp_us(v.second->at_us));
              });

    emit_rows(out, transitions.size(),
              "INSERT INTO breaker_transitions (at, destination, from_state, to_state, "
              "worker_id, reason) VALUES ",
              {"::timestamptz", "", "", "", "", ""}, "", max_params, [&](Statement& s, size_t i) {
                  const Transition* t = transitions[i];
                  s.add(format_timestamp_us(t->at_us));
                  s.add(sanitize_text(t->destination));
                  s.add(t->from);
                  s.add(t->to);
                  s.add(std::string(worker_id));
                  s.add(nullable(sanitize_text(t->reason)));
              });

    // Last: the rollups are this worker's own rows, locked for the shortest time.
    stats_rollups(out, jobs, worker_id, max_params);
    return out;
}

Statement poison_trace(const Job& j, std::string_view reason) {
    // The row that was refused is not written again: only what identifies it, cut short, so the
    // trace itself cannot hit the limit that refused the row.
    auto cut = [](std::string s, size_t n) {
        s = sanitize_text(s.substr(0, std::min(s.size(), n)));
        return s;
    };
    uint32_t attempts = 0;
    for (const auto& o : j.outcomes) {
        attempts = std::max(attempts, o.attempt);
    }
    Statement s;
    s.rows = 1;
    s.sql =
        "INSERT INTO dead_letters (event_id, received_at, source, route, reason, attempts, "
        "failed_at) VALUES ($1::uuid, $2::timestamptz, $3, $4, $5, $6::int, now()) "
        "ON CONFLICT (event_id, route) DO UPDATE SET reason = EXCLUDED.reason, "
        "attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at, requeued_at = NULL";
    s.add(j.env.request_id.str());
    s.add(format_timestamp_us(j.env.received_at_us));
    s.add(cut(std::string(j.env.source), 200));
    s.add(std::string(kPoisonRoute));
    s.add(cut("poison: " + std::string(reason), 1000));
    s.add(std::to_string(attempts));
    return s;
}

}  // namespace hookq
