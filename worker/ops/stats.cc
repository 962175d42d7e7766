#include "worker/ops/stats.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

#include "worker/cli/common.h"
#include "worker/store/sql.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::must_query;
using Json = nlohmann::ordered_json;

constexpr uint64_t kMinuteUs = 60ULL * 1000000, kHourUs = 3600ULL * 1000000;

std::string rfc3339(uint64_t us, bool fraction) {
    std::string t = format_timestamp_us(us);  // "2024-05-01 12:00:00.123456+00"
    t[10] = 'T';
    return (fraction ? t.substr(0, 26) : t.substr(0, 19)) + "Z";
}

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

struct Counts {
    uint64_t count = 0, delivered = 0, retried = 0, dead = 0, parked = 0, timeouts = 0;
    Histogram duration = Histogram(kStatsBuckets), e2e = Histogram(kStatsBuckets);
};

struct Group {
    Counts total;
    std::map<int64_t, Counts> series;  // by bucket start (unix seconds)
};

uint64_t u64(const PgResult& r, int row, int col) {
    return std::stoull(cell(r, row, col));
}

}  // namespace

bool add_histogram(Histogram& h, std::string_view s) {
    if (s.size() < 2 || s.front() != '{' || s.back() != '}') {
        return false;
    }
    h.resize(kStatsBuckets);
    Histogram add;
    const char* p = s.data() + 1;
    const char* end = s.data() + s.size() - 1;
    while (p < end) {
        uint64_t v = 0;
        auto [next, ec] = std::from_chars(p, end, v);
        if (ec != std::errc() || add.size() >= kStatsBuckets) {
            return false;
        }
        add.push_back(v);
        p = next;
        if (p < end && *p++ != ',') {
            return false;
        }
    }
    for (size_t i = 0; i < add.size(); ++i) {
        h[i] += add[i];
    }
    return true;
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

std::optional<double> percentile_ms(const Histogram& h, double p) {
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
    uint64_t span = q.window == "1h" ? 3600 * 1000000ULL
                    : q.window == "24h" ? 24 * 3600 * 1000000ULL
                                        : 7 * 24 * 3600 * 1000000ULL;
    auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    // Whole steps, the current (partial) one included: 60 minutes, 24 or 168 hours.
    uint64_t from = now - now % step + step - span;
    auto opt = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); };
    // Bounded by the primary key's leading column: at most steps x routes x workers rows.
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
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Group& g = groups[cell(r, i, q.by == "route" ? 2 : 1)];
        int64_t t = std::stoll(cell(r, i, 0));
        for (Counts* c : {&g.total, &g.series[t]}) {
            c->count += u64(r, i, 3);
            c->delivered += u64(r, i, 4);
            c->retried += u64(r, i, 5);
            c->dead += u64(r, i, 6);
            c->parked += u64(r, i, 7);
            c->timeouts += u64(r, i, 8);
            add_histogram(c->duration, cell(r, i, 9));
            add_histogram(c->e2e, cell(r, i, 10));
        }
    }

    Json j;
    j["window"] = q.window;
    j["by"] = q.by;
    j["from"] = rfc3339(from, false);
    j["to"] = rfc3339(now, true);
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
            pt["t"] = rfc3339(static_cast<uint64_t>(t) * 1000000, false);
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
