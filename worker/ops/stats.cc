#include "worker/ops/stats.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <tuple>

#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr uint64_t kMinuteUs = 60ULL * 1000000, kHourUs = 3600ULL * 1000000;

Json ms_or_null(const std::optional<double>& v) {
    if (!v) {
        return nullptr;
    }
    return std::round(*v * 1000.0) / 1000.0;
}

Json ratio(uint64_t n, uint64_t d) {
    if (d == 0) {
        return nullptr;
    }
    return static_cast<double>(n) / static_cast<double>(d);
}

using Hist = std::array<uint64_t, kStatsBuckets>;

struct Counts {
    uint64_t count = 0, delivered = 0, retried = 0, dead = 0, parked = 0, timeouts = 0;
    Hist duration{}, e2e{};
};

struct Point {
    uint64_t count = 0, delivered = 0;
    Hist duration{};
};

struct Group {
    Counts total;
    std::map<int64_t, Point> series;  // by bucket start (unix seconds)
};

// Parses a bigint[] text, "{1,2}" or "[26:27]={1,2}" (subscript = bucket + 1), into `out`
// (zeroed elsewhere). The hot loop of a 7-day query (thousands of rows): no allocation.
bool parse_hist(std::string_view s, Hist& out) {
    out.fill(0);
    size_t n = 0;  // the bucket of the next element
    if (s.starts_with('[')) {
        size_t lower = 0;
        auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), lower);
        if (ec != std::errc() || lower < 1 || *p != ':') {
            return false;
        }
        size_t eq = s.find("]=");
        if (eq == std::string_view::npos) {
            return false;
        }
        n = lower - 1;
        s.remove_prefix(eq + 2);
    }
    if (s.size() < 2 || s.front() != '{' || s.back() != '}') {
        return false;
    }
    const char* p = s.data() + 1;
    const char* end = s.data() + s.size() - 1;
    while (p < end) {
        if (n >= kStatsBuckets) {
            return false;
        }
        auto [next, ec] = std::from_chars(p, end, out[n++]);
        if (ec != std::errc()) {
            return false;
        }
        p = next;
        if (p < end && *p++ != ',') {
            return false;
        }
    }
    return true;
}

void add(Hist& to, const Hist& h) {
    for (size_t i = 0; i < kStatsBuckets; ++i) {
        to[i] += h[i];
    }
}

uint64_t u64(PGresult* r, int row, int col) {
    uint64_t v = 0;
    const char* s = PQgetvalue(r, row, col);
    std::from_chars(s, s + PQgetlength(r, row, col), v);
    return v;
}

}  // namespace

bool add_histogram(Histogram& h, std::string_view s) {
    Hist parsed;
    if (!parse_hist(s, parsed)) {
        return false;
    }
    h.resize(kStatsBuckets);
    for (size_t i = 0; i < kStatsBuckets; ++i) {
        h[i] += parsed[i];
    }
    return true;
}

RecentRollups recent_rollups(Pg& pg, const std::optional<std::string>& sources,
                             uint64_t max_window_ms,
                             const std::function<uint64_t(bool, const std::string&)>& window_ms) {
    // Minute buckets that started within the window: the current, partial minute included.
    auto r = must_query(pg,
                        "SELECT source, route, attempts, delivered, e2e_hist::text, "
                        "(extract(epoch FROM now() - bucket) * 1000)::bigint "
                        "FROM delivery_stats_minute WHERE bucket > now() - $1::bigint * "
                        "interval '1 millisecond' AND ($2::text[] IS NULL OR source = ANY($2))",
                        {std::to_string(max_window_ms), sources});
    RecentRollups out;
    PGresult* res = r.get();
    Hist e2e;
    for (int i = 0; i < PQntuples(res); ++i) {
        std::string source = PQgetvalue(res, i, 0), route = PQgetvalue(res, i, 1);
        uint64_t age_ms = u64(res, i, 5);
        bool hist = parse_hist(PQgetvalue(res, i, 4), e2e);
        for (auto [is_route, name, map] :
             {std::tuple{false, &source, &out.sources}, {true, &route, &out.routes}}) {
            if (age_ms >= window_ms(is_route, *name)) {
                continue;
            }
            RollupTotals& t = (*map)[*name];
            t.attempts += u64(res, i, 2);
            t.delivered += u64(res, i, 3);
            t.e2e.resize(kStatsBuckets);
            if (hist) {
                for (size_t k = 0; k < kStatsBuckets; ++k) {
                    t.e2e[k] += e2e[k];
                }
            }
        }
    }
    return out;
}

double bucket_value_ms(size_t k) {
    if (k == 0) {
        return static_cast<double>(kStatsBounds[0]) / 2000.0;
    }
    if (k >= kStatsBuckets - 1) {
        return static_cast<double>(kStatsBounds[kStatsBuckets - 2]) / 1000.0;
    }
    return std::sqrt(static_cast<double>(kStatsBounds[k - 1]) *
                     static_cast<double>(kStatsBounds[k])) /
           1000.0;
}

std::optional<double> percentile_ms(std::span<const uint64_t> h, double p) {
    uint64_t n = 0;
    for (uint64_t c : h) {
        n += c;
    }
    if (n == 0) {
        return std::nullopt;
    }
    // Nearest rank: the smallest sample with at least p of all samples at or below it.
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(n)));
    rank = std::clamp<uint64_t>(rank, 1, n);
    uint64_t seen = 0;
    for (size_t k = 0; k < h.size(); ++k) {
        seen += h[k];
        if (seen >= rank) {
            return bucket_value_ms(k);
        }
    }
    return bucket_value_ms(h.size() - 1);
}

