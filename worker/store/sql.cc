#include "worker/store/sql.h"

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <tuple>
#include <ctime>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace hookq {

namespace {

constexpr uint32_t kOidBytea = 17, kOidInt8 = 20, kOidText = 25, kOidFloat8 = 701,
                   kOidTimestamptz = 1184, kOidUuid = 2950, kOidJsonb = 3802;
// 2000-01-01 00:00:00 UTC, PostgreSQL's epoch for binary timestamps, in Unix microseconds.
constexpr int64_t kPgEpochUs = 946684800000000;

void put32(std::string& b, uint32_t v) {
    char c[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)};
    b.append(c, 4);
}
void put64(std::string& b, uint64_t v) {
    put32(b, static_cast<uint32_t>(v >> 32));
    put32(b, static_cast<uint32_t>(v));
}
uint32_t get32(std::string_view b, size_t at) {
    auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[at + i])); };
    return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}

// A one-dimensional array in PostgreSQL's binary format (array_recv): a header, then each element
// as a length and its binary value. Sent as one parameter per column, so a statement keeps the
// same text and parameter count whatever the number of rows: it is prepared once per connection,
// and the server parses no timestamp, uuid or number text.
class PgArray {
  public:
    explicit PgArray(uint32_t oid) : oid_(oid) { buf_.resize(kHeader); }
    void null() {
        put32(buf_, 0xFFFFFFFFu);
        has_null_ = true;
        ++n_;
    }
    void raw(std::string_view v) {
        put32(buf_, static_cast<uint32_t>(v.size()));
        buf_.append(v);
        ++n_;
    }
    void text(const std::optional<std::string>& v) { v ? raw(*v) : null(); }
    void i64(int64_t v) {
        put32(buf_, 8);
        put64(buf_, static_cast<uint64_t>(v));
        ++n_;
    }
    void f64(double v) {
        put32(buf_, 8);
        put64(buf_, std::bit_cast<uint64_t>(v));
        ++n_;
    }
    void uuid(const Uuid& u) { raw({reinterpret_cast<const char*>(u.bytes.data()), 16}); }
    void ts(uint64_t unix_us) {
        // Past int64, a value the server refuses as out of range (not INT64_MAX: 'infinity').
        int64_t v = unix_us > static_cast<uint64_t>(INT64_MAX - 1) - kPgEpochUs
                        ? INT64_MAX - 1
                        : static_cast<int64_t>(unix_us) - kPgEpochUs;
        i64(v);
    }
    void ts(const std::optional<uint64_t>& unix_us) { unix_us ? ts(*unix_us) : null(); }
    void jsonb(std::string_view json) {
        put32(buf_, static_cast<uint32_t>(json.size() + 1));
        buf_ += '\1';  // jsonb_recv's version byte, then the text
        buf_.append(json);
        ++n_;
    }
    size_t bytes() const { return buf_.size(); }
    size_t size() const { return n_; }
    std::string finish() {
        std::string h;
        put32(h, 1);  // dimensions
        put32(h, has_null_ ? 1 : 0);
        put32(h, oid_);
        put32(h, static_cast<uint32_t>(n_));
        put32(h, 1);  // lower bound
        std::string out = std::move(buf_);
        out.replace(0, kHeader, h);
        buf_.assign(kHeader, '\0');
        n_ = 0;
        has_null_ = false;
        return out;
    }

  private:
    static constexpr size_t kHeader = 20;
    uint32_t oid_;
    std::string buf_;
    size_t n_ = 0;
    bool has_null_ = false;
};

