#include "worker/ops/events.h"

#include <algorithm>
#include <ctime>

#include "shared/crypto.h"
#include "shared/uuid.h"
#include "worker/cli/common.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr const char* kCursorVersion = "v1.";
constexpr size_t kMaxCursor = 128;
constexpr size_t kMaxFilter = 512;  // longer than any source, route, type or dedup key in use

// Microsecond timestamps in and out of SQL, exact both ways (a double would round).
constexpr const char* kUsToTs = "('epoch'::timestamptz + %s::bigint * interval '1 microsecond')";
std::string us_to_ts(const std::string& param) {
    char buf[96];
    std::snprintf(buf, sizeof buf, kUsToTs, param.c_str());
    return buf;
}
std::string fmt_ts(const std::string& col) {
    return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

Json str_or_null(const PgResult& r, int row, int col) {
    return is_null(r, row, col) ? Json() : Json(cell(r, row, col));
}

bool digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int num(std::string_view s, size_t pos, size_t n) {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

std::string base64url(std::string_view raw) {
    std::string b =
        crypto::base64_encode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
    while (!b.empty() && b.back() == '=') {
        b.pop_back();
    }
    std::replace(b.begin(), b.end(), '+', '-');
    std::replace(b.begin(), b.end(), '/', '_');
    return b;
}

std::optional<std::string> unbase64url(std::string s) {
    if (s.find_first_of("+/=") != std::string::npos) {
        return std::nullopt;
    }
    std::replace(s.begin(), s.end(), '-', '+');
    std::replace(s.begin(), s.end(), '_', '/');
    if (s.size() % 4 == 1) {
        return std::nullopt;
    }
    while (s.size() % 4) {
        s += '=';
    }
    return crypto::base64_decode(s);
}

const char* const kStatuses[] = {"queued", "delivered", "retrying", "parked", "dead"};

}  // namespace

Json body_json(std::string_view body) {
    Json j;
    if (valid_utf8(body)) {
        j["body"] = std::string(body);
        j["body_encoding"] = "utf-8";
    } else {
        j["body"] =
            crypto::base64_encode(reinterpret_cast<const unsigned char*>(body.data()), body.size());
        j["body_encoding"] = "base64";
    }
    return j;
}

bool valid_utf8(std::string_view s) {
    size_t i = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    while (i < s.size()) {
        unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;  // truncated sequence
        }
        for (size_t k = 1; k <= n; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

std::string encode_cursor(const EventCursor& c) {
    return base64url(kCursorVersion + std::to_string(c.received_at_us) + "." + c.id);
}

EventCursor decode_cursor(const std::string& text) {
    const Error bad(Error::bad_request,
                    "cursor must be the next_cursor of a previous page, unchanged");
    if (text.empty() || text.size() > kMaxCursor) {
        throw bad;
    }
    auto raw = unbase64url(text);
    if (!raw || !raw->starts_with(kCursorVersion)) {
        throw bad;
    }
    std::string_view rest =
        std::string_view(*raw).substr(std::char_traits<char>::length(kCursorVersion));
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot > 18 || !digits(rest.substr(0, dot))) {
        throw bad;
    }
    auto id = Uuid::parse(rest.substr(dot + 1));
    if (!id || id->str() != rest.substr(dot + 1)) {
        throw bad;
    }
    EventCursor c{std::stoll(std::string(rest.substr(0, dot))), id->str()};
    // Only the one spelling encode_cursor gives: no leading zeros, no stray low bits.
    if (encode_cursor(c) != text) {
        throw bad;
    }
    return c;
}

std::optional<int64_t> parse_time(const std::string& t) {
    // YYYY-MM-DD[(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM)]
    auto at = [&](size_t i, char c) { return i < t.size() && t[i] == c; };
    auto dig = [&](size_t i, size_t n) {
        return i + n <= t.size() && digits(std::string_view(t).substr(i, n));
    };
    if (!dig(0, 4) || !at(4, '-') || !dig(5, 2) || !at(7, '-') || !dig(8, 2)) {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_year = num(t, 0, 4) - 1900;
    tm.tm_mon = num(t, 5, 2) - 1;
    tm.tm_mday = num(t, 8, 2);
    int64_t frac_us = 0;
    int64_t offset_s = 0;
    if (t.size() > 10) {
        if (!(at(10, 'T') || at(10, 't') || at(10, ' ')) || !dig(11, 2) || !at(13, ':') ||
            !dig(14, 2) || !at(16, ':') || !dig(17, 2)) {
            return std::nullopt;
        }
        tm.tm_hour = num(t, 11, 2);
        tm.tm_min = num(t, 14, 2);
        tm.tm_sec = num(t, 17, 2);
        size_t i = 19;
        if (at(i, '.')) {
            size_t j = ++i;
            while (j < t.size() && t[j] >= '0' && t[j] <= '9') {
                ++j;
            }
            if (j == i || j - i > 9) {
                return std::nullopt;
            }
            std::string f = t.substr(i, std::min<size_t>(j - i, 6));
            f.resize(6, '0');
            frac_us = std::stoll(f);
            i = j;
        }
        if (at(i, 'Z') || at(i, 'z')) {
            ++i;
        } else if ((at(i, '+') || at(i, '-')) && dig(i + 1, 2) && at(i + 3, ':') && dig(i + 4, 2)) {
            int h = num(t, i + 1, 2), m = num(t, i + 4, 2);
            if (h > 23 || m > 59) {
                return std::nullopt;
            }
            offset_s = (t[i] == '+' ? 1 : -1) * (h * 3600 + m * 60);
            i += 6;
        } else {
            return std::nullopt;
        }
        if (i != t.size()) {
            return std::nullopt;
        }
    }
    std::tm check = tm;
    time_t s = timegm(&check);
    // timegm normalises 2026-02-31 into March: a date that moved was not a date.
    if (check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 59 || tm.tm_year < 70) {
        return std::nullopt;
    }
    return (static_cast<int64_t>(s) - offset_s) * 1000000 + frac_us;
}

EventQuery parse_event_query(const std::map<std::string, std::string>& args) {
    EventQuery q;
    static const char* const known =
        "source, route, status, event_type, from, to, request_id, dedup_key, cursor, limit";
    for (const auto& arg : args) {
        const std::string& k = arg.first;
        const std::string& v = arg.second;
        // (clang 14 cannot capture a structured binding, hence the references)
        auto bad = [&](const std::string& why) { throw Error(Error::bad_request, k + ": " + why); };
        if (v.size() > kMaxFilter) {
            bad("longer than " + std::to_string(kMaxFilter) + " characters");
        }
        if (k == "source") {
            q.source = v;
        } else if (k == "route") {
            q.route = v;
        } else if (k == "event_type") {
            q.event_type = v;
        } else if (k == "dedup_key") {
            q.dedup_key = v;
        } else if (k == "status") {
            if (std::find(std::begin(kStatuses), std::end(kStatuses), v) == std::end(kStatuses)) {
                bad("must be one of queued, delivered, retrying, parked, dead; not \"" + v + "\"");
            }
            q.status = v;
        } else if (k == "request_id") {
            auto id = Uuid::parse(v);
            if (!id) {
                bad("must be a request id (a UUID), not \"" + v + "\"");
            }
            q.request_id = id->str();
        } else if (k == "from" || k == "to") {
            auto us = parse_time(v);
            if (!us) {
                bad("must be an RFC 3339 time (2026-11-30T12:00:00Z) or a date (2026-11-30), not "
                    "\"" +
                    v + "\"");
            }
            (k == "from" ? q.from_us : q.to_us) = us;
        } else if (k == "cursor") {
            if (!v.empty()) {
                q.cursor = decode_cursor(v);
            }
        } else if (k == "limit") {
            if (!digits(v) || v.size() > 6 || std::stoi(v) < 1 || std::stoi(v) > kMaxEventPage) {
                bad("must be a number from 1 to " + std::to_string(kMaxEventPage) + ", not \"" + v +
                    "\"");
            }
            q.limit = std::stoi(v);
        } else {
            throw Error(Error::bad_request,
                        "unknown parameter '" + k + "' (" + std::string(known) + ")");
        }
    }
    if (q.from_us && q.to_us && *q.from_us >= *q.to_us) {
        throw Error(Error::bad_request, "from must be before to");
    }
    return q;
}

Json list_events(Pg& pg, const EventQuery& q, const Scope& scope) {
    if (q.limit < 1 || q.limit > kMaxEventPage) {
        throw Error(Error::bad_request,
                    "limit: must be a number from 1 to " + std::to_string(kMaxEventPage));
    }
    // Only the filters given reach the SQL, so each plan is the one its filters deserve: the
    // primary key (received_at, id) walked backwards from the cursor, or (source, received_at).
    std::vector<std::optional<std::string>> params;
    std::string where;
    auto param = [&](std::string v) {
        params.emplace_back(std::move(v));
        return "$" + std::to_string(params.size());
    };
    auto cond = [&](const std::string& c) { where += (where.empty() ? " WHERE " : " AND ") + c; };
    if (!q.source.empty()) {
        cond("e.source = " + param(q.source));
    }
    if (auto arr = scope.sql_array()) {
        cond("e.source = ANY(" + param(*arr) + "::text[])");
    }
    if (!q.route.empty()) {
        // With a route, the status is that route's: "dead for route X" while another route of the
        // same webhook delivered is what an operator looking at one route asks.
        std::string route_status;
        if (!q.status.empty()) {
            route_status = " AND r.status = " + param(q.status);
        }
        cond(
            "EXISTS (SELECT 1 FROM webhook_routes r WHERE r.received_at = e.received_at "
            "AND r.event_id = e.id AND r.route = " +
            param(q.route) + route_status + ")");
    } else if (!q.status.empty()) {
        cond("e.status = " + param(q.status));
    }
    if (!q.event_type.empty()) {
        cond("e.event_type = " + param(q.event_type));
    }
    if (!q.request_id.empty()) {
        cond("e.id = " + param(q.request_id) + "::uuid");
    }
    if (!q.dedup_key.empty()) {
        cond("e.dedup_key = " + param(q.dedup_key));
    }
    if (q.from_us) {
        cond("e.received_at >= " + us_to_ts(param(std::to_string(*q.from_us))));
    }
    if (q.to_us) {
        cond("e.received_at < " + us_to_ts(param(std::to_string(*q.to_us))));
    }
    if (q.cursor) {
        std::string ts = us_to_ts(param(std::to_string(q.cursor->received_at_us)));
        // The plain bound lets the planner prune partitions and bound the index scan; the row
        // comparison breaks ties between webhooks received in the same microsecond.
        cond("e.received_at <= " + ts + " AND (e.received_at, e.id) < (" + ts + ", " +
             param(q.cursor->id) + "::uuid)");
    }
    // One more than asked: whether there is a next page, without a count over the table.
    std::string sql =
        "SELECT e.id, (extract(epoch FROM e.received_at) * 1000000)::bigint, " +
        fmt_ts("e.received_at") +
        ", e.source, e.event_type, e.dedup_key, e.method, e.path, e.status, e.attempts, " +
        fmt_ts("e.delivered_at") + ", e.last_error, octet_length(e.body) FROM webhook_events e" +
        where + " ORDER BY e.received_at DESC, e.id DESC LIMIT " +
        param(std::to_string(q.limit + 1));
    auto r = must_query(pg, sql, params);
    Json items = Json::array();
    int n = PQntuples(r.get());
    for (int i = 0; i < std::min(n, q.limit); ++i) {
        Json item;
        item["id"] = cell(r, i, 0);
        item["received_at"] = cell(r, i, 2);
        item["source"] = cell(r, i, 3);
        item["event_type"] = str_or_null(r, i, 4);
        item["dedup_key"] = cell(r, i, 5);
        item["method"] = cell(r, i, 6);
        item["path"] = cell(r, i, 7);
        item["status"] = cell(r, i, 8);
        item["attempts"] = std::stoi(cell(r, i, 9));
        item["delivered_at"] = str_or_null(r, i, 10);
        item["last_error"] = str_or_null(r, i, 11);
        item["body_size"] = std::stoll(cell(r, i, 12));
        items.push_back(std::move(item));
    }
    Json page;
    page["items"] = std::move(items);
    page["next_cursor"] =
        n > q.limit
            ? Json(encode_cursor({std::stoll(cell(r, q.limit - 1, 1)), cell(r, q.limit - 1, 0)}))
            : Json();
    return page;
}

Json get_event(Pg& pg, const std::string& id_text, const Scope& scope) {
    auto id = Uuid::parse(id_text);
    if (!id) {
        throw Error(
            Error::bad_request,
            "event ids are request ids (UUIDs, see `hookqctl events`), not \"" + id_text + "\"");
    }
    const std::string rid = id->str();
    auto r = must_query(
        pg,
        "SELECT e.id, " + fmt_ts("e.received_at") +
            ", e.source, e.dedup_key, e.event_type, e.method, e.path, e.remote_addr, e.status, "
            "e.attempts, " +
            fmt_ts("e.delivered_at") + ", e.last_error, " + fmt_ts("e.updated_at") +
            ", e.headers::text, encode(e.body, 'hex'), "
            "(extract(epoch FROM e.received_at) * 1000000)::bigint "
            "FROM webhook_events e WHERE e.id = $1::uuid "
            "AND ($2::text[] IS NULL OR e.source = ANY($2::text[])) LIMIT 1",
        {rid, scope.sql_array()});
    if (PQntuples(r.get()) == 0) {
        // Outside the scope reads the same as absent: a scoped token learns nothing of others.
        throw Error(Error::not_found, "no event " + rid);
    }
    Json j;
    j["id"] = cell(r, 0, 0);
    j["received_at"] = cell(r, 0, 1);
    j["source"] = cell(r, 0, 2);
    j["dedup_key"] = cell(r, 0, 3);
    j["event_type"] = str_or_null(r, 0, 4);
    j["method"] = cell(r, 0, 5);
    j["path"] = cell(r, 0, 6);
    j["remote_addr"] = str_or_null(r, 0, 7);
    j["status"] = cell(r, 0, 8);
    j["attempts"] = std::stoi(cell(r, 0, 9));
    j["delivered_at"] = str_or_null(r, 0, 10);
    j["last_error"] = str_or_null(r, 0, 11);
    j["updated_at"] = cell(r, 0, 12);
    j["headers"] = Json::parse(cell(r, 0, 13));
    auto body = crypto::hex_decode(cell(r, 0, 14)).value_or("");
    j["body_size"] = body.size();
    Json b = body_json(body);
    j["body_encoding"] = b["body_encoding"];
    j["body"] = std::move(b["body"]);
    const std::string us = cell(r, 0, 15);

    auto routes = must_query(pg,
                             "SELECT route, status, attempts, last_error, " + fmt_ts("updated_at") +
                                 " FROM webhook_routes WHERE received_at = " + us_to_ts("$1") +
                                 " AND event_id = $2::uuid ORDER BY route",
                             {us, rid});
    Json rj = Json::array();
    for (int i = 0; i < PQntuples(routes.get()); ++i) {
        Json o;
        o["route"] = cell(routes, i, 0);
        o["status"] = cell(routes, i, 1);
        o["attempts"] = std::stoi(cell(routes, i, 2));
        o["last_error"] = str_or_null(routes, i, 3);
        o["updated_at"] = cell(routes, i, 4);
        rj.push_back(std::move(o));
    }
    j["routes"] = std::move(rj);

    // No attempt starts before its webhook arrived: the bound prunes older partitions.
    auto a = must_query(pg,
                        "SELECT route, attempt, " + fmt_ts("started_at") +
                            ", round(duration_ms::numeric, 1), http_status, outcome, error, url, "
                            "worker_id FROM delivery_attempts WHERE event_id = $1::uuid "
                            "AND started_at >= " +
                            us_to_ts("$2") + " ORDER BY started_at, attempt",
                        {rid, us});
    Json attempts = Json::array();
    for (int i = 0; i < PQntuples(a.get()); ++i) {
        Json at;
        at["route"] = cell(a, i, 0);
        at["attempt"] = std::stoi(cell(a, i, 1));
        at["started_at"] = cell(a, i, 2);
        at["duration_ms"] = std::stod(cell(a, i, 3));
        at["http_status"] = is_null(a, i, 4) ? Json() : Json(std::stoi(cell(a, i, 4)));
        at["outcome"] = cell(a, i, 5);
        at["error"] = str_or_null(a, i, 6);
        at["url"] = cell(a, i, 7);
        at["worker_id"] = str_or_null(a, i, 8);
        attempts.push_back(std::move(at));
    }
    j["attempts"] = std::move(attempts);

    auto d = must_query(pg,
                        "SELECT id, route, reason, attempts, " + fmt_ts("failed_at") + ", " +
                            fmt_ts("requeued_at") +
                            " FROM dead_letters WHERE event_id = $1::uuid ORDER BY id",
                        {rid});
    Json dl = Json::array();
    for (int i = 0; i < PQntuples(d.get()); ++i) {
        Json o;
        o["id"] = std::stoll(cell(d, i, 0));
        o["route"] = cell(d, i, 1);
        o["reason"] = cell(d, i, 2);
        o["attempts"] = std::stoi(cell(d, i, 3));
        o["failed_at"] = cell(d, i, 4);
        o["requeued_at"] = str_or_null(d, i, 5);
        dl.push_back(std::move(o));
    }
    j["dead_letters"] = std::move(dl);
    return j;
}

}  // namespace hookq::ops
