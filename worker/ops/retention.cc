#include "worker/ops/retention.h"

#include <cctype>
#include <string>

#include "worker/cli/common.h"

namespace hookq::ops {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must_query;

struct Table {
    const char* name;
    const char* column;  // the partition key
    const char* policy;  // the key of "cutoffs"
};
constexpr Table kPartitioned[] = {
    {"webhook_events", "received_at", "events"},
    {"webhook_routes", "received_at", "events"},
    {"delivery_attempts", "started_at", "attempts"},
    {"audit_log", "at", "audit"},
};

uint64_t policy_ms(const RetentionConfig& p, std::string_view key) {
    if (key == "events") {
        return p.events_ms;
    }
    if (key == "attempts") {
        return p.attempts_ms;
    }
    if (key == "dead_letters") {
        return p.dead_letters_ms;
    }
    if (key == "alerts") {
        return p.alerts_ms;
    }
    return p.audit_ms;
}

// Partitions hookq made itself ("<table>_YYYYMM"): anything else attached by an operator (an
// archive, a foreign table) is not ours to drop.
bool ours(std::string_view table, std::string_view partition) {
    if (partition.size() != table.size() + 7 || !partition.starts_with(table) ||
        partition[table.size()] != '_') {
        return false;
    }
    for (char c : partition.substr(table.size() + 1)) {
        if (!std::isdigit(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

constexpr const char* kRfc3339 = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";

nlohmann::ordered_json plan(Pg& pg, const RetentionConfig& p) {
    nlohmann::ordered_json cutoffs = nlohmann::ordered_json::object();
    for (const char* key : {"events", "attempts", "dead_letters", "audit", "alerts"}) {
        uint64_t ms = policy_ms(p, key);
        if (ms == 0) {
            cutoffs[key] = nullptr;
            continue;
        }
        auto r = must_query(pg,
                            std::string("SELECT to_char((now() - make_interval(secs => $1::float8 "
                                        "/ 1000)) AT TIME ZONE 'UTC', '") +
                                kRfc3339 + "')",
                            {std::to_string(ms)});
        cutoffs[key] = cell(r, 0, 0);
    }

    nlohmann::ordered_json parts = nlohmann::ordered_json::array();
    nlohmann::ordered_json deletes = nlohmann::ordered_json::array();
    long long rows = 0, bytes = 0;
    for (const Table& t : kPartitioned) {
        if (cutoffs[t.policy].is_null()) {
            continue;
        }
        std::string cutoff = cutoffs[t.policy];
        // Bounds from the catalog; a partition goes when its upper bound is at or before the
        // cutoff, i.e. every row it can hold is older than the policy.
        auto r = must_query(
            pg,
            std::string("SELECT c.relname, to_char(b.lo AT TIME ZONE 'UTC', '") + kRfc3339 +
                "'), to_char(b.hi AT TIME ZONE 'UTC', '" + kRfc3339 +
                "'), pg_total_relation_size(c.oid) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, "
                "LATERAL (SELECT m[1]::timestamptz AS lo, m[2]::timestamptz AS hi FROM "
                "regexp_match(pg_get_expr(c.relpartbound, c.oid), "
                "'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS m) b "
                "WHERE i.inhparent = $1::regclass AND b.hi <= $2::timestamptz ORDER BY b.lo",
            {std::string(t.name), cutoff});
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            std::string name = cell(r, i, 0);
            if (!ours(t.name, name)) {
                continue;
            }
            // Exact: partitions that go are old and cold, and the count is what the audit keeps.
            auto n = must_query(pg, "SELECT count(*) FROM " + name);
            long long count = std::stoll(cell(n, 0, 0));
            long long size = std::stoll(cell(r, i, 3));
            parts.push_back({{"table", t.name},
                             {"partition", name},
                             {"from", cell(r, i, 1)},
                             {"to", cell(r, i, 2)},
                             {"rows", count},
                             {"bytes", size}});
            rows += count;
            bytes += size;
        }
        // DEFAULT holds rows of months without a partition: few by design, so DELETE is fine.
        std::string def = std::string(t.name) + "_default";
        auto d = must_query(
            pg, "SELECT count(*) FROM " + def + " WHERE " + t.column + " < $1::timestamptz",
            {cutoff});
        if (long long n = std::stoll(cell(d, 0, 0)); n > 0) {
            deletes.push_back({{"table", def}, {"rows", n}});
            rows += n;
        }
    }
    // Dead letters: small by nature (failures only), not partitioned.
    if (!cutoffs["dead_letters"].is_null()) {
        auto d = must_query(pg, "SELECT count(*) FROM dead_letters WHERE failed_at < $1",
                            {cutoffs["dead_letters"].get<std::string>()});
        if (long long n = std::stoll(cell(d, 0, 0)); n > 0) {
            deletes.push_back({{"table", "dead_letters"}, {"rows", n}});
            rows += n;
        }
    }
    // Alert transitions: a few rows per incident, not partitioned.
    if (!cutoffs["alerts"].is_null()) {
        auto d = must_query(pg, "SELECT count(*) FROM alert_events WHERE at < $1",
                            {cutoffs["alerts"].get<std::string>()});
        if (long long n = std::stoll(cell(d, 0, 0)); n > 0) {
            deletes.push_back({{"table", "alert_events"}, {"rows", n}});
            rows += n;
        }
    }
    nlohmann::ordered_json j;
    j["cutoffs"] = cutoffs;
    j["partitions"] = parts;
    j["deletes"] = deletes;
    j["rows"] = rows;
    j["bytes"] = bytes;
    return j;
}

// The column each DELETE filters on, and its policy.
std::pair<std::string, std::string> delete_filter(const std::string& table) {
    for (const Table& t : kPartitioned) {
        if (table == std::string(t.name) + "_default") {
            return {t.column, t.policy};
        }
    }
    if (table == "alert_events") {
        return {"at", "alerts"};
    }
    return {"failed_at", "dead_letters"};
}

}  // namespace

nlohmann::ordered_json retention_plan(Pg& pg, const RetentionConfig& policy) {
    auto j = plan(pg, policy);
    j["applied"] = false;
    return j;
}

nlohmann::ordered_json retention_apply(Pg& pg, const RetentionConfig& policy, const Actor& actor,
                                       uint64_t lock_timeout_ms) {
    must_query(pg, "BEGIN");
    try {
        auto lock = must_query(pg, "SELECT pg_try_advisory_xact_lock(hashtext('hookq.retention'))");
        if (cell(lock, 0, 0) != "t") {
            throw Error(Error::conflict, "another cleanup is running");
        }
        must_query(pg, "SELECT set_config('lock_timeout', $1, true)",
                   {std::to_string(lock_timeout_ms) + "ms"});
        auto j = plan(pg, policy);
        for (const auto& p : j["partitions"]) {
            PgResult r = ctl::query(pg, "DROP TABLE " + p["partition"].get<std::string>(), {});
            if (!r) {
                throw Error(Error::conflict, "cannot drop " + p["partition"].get<std::string>() +
                                                 " (" + pg.error() +
                                                 "); nothing was removed, try again later");
            }
        }
        for (const auto& d : j["deletes"]) {
            std::string table = d["table"];
            auto [column, key] = delete_filter(table);
            must_query(pg, "DELETE FROM " + table + " WHERE " + column + " < $1::timestamptz",
                       {j["cutoffs"][key].get<std::string>()});
        }
        j["applied"] = true;
        if (!j["partitions"].empty() || !j["deletes"].empty()) {
            audit(pg, actor, "retention.cleanup", "", j);
        }
        must_query(pg, "COMMIT");
        return j;
    } catch (...) {
        ctl::query(pg, "ROLLBACK", {});
        throw;
    }
}

}  // namespace hookq::ops