// Rows of one table, column by column, emitted as statements "... unnest($1::type[], ...) ...":
// one per `max_bytes` of parameters (a statement is one protocol message; the server takes up to
// 1 GB), usually one per batch.
class Rows {
  public:
    Rows(std::vector<Statement>& out, std::string sql, std::initializer_list<uint32_t> oids,
         size_t max_bytes)
        : out_(out), sql_(std::move(sql)), max_bytes_(max_bytes) {
        cols_.reserve(oids.size());
        for (uint32_t o : oids) {
            cols_.emplace_back(o);
        }
    }
    PgArray& operator[](size_t c) { return cols_[c]; }
    void job(const Job* j) { jobs_.push_back(j); }
    void end_row() {
        size_t b = 0;
        for (const auto& c : cols_) {
            b += c.bytes();
        }
        if (b >= max_bytes_) {
            flush();
        }
    }
    void flush() {
        if (cols_.empty() || cols_[0].size() == 0) {
            return;
        }
        Statement s;
        s.sql = sql_;
        s.prepare = true;
        s.rows = cols_[0].size();
        s.jobs = std::move(jobs_);
        jobs_.clear();
        s.params.reserve(cols_.size());
        s.formats.reserve(cols_.size());
        for (auto& c : cols_) {
            s.add(c.finish(), /*binary=*/true);
        }
        out_.push_back(std::move(s));
    }

  private:
    std::vector<Statement>& out_;
    std::string sql_;
    size_t max_bytes_;
    std::vector<PgArray> cols_;
    std::vector<const Job*> jobs_;
};

// "unnest($1::uuid[], $2::timestamptz[], ...)" for these element types.
std::string unnest(std::initializer_list<std::string_view> types) {
    std::string out = "unnest(";
    size_t n = 0;
    for (auto t : types) {
        out += n ? ", $" : "$";
        out += std::to_string(++n);
        out += "::";
        out += t;
        out += "[]";
    }
    out += ')';
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

struct EventRow {
    const Job* job = nullptr;
    bool insert = false;  // some claim of it came from the queue itself: the row may not exist yet
};

struct Summary {
    uint32_t attempts = 0;
    std::optional<uint64_t> delivered_us;
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
        s.delivered_us = delivered_us;
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
                std::string_view worker_id, size_t max_bytes) {
    // The histograms go as text ("[3:5]={2,0,1}", cast per row): unnest would flatten a
    // two-dimensional array. A handful of rows per batch.
    Rows t(out,
           "INSERT INTO " + std::string(table) +
               " AS t (bucket, source, route, worker_id, attempts, delivered, retried, dead, "
               "parked, timeouts, duration_us_sum, duration_hist, e2e_hist) "
               "SELECT b, s, r, w, a, dl, rt, dd, pk, tm, du, dh::bigint[], eh::bigint[] FROM " +
               unnest({"timestamptz", "text", "text", "text", "bigint", "bigint", "bigint",
                       "bigint", "bigint", "bigint", "bigint", "text", "text"}) +
               " AS u (b, s, r, w, a, dl, rt, dd, pk, tm, du, dh, eh)"
               " ON CONFLICT (bucket, source, route, worker_id) DO UPDATE SET "
               "attempts = t.attempts + EXCLUDED.attempts, "
               "delivered = t.delivered + EXCLUDED.delivered, "
               "retried = t.retried + EXCLUDED.retried, dead = t.dead + EXCLUDED.dead, "
               "parked = t.parked + EXCLUDED.parked, timeouts = t.timeouts + EXCLUDED.timeouts, "
               "duration_us_sum = t.duration_us_sum + EXCLUDED.duration_us_sum, "
               "duration_hist = hookq_hist_add(t.duration_hist, EXCLUDED.duration_hist), "
               "e2e_hist = hookq_hist_add(t.e2e_hist, EXCLUDED.e2e_hist)",
           {kOidTimestamptz, kOidText, kOidText, kOidText, kOidInt8, kOidInt8, kOidInt8, kOidInt8,
            kOidInt8, kOidInt8, kOidInt8, kOidText, kOidText},
           max_bytes);
    for (const auto& [key, a] : rows) {
        t[0].ts(std::get<0>(key));
        t[1].raw(std::get<1>(key));
        t[2].raw(std::get<2>(key));
        t[3].raw(worker_id);
        size_t c = 4;
        for (uint64_t n :
             {a.attempts, a.delivered, a.retried, a.dead, a.parked, a.timeouts, a.duration_us}) {
            t[c++].i64(static_cast<int64_t>(n));
        }
        t[11].raw(hist_literal(a.duration));
        t[12].raw(hist_literal(a.e2e));
        t.end_row();
    }
    t.flush();
}

}  // namespace

