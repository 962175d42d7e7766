#include "worker/sql.h"

#include <algorithm>
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

std::string event_status(const Job& job) {
    bool retry = false, parked = false, dead = false, delivered = false;
    for (const auto& o : job.outcomes) {
        retry |= o.kind == OutcomeKind::retry;
        parked |= o.kind == OutcomeKind::parked;
        dead |= o.kind == OutcomeKind::dead;
        delivered |= o.kind == OutcomeKind::delivered;
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

std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id) {
    std::vector<Statement> out;

    // A crash between commit and ack redelivers; a batch can even hold the same webhook twice.
    // ON CONFLICT DO UPDATE may not touch a row twice in one statement, so keep the last.
    std::vector<const Job*> events;
    std::unordered_map<std::string, size_t> seen;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        std::string id = j->env.request_id.str();
        auto [it, fresh] = seen.emplace(id, events.size());
        if (fresh) {
            events.push_back(j);
        } else {
            events[it->second] = j;
        }
    }

    if (!events.empty()) {
        Statement s;
        s.rows = events.size();
        s.sql =
            "INSERT INTO webhook_events (id, received_at, source, dedup_key, event_type, method, "
            "path, remote_addr, headers, body, status, attempts, delivered_at, last_error) "
            "VALUES " +
            values_clause(events.size(), {"::uuid", "::timestamptz", "", "", "", "", "", "",
                                          "::jsonb", "::bytea", "", "::int", "::timestamptz", ""}) +
            " ON CONFLICT (received_at, id) DO UPDATE SET status = EXCLUDED.status, "
            "event_type = COALESCE(EXCLUDED.event_type, webhook_events.event_type), "
            "attempts = GREATEST(webhook_events.attempts, EXCLUDED.attempts), "
            "delivered_at = COALESCE(EXCLUDED.delivered_at, webhook_events.delivered_at), "
            "last_error = COALESCE(EXCLUDED.last_error, webhook_events.last_error), "
            "updated_at = now()";
        for (const Job* j : events) {
            const EnvelopeView& e = j->env;
            uint32_t attempts = 0;
            uint64_t delivered_us = 0;
            std::string last_error;
            for (const auto& o : j->outcomes) {
                attempts = std::max(attempts, o.attempt);
                if (o.kind == OutcomeKind::delivered) {
                    delivered_us = std::max(delivered_us, o.at_us);
                } else if (!o.reason.empty()) {
                    last_error = o.route + ": " + o.reason;
                }
            }
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
            s.add(std::to_string(attempts));
            s.add(delivered_us ? std::optional(format_timestamp_us(delivered_us)) : std::nullopt);
            s.add(nullable(sanitize_text(last_error)));
        }
        out.push_back(std::move(s));
    }

    Statement att;
    std::vector<std::string_view> att_casts = {
        "::uuid", "", "", "::int", "::timestamptz", "::double precision", "::int", "", "", ""};
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& a : j->attempts) {
            att.rows++;
            att.add(j->env.request_id.str());
            att.add(sanitize_text(a.route));
            att.add(sanitize_text(a.url));
            att.add(std::to_string(a.attempt));
            att.add(format_timestamp_us(a.started_us));
            att.add(fmt::format("{:.3f}", static_cast<double>(a.duration_us) / 1000.0));
            att.add(a.http_status ? std::optional(std::to_string(a.http_status)) : std::nullopt);
            att.add(std::string(to_string(a.outcome)));
            att.add(nullable(sanitize_text(a.error)));
            att.add(std::string(worker_id));
        }
    }
    if (att.rows) {
        att.sql =
            "INSERT INTO delivery_attempts (event_id, route, url, attempt, started_at, "
            "duration_ms, http_status, outcome, error, worker_id) VALUES " +
            values_clause(att.rows, att_casts);
        out.push_back(std::move(att));
    }

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
    if (!dead.empty()) {
        Statement s;
        s.rows = dead.size();
        s.sql =
            "INSERT INTO dead_letters (event_id, received_at, source, route, reason, "
            "attempts, failed_at) VALUES " +
            values_clause(dead.size(),
                          {"::uuid", "::timestamptz", "", "", "", "::int", "::timestamptz"}) +
            " ON CONFLICT (event_id, route) DO UPDATE SET reason = EXCLUDED.reason, "
            "attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at, "
            "requeued_at = NULL";
        for (const auto& [key, v] : dead) {
            s.add(key.first);
            s.add(format_timestamp_us(v.first->env.received_at_us));
            s.add(sanitize_text(v.first->env.source));
            s.add(sanitize_text(key.second));
            s.add(sanitize_text(v.second->reason));
            s.add(std::to_string(v.second->attempt));
            s.add(format_timestamp_us(v.second->at_us));
        }
        out.push_back(std::move(s));
    }
    if (!flags.empty()) {
        Statement s;
        s.rows = flags.size();
        s.sql = "INSERT INTO route_flags (route, reason, event_id, flagged_at) VALUES " +
                values_clause(flags.size(), {"", "", "::uuid", "::timestamptz"}) +
                " ON CONFLICT (route) DO UPDATE SET reason = EXCLUDED.reason, "
                "event_id = EXCLUDED.event_id, flagged_at = EXCLUDED.flagged_at, cleared_at = NULL";
        for (const auto& [route, v] : flags) {
            s.add(sanitize_text(route));
            s.add(sanitize_text(v.second->reason));
            s.add(v.first->env.request_id.str());
            s.add(format_timestamp_us(v.second->at_us));
        }
        out.push_back(std::move(s));
    }

    if (!transitions.empty()) {
        Statement s;
        s.rows = transitions.size();
        s.sql =
            "INSERT INTO breaker_transitions (at, destination, from_state, to_state, "
            "worker_id, reason) VALUES " +
            values_clause(transitions.size(), {"::timestamptz", "", "", "", "", ""});
        for (const Transition* t : transitions) {
            s.add(format_timestamp_us(t->at_us));
            s.add(sanitize_text(t->destination));
            s.add(t->from);
            s.add(t->to);
            s.add(std::string(worker_id));
            s.add(nullable(sanitize_text(t->reason)));
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace hookq