StatsQuery parse_stats_query(const std::map<std::string, std::string>& args) {
    StatsQuery q;
    for (const auto& [k, v] : args) {
        if (k == "window") {
            if (v != "1h" && v != "24h" && v != "7d") {
                throw Error(Error::bad_request, "window must be 1h, 24h or 7d (not '" + v + "')");
            }
            q.window = v;
        } else if (k == "by") {
            if (v != "route" && v != "source") {
                throw Error(Error::bad_request, "by must be route or source (not '" + v + "')");
            }
            q.by = v;
        } else if (k == "source") {
            q.source = v;
        } else if (k == "route") {
            q.route = v;
        } else {
            throw Error(Error::bad_request,
                        "unknown parameter '" + k + "' (window, by, source, route)");
        }
    }
    return q;
}

Json stats(Pg& pg, const Config& /*cfg*/, const StatsQuery& q, const Scope& scope) {
    bool minutes = q.window == "1h";
    uint64_t step = minutes ? kMinuteUs : kHourUs;
    uint64_t span = q.window == "1h"    ? 3600 * 1000000ULL
                    : q.window == "24h" ? 24 * 3600 * 1000000ULL
                                        : 7 * 24 * 3600 * 1000000ULL;
    auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    // Whole steps, the current (partial) one included: 60 minutes, 24 or 168 hours.
    uint64_t from = now - now % step + step - span;
    auto opt = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); };
    // A range of the primary key's leading column: steps x routes x workers rows at most, one row
    // per route for the hours compacted across workers (all but the last two).
    auto r = must_query(
        pg,
        std::string("SELECT extract(epoch FROM bucket)::bigint, source, route, attempts, "
                    "delivered, retried, dead, parked, timeouts, duration_hist::text, "
                    "e2e_hist::text FROM ") +
            (minutes ? "delivery_stats_minute" : "delivery_stats_hour") +
            " WHERE bucket >= $1::timestamptz AND ($2::text[] IS NULL OR source = ANY($2::text[])) "
            "AND ($3::text IS NULL OR source = $3) AND ($4::text IS NULL OR route = $4)",
        {format_timestamp_us(from), scope.sql_array(), opt(q.source), opt(q.route)});

    std::map<std::string, Group> groups;
    PGresult* res = r.get();
    int key_col = q.by == "route" ? 2 : 1;
    Hist dur, e2e;
    for (int i = 0; i < PQntuples(res); ++i) {
        Group& g = groups[PQgetvalue(res, i, key_col)];
        Point& pt = g.series[static_cast<int64_t>(u64(res, i, 0))];
        Counts& c = g.total;
        uint64_t n = u64(res, i, 3), delivered = u64(res, i, 4);
        c.count += n;
        c.delivered += delivered;
        c.retried += u64(res, i, 5);
        c.dead += u64(res, i, 6);
        c.parked += u64(res, i, 7);
        c.timeouts += u64(res, i, 8);
        pt.count += n;
        pt.delivered += delivered;
        if (parse_hist(PQgetvalue(res, i, 9), dur)) {
            add(c.duration, dur);
            add(pt.duration, dur);
        }
        if (parse_hist(PQgetvalue(res, i, 10), e2e)) {
            add(c.e2e, e2e);
        }
    }

    Json j;
    j["window"] = q.window;
    j["by"] = q.by;
    j["from"] = rfc3339(static_cast<int64_t>(from));
    j["to"] = rfc3339(static_cast<int64_t>(now), 6);
    j["step_seconds"] = step / 1000000;
    j["groups"] = Json::array();
    for (const auto& [key, g] : groups) {
        const Counts& c = g.total;
        Json o;
        o["key"] = key;
        o["count"] = c.count;
        o["delivered"] = c.delivered;
        o["retried"] = c.retried;
        o["dead"] = c.dead;
        o["parked"] = c.parked;
        o["timeouts"] = c.timeouts;
        o["success_rate"] = ratio(c.delivered, c.count);
        o["timeout_rate"] = ratio(c.timeouts, c.count);
        o["error_rate"] = ratio(c.count - c.delivered, c.count);
        for (auto [name, h] : {std::pair{"duration_ms", &c.duration}, {"end_to_end_ms", &c.e2e}}) {
            o[name] = {{"p50", ms_or_null(percentile_ms(*h, 0.50))},
                       {"p95", ms_or_null(percentile_ms(*h, 0.95))},
                       {"p99", ms_or_null(percentile_ms(*h, 0.99))}};
        }
        Json series = Json::array();
        for (const auto& [t, p] : g.series) {
            Json pt;
            pt["t"] = rfc3339(static_cast<int64_t>(t) * 1000000);
            pt["count"] = p.count;
            pt["delivered"] = p.delivered;
            pt["failed"] = p.count - p.delivered;
            pt["p50_ms"] = ms_or_null(percentile_ms(p.duration, 0.50));
            pt["p95_ms"] = ms_or_null(percentile_ms(p.duration, 0.95));
            pt["p99_ms"] = ms_or_null(percentile_ms(p.duration, 0.99));
            series.push_back(std::move(pt));
        }
        o["series"] = std::move(series);
        j["groups"].push_back(std::move(o));
    }
    return j;
}

}  // namespace hookq::ops