void stats_rollups(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                   std::string_view worker_id, size_t max_bytes) {
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
    emit_stats(out, "delivery_stats_minute", by_minute, worker_id, max_bytes);
    emit_stats(out, "delivery_stats_hour", by_hour, worker_id, max_bytes);
}

std::vector<Statement> event_inserts(const std::vector<const Job*>& inserts, size_t max_bytes) {
    std::vector<Statement> out;
    Rows t(out,
           "INSERT INTO webhook_events (id, received_at, source, dedup_key, event_type, method, "
           "path, remote_addr, headers, body, status, attempts, delivered_at, last_error) "
           "SELECT * FROM " +
               unnest({"uuid", "timestamptz", "text", "text", "text", "text", "text", "text",
                       "jsonb", "bytea", "text", "bigint", "timestamptz", "text"}) +
               " ON CONFLICT (received_at, id) DO UPDATE SET status = EXCLUDED.status, "
               "event_type = COALESCE(EXCLUDED.event_type, webhook_events.event_type), "
               "attempts = GREATEST(webhook_events.attempts, EXCLUDED.attempts), "
               "delivered_at = COALESCE(EXCLUDED.delivered_at, webhook_events.delivered_at), "
               "last_error = COALESCE(EXCLUDED.last_error, webhook_events.last_error), "
               "updated_at = now()",
           {kOidUuid, kOidTimestamptz, kOidText, kOidText, kOidText, kOidText, kOidText, kOidText,
            kOidJsonb, kOidBytea, kOidText, kOidInt8, kOidTimestamptz, kOidText},
           max_bytes);
    for (const Job* j : inserts) {
        const EnvelopeView& e = j->env;
        Summary sum = summary(*j);
        t[0].uuid(e.request_id);
        t[1].ts(e.received_at_us);
        t[2].raw(sanitize_text(e.source));
        t[3].raw(sanitize_text(e.dedup_key));
        t[4].text(nullable(sanitize_text(j->event_type)));
        t[5].raw(sanitize_text(e.method));
        t[6].raw(sanitize_text(e.target));
        t[7].text(nullable(sanitize_text(e.remote_addr)));
        t[8].jsonb(headers_json(e));
        t[9].raw(e.body);
        t[10].raw(event_status(*j));
        t[11].i64(sum.attempts);
        t[12].ts(sum.delivered_us);
        t[13].text(sum.last_error);
        t.end_row();
    }
    t.flush();
    return out;
}

