// Delivery statistics per route or per source over 1 h, 24 h or 7 d: counts by outcome, rates and
// latency percentiles, read from the rollups the recorder keeps (migrations/0004), never from
// delivery_attempts. What GET /api/v1/stats returns and `hookqctl stats --json` prints.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/config.h"
#include "worker/ops/common.h"
#include "worker/store/pg.h"

namespace hookq::ops {

struct StatsQuery {
    std::string window = "1h";  // 1h (minute rollups), 24h or 7d (hour rollups)
    std::string by = "route";   // route or source
    std::string source, route;  // empty: all (that the scope allows)
};

// From the API's query parameters (hookqctl passes its flags as the same names). Error::bad_request
// naming the parameter and what it accepts.
StatsQuery parse_stats_query(const std::map<std::string, std::string>& args);

nlohmann::ordered_json stats(Pg& pg, const Config& cfg, const StatsQuery& q,
                             const Scope& scope = {});

// Histogram arithmetic, shared with health and tested on its own.
using Histogram = std::vector<uint64_t>;  // kStatsBuckets counts

// The last minutes of the minute rollups, summed per source and per route: what health and SLO
// status judge. `window_ms(route, name)` is each group's window (route false: a source); rows
// older than `max_window_ms` are not read. `sources`: a text[] literal, or nullopt for all.
struct RollupTotals {
    uint64_t attempts = 0, delivered = 0;
    Histogram e2e;
    uint64_t failures() const { return attempts - delivered; }
};
struct RecentRollups {
    std::map<std::string, RollupTotals> sources, routes;
};
RecentRollups recent_rollups(
    Pg& pg, const std::optional<std::string>& sources, uint64_t max_window_ms,
    const std::function<uint64_t(bool route, const std::string&)>& window_ms);
// Adds a PostgreSQL bigint[] text ("{0,2,1}", or "[3:5]={2,0,1}": subscript = bucket + 1) into h
// (sized to kStatsBuckets). False when the text is not such a histogram (nothing is added then).
bool add_histogram(Histogram& h, std::string_view pg_array);
// The value a sample in bucket k is read back as, in milliseconds: the geometric middle of the
// bucket's bounds (within 9% of any sample in it); half of 0.1 ms for bucket 0, the lower bound
// for the last (open-ended) bucket.
double bucket_value_ms(size_t k);
// The p-quantile (0 < p <= 1, nearest rank) in milliseconds, or nullopt with no samples.
std::optional<double> percentile_ms(std::span<const uint64_t> h, double p);

}  // namespace hookq::ops