namespace {

// A route's last outcome in this batch, and the job that carries it.
using OutcomeOf = std::pair<const Job*, const RouteOutcome*>;

// The webhook_events rows of this batch, one per webhook, in the order they are locked.
std::vector<EventRow> event_rows(const std::vector<const Job*>& jobs) {
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
    // The statements of event_writes() lock each webhook's row until COMMIT, before its route
    // rows are written: two workers finishing different routes of one webhook at once are
    // serialized, so the second one's status derivation sees the first one's route row. Locking
    // in id order keeps two batches from deadlocking on each other.
    std::sort(events.begin(), events.end(), [](const EventRow& a, const EventRow& b) {
        return a.job->env.request_id.bytes < b.job->env.request_id.bytes;
    });
    return events;
}

void event_writes(std::vector<Statement>& out, const std::vector<EventRow>& events,
                  size_t max_bytes) {
    // The body and headers are written once, by the first claim; a claim from a retry record
    // updates only the small columns, so a webhook retried for days is not sent again each time.
    // Should its row be missing (a forged or very old retry record), the recorder inserts it
    // from event_inserts(), told by the UPDATE's RETURNING which ones exist.
    std::vector<const Job*> inserts, updates;
    for (const EventRow& e : events) {
        (e.insert ? inserts : updates).push_back(e.job);
    }
    for (auto& st : event_inserts(inserts, max_bytes)) {
        out.push_back(std::move(st));
    }
    Rows up(out,
            "UPDATE webhook_events AS e SET status = v.status, "
            "event_type = COALESCE(v.event_type, e.event_type), "
            "attempts = GREATEST(e.attempts, v.attempts), "
            "delivered_at = COALESCE(v.delivered_at, e.delivered_at), "
            "last_error = COALESCE(v.last_error, e.last_error), updated_at = now() FROM " +
                unnest({"uuid", "timestamptz", "text", "text", "bigint", "timestamptz", "text"}) +
                " AS v (id, received_at, event_type, status, attempts, delivered_at, last_error) "
                "WHERE e.received_at = v.received_at AND e.id = v.id RETURNING e.id::text",
            {kOidUuid, kOidTimestamptz, kOidText, kOidText, kOidInt8, kOidTimestamptz, kOidText},
            max_bytes);
    for (const Job* j : updates) {
        up.job(j);
        Summary sum = summary(*j);
        up[0].uuid(j->env.request_id);
        up[1].ts(j->env.received_at_us);
        up[2].text(nullable(sanitize_text(j->event_type)));
        up[3].raw(event_status(*j));
        up[4].i64(sum.attempts);
        up[5].ts(sum.delivered_us);
        up[6].text(sum.last_error);
        up.end_row();
    }
    up.flush();
}

void route_upserts(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                   size_t max_bytes) {
    // Per-route state, last one winning per (webhook, route) for the same reason as in
    // event_rows(); then the webhook's status is derived from all its routes, so that
    // "delivered" means every route delivered, whichever claim wrote last.
    std::map<std::pair<std::string, std::string>, OutcomeOf> route_rows;
    for (const Job* j : jobs) {
        if (!j->decoded || writes_nothing(*j)) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            route_rows[{j->env.request_id.str(), o.route}] = {j, &o};
        }
    }
    Rows routes(
        out,
        "INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error) "
        "SELECT * FROM " +
            unnest({"uuid", "timestamptz", "text", "text", "bigint", "text"}) +
            // Delivered is final for a route: the application has it (so are split and
            // coalesced: their events went out in other deliveries). A later outcome for the
            // same route comes from a second copy (a reaped or retried element finishing after
            // the first) and must not turn the row back into "retrying" or "dead".
            " ON CONFLICT (received_at, event_id, route) DO UPDATE SET status = CASE "
            "WHEN webhook_routes.status IN ('delivered', 'split', 'coalesced') "
            "THEN webhook_routes.status ELSE EXCLUDED.status END, "
            "attempts = GREATEST(webhook_routes.attempts, EXCLUDED.attempts), "
            "last_error = COALESCE(EXCLUDED.last_error, webhook_routes.last_error), "
            "updated_at = now()",
        {kOidUuid, kOidTimestamptz, kOidText, kOidText, kOidInt8, kOidText}, max_bytes);
    for (const auto& [key, v] : route_rows) {
        const auto& [j, o] = v;
        routes[0].uuid(j->env.request_id);
        routes[1].ts(j->env.received_at_us);
        routes[2].raw(sanitize_text(o->route));
        routes[3].raw(route_status(o->kind));
        routes[4].i64(o->attempt);
        routes[5].text(o->kind == OutcomeKind::delivered ? std::nullopt
                                                         : nullable(sanitize_text(o->reason)));
        routes.end_row();
    }
    routes.flush();
}

struct MergedRow {
    Uuid id;
    uint64_t received_us;
    const std::string* route;
    std::string into;
};

// Updates coalesced into a delivery that is done (ordering.h): their route is done too, by that
// delivery, which their row names.
std::vector<MergedRow> merged_rows(const std::vector<const Job*>& jobs) {
    // Two claims of one holder in a batch (the original and a reaped copy, each let on again by
    // ordering's enter step) carry the same merged list. ON CONFLICT DO UPDATE may not touch a
    // row twice in one statement (SQLSTATE 21000, which the recorder retries as is, forever), so
    // keep the last, keyed by what the row's key is written as.
    std::vector<MergedRow> merged;
    std::map<std::tuple<uint64_t, std::string, std::string>, size_t> seen;
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
                auto id = Uuid::parse(h.merged[i].id);
                if (!id) {
                    continue;
                }
                MergedRow m{*id, h.merged[i].received_us, &h.route, j->env.request_id.str()};
                auto [it, fresh] = seen.emplace(
                    std::tuple{m.received_us, id->str(), sanitize_text(h.route)}, merged.size());
                if (fresh) {
                    merged.push_back(std::move(m));
                } else {
                    merged[it->second] = std::move(m);
                }
            }
        }
    }
    return merged;
}

// A statement of their own, after route_upserts(): an update's own "waiting" claim may be in this
// same batch, and one INSERT ... ON CONFLICT cannot touch a row twice.
void coalesced_routes(std::vector<Statement>& out, const std::vector<MergedRow>& merged,
                      size_t max_bytes) {
    Rows coalesced(
        out,
        "INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error) "
        "SELECT * FROM " +
            unnest({"uuid", "timestamptz", "text", "text", "bigint", "text"}) +
            " ON CONFLICT (received_at, event_id, route) DO UPDATE SET status = CASE "
            "WHEN webhook_routes.status = 'delivered' THEN 'delivered' ELSE EXCLUDED.status END, "
            "last_error = EXCLUDED.last_error, updated_at = now()",
        {kOidUuid, kOidTimestamptz, kOidText, kOidText, kOidInt8, kOidText}, max_bytes);
    for (const MergedRow& m : merged) {
        coalesced[0].uuid(m.id);
        coalesced[1].ts(m.received_us);
        coalesced[2].raw(sanitize_text(*m.route));
        coalesced[3].raw(route_status(OutcomeKind::coalesced));
        coalesced[4].i64(0);
        coalesced[5].raw("merged into " + m.into);
        coalesced.end_row();
    }
    coalesced.flush();
}

// The status written is each webhook's routes' taken together (webhook_routes, this batch's rows
// included), not this claim's: only then does "delivered" mean every route delivered.
void derive_status(std::vector<Statement>& out, const std::vector<EventRow>& events,
                   const std::vector<MergedRow>& merged) {
    if (events.empty() && merged.empty()) {
        return;
    }
    PgArray times(kOidTimestamptz), ids(kOidUuid);
    for (const EventRow& e : events) {
        times.ts(e.job->env.received_at_us);
        ids.uuid(e.job->env.request_id);
    }
    for (const MergedRow& m : merged) {
        times.ts(m.received_us);
        ids.uuid(m.id);
    }
    Statement s;
    s.rows = events.size() + merged.size();
    s.prepare = true;
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
    s.add(times.finish(), /*binary=*/true);
    s.add(ids.finish(), /*binary=*/true);
    out.push_back(std::move(s));
}

void attempt_rows(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                  std::string_view worker_id, size_t max_bytes) {
    Rows at(out,
            "INSERT INTO delivery_attempts (event_id, route, url, attempt, started_at, "
            "duration_ms, http_status, outcome, error, worker_id) SELECT * FROM " +
                unnest({"uuid", "text", "text", "bigint", "timestamptz", "double precision",
                        "bigint", "text", "text", "text"}),
            {kOidUuid, kOidText, kOidText, kOidInt8, kOidTimestamptz, kOidFloat8, kOidInt8,
             kOidText, kOidText, kOidText},
            max_bytes);
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const AttemptRow& a : j->attempts) {
            at[0].uuid(j->env.request_id);
            at[1].raw(sanitize_text(a.route));
            at[2].raw(sanitize_text(a.url));
            at[3].i64(a.attempt);
            at[4].ts(a.started_us);
            // Whole microseconds, as the text "%.3f" of milliseconds was.
            at[5].f64(static_cast<double>(a.duration_us) / 1000.0);
            a.http_status ? at[6].i64(a.http_status) : at[6].null();
            at[7].raw(to_string(a.outcome));
            at[8].text(nullable(sanitize_text(a.error)));
            at[9].raw(worker_id);
            at.end_row();
        }
    }
    at.flush();
}

void dead_letter_rows(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                      size_t max_bytes) {
    // Last one winning per (webhook, route) for the same reason as in event_rows().
    std::map<std::pair<std::string, std::string>, OutcomeOf> dead;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            if (o.kind == OutcomeKind::dead) {
                dead[{j->env.request_id.str(), o.route}] = {j, &o};
            }
        }
    }
    Rows dls(out,
             "INSERT INTO dead_letters (event_id, received_at, source, route, reason, attempts, "
             "failed_at) SELECT * FROM " +
                 unnest({"uuid", "timestamptz", "text", "text", "text", "bigint", "timestamptz"}) +
                 " ON CONFLICT (event_id, route) DO UPDATE SET reason = EXCLUDED.reason, "
                 "attempts = EXCLUDED.attempts, failed_at = EXCLUDED.failed_at, "
                 "requeued_at = NULL",
             {kOidUuid, kOidTimestamptz, kOidText, kOidText, kOidText, kOidInt8, kOidTimestamptz},
             max_bytes);
    for (const auto& [key, v] : dead) {
        dls[0].uuid(v.first->env.request_id);
        dls[1].ts(v.first->env.received_at_us);
        dls[2].raw(sanitize_text(v.first->env.source));
        dls[3].raw(sanitize_text(key.second));
        dls[4].raw(sanitize_text(v.second->reason));
        dls[5].i64(v.second->attempt);
        dls[6].ts(v.second->at_us);
        dls.end_row();
    }
    dls.flush();
}

void route_flag_rows(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                     size_t max_bytes) {
    // Last one winning per route for the same reason as in event_rows().
    std::map<std::string, OutcomeOf> flags;
    for (const Job* j : jobs) {
        if (!j->decoded) {
            continue;
        }
        for (const auto& o : j->outcomes) {
            if (o.flag_route) {
                flags[o.route] = {j, &o};
            }
        }
    }
    Rows fl(out,
            "INSERT INTO route_flags (route, reason, event_id, flagged_at) SELECT * FROM " +
                unnest({"text", "text", "uuid", "timestamptz"}) +
                " ON CONFLICT (route) DO UPDATE SET reason = EXCLUDED.reason, "
                "event_id = EXCLUDED.event_id, flagged_at = EXCLUDED.flagged_at, "
                "cleared_at = NULL",
            {kOidText, kOidText, kOidUuid, kOidTimestamptz}, max_bytes);
    for (const auto& [route, v] : flags) {
        fl[0].raw(sanitize_text(route));
        fl[1].raw(sanitize_text(v.second->reason));
        fl[2].uuid(v.first->env.request_id);
        fl[3].ts(v.second->at_us);
        fl.end_row();
    }
    fl.flush();
}

void breaker_transition_rows(std::vector<Statement>& out,
                             const std::vector<const Transition*>& transitions,
                             std::string_view worker_id, size_t max_bytes) {
    Rows tr(out,
            "INSERT INTO breaker_transitions (at, destination, from_state, to_state, worker_id, "
            "reason) SELECT * FROM " +
                unnest({"timestamptz", "text", "text", "text", "text", "text"}),
            {kOidTimestamptz, kOidText, kOidText, kOidText, kOidText, kOidText}, max_bytes);
    for (const Transition* t : transitions) {
        tr[0].ts(t->at_us);
        tr[1].raw(sanitize_text(t->destination));
        tr[2].raw(t->from);
        tr[3].raw(t->to);
        tr[4].raw(worker_id);
        tr[5].text(nullable(sanitize_text(t->reason)));
        tr.end_row();
    }
    tr.flush();
}

}  // namespace

std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id, size_t max_bytes) {
    // One transaction, statements in this order. The webhook_events rows come first and in id
    // order: they lock each webhook (serializing workers that finish routes of the same one)
    // without two batches deadlocking. Each INSERT ... ON CONFLICT touches a row at most once, so
    // a table whose rows can repeat within the batch gets a statement of its own. The status
    // derivation follows every webhook_routes write; the rollups, this worker's own rows, come
    // last, locked for the shortest time.
    std::vector<Statement> out;
    const std::vector<EventRow> events = event_rows(jobs);
    const std::vector<MergedRow> merged = merged_rows(jobs);
    event_writes(out, events, max_bytes);                             // 1. webhook_events
    route_upserts(out, jobs, max_bytes);                              // 2. webhook_routes
    coalesced_routes(out, merged, max_bytes);                         // 3. webhook_routes again
    derive_status(out, events, merged);                               // 4. webhook_events.status
    attempt_rows(out, jobs, worker_id, max_bytes);                    // 5. delivery_attempts
    dead_letter_rows(out, jobs, max_bytes);                           // 6. dead_letters
    route_flag_rows(out, jobs, max_bytes);                            // 7. route_flags
    breaker_transition_rows(out, transitions, worker_id, max_bytes);  // 8. breaker_transitions
    stats_rollups(out, jobs, worker_id, max_bytes);                   // 9. delivery_stats_*
    return out;
}

std::vector<std::optional<std::string>> array_elements(std::string_view a) {
    auto need = [&](size_t at, size_t n) {
        if (at + n > a.size()) {
            throw std::runtime_error("binary array: truncated");
        }
    };
    need(0, 12);
    uint32_t ndim = get32(a, 0), oid = get32(a, 8);
    std::vector<std::optional<std::string>> out;
    if (ndim == 0) {
        return out;
    }
    if (ndim != 1) {
        throw std::runtime_error("binary array: not one-dimensional");
    }
    need(12, 8);
    uint32_t n = get32(a, 12);
    size_t at = 20;
    for (uint32_t i = 0; i < n; ++i) {
        need(at, 4);
        uint32_t len = get32(a, at);
        at += 4;
        if (len == 0xFFFFFFFFu) {
            out.emplace_back(std::nullopt);
            continue;
        }
        need(at, len);
        std::string_view v = a.substr(at, len);
        at += len;
        auto i64 = [&] {
            if (len != 8) {
                throw std::runtime_error("binary array: bad 8-byte element");
            }
            return static_cast<int64_t>(static_cast<uint64_t>(get32(v, 0)) << 32 | get32(v, 4));
        };
        switch (oid) {
            case kOidUuid: {
                Uuid u;
                if (len != 16) {
                    throw std::runtime_error("binary array: bad uuid");
                }
                std::copy(v.begin(), v.end(), reinterpret_cast<char*>(u.bytes.data()));
                out.emplace_back(u.str());
                break;
            }
            case kOidTimestamptz:
                out.emplace_back(format_timestamp_us(static_cast<uint64_t>(i64() + kPgEpochUs)));
                break;
            case kOidInt8:
                out.emplace_back(std::to_string(i64()));
                break;
            case kOidFloat8:
                out.emplace_back(fmt::format("{}", std::bit_cast<double>(i64())));
                break;
            case kOidJsonb:
                out.emplace_back(std::string(v.substr(std::min<size_t>(1, v.size()))));
                break;
            default:
                out.emplace_back(std::string(v));
        }
    }
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
    s.prepare = true;
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
