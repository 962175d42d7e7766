// Batch SQL for the recorder, built as plain data so it can be tested without a server. Every
// statement has a fixed text and parameter count whatever the batch size: one parameter per
// column, a binary array of that column's values, unnested by the server
// ("INSERT ... SELECT * FROM unnest($1::uuid[], ...) ON CONFLICT ..."). Pg prepares each text once
// per connection; the server neither re-parses nor re-plans it, nor parses any value text.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/pipeline/messages.h"

namespace hookq {

struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::vector<int> formats;  // 1 = binary, 0 = text
    size_t rows = 0;
    // A fixed text, worth preparing once per connection (Pg keeps them by text).
    bool prepare = false;
    // An UPDATE of webhook_events for claims from retry records, RETURNING the ids it found: the
    // rows of these jobs that do not exist are then inserted (event_inserts) in the same
    // transaction.
    std::vector<const Job*> jobs;

    void add(std::optional<std::string> v, bool binary = false) {
        params.push_back(std::move(v));
        formats.push_back(binary ? 1 : 0);
    }
};

// PostgreSQL text rejects NUL and invalid UTF-8; headers from the wire may contain either. Invalid
// bytes become U+FFFD, NULs are dropped: the raw request is still intact in `body` and in Redis.
std::string sanitize_text(std::string_view s);
// "2024-05-01 12:00:00.123456+00": exact to the microsecond, so that an upsert after redelivery
// finds the same (received_at, id) key.
std::string format_timestamp_us(uint64_t unix_us);
std::string headers_json(const EnvelopeView& env);

// libpq sends the parameter count as a 16-bit integer: a statement with more cannot be sent at
// all (and fails without a SQLSTATE).
inline constexpr size_t kMaxParams = 65535;
// Parameter bytes after which a table's rows go on in another statement (same transaction): the
// server takes a message of up to 1 GB, an array value of up to 1 GB.
inline constexpr size_t kMaxStatementBytes = 64u << 20;

// The route name of the dead_letters row that traces a webhook PostgreSQL refused (it went to the
// poison list): no configured route can have this name.
inline constexpr std::string_view kPoisonRoute = "(poison)";

// The webhook's status after this claim, from the outcomes of its routes. The status written is
// then derived from every route's row (webhook_routes), not from this claim alone.
std::string event_status(const Job& job);
// webhook_routes.status for a route outcome.
std::string_view route_status(OutcomeKind k);
// A claim from a retry record that only parked again: its rows already say so; nothing to write.
bool writes_nothing(const Job& j);

// Latency histograms of the statistics rollups (migrations/0004_delivery_stats.sql): a sample of
// `us` microseconds is in bucket k when exactly k bounds are <= us. The bounds are
// round(100 * 2^(j/4)) us: four buckets per doubling from 0.1 ms to 16.7 days. Integers, so that
// this and the SQL hookq_stats_bucket() (same table) agree exactly, boundaries included.
// clang-format off
inline constexpr uint64_t kStatsBounds[] = {
    100ULL, 119ULL, 141ULL, 168ULL, 200ULL, 238ULL, 283ULL, 336ULL, 400ULL, 476ULL, 566ULL, 673ULL,
    800ULL, 951ULL, 1131ULL, 1345ULL, 1600ULL, 1903ULL, 2263ULL, 2691ULL, 3200ULL, 3805ULL, 4525ULL,
    5382ULL, 6400ULL, 7611ULL, 9051ULL, 10763ULL, 12800ULL, 15222ULL, 18102ULL, 21527ULL, 25600ULL,
    30444ULL, 36204ULL, 43054ULL, 51200ULL, 60887ULL, 72408ULL, 86108ULL, 102400ULL, 121775ULL,
    144815ULL, 172216ULL, 204800ULL, 243550ULL, 289631ULL, 344431ULL, 409600ULL, 487099ULL,
    579262ULL, 688862ULL, 819200ULL, 974198ULL, 1158524ULL, 1377725ULL, 1638400ULL, 1948397ULL,
    2317048ULL, 2755449ULL, 3276800ULL, 3896794ULL, 4634095ULL, 5510899ULL, 6553600ULL, 7793588ULL,
    9268190ULL, 11021797ULL, 13107200ULL, 15587175ULL, 18536380ULL, 22043595ULL, 26214400ULL,
    31174351ULL, 37072760ULL, 44087190ULL, 52428800ULL, 62348702ULL, 74145520ULL, 88174380ULL,
    104857600ULL, 124697404ULL, 148291040ULL, 176348760ULL, 209715200ULL, 249394808ULL, 296582080ULL,
    352697520ULL, 419430400ULL, 498789616ULL, 593164160ULL, 705395040ULL, 838860800ULL, 997579232ULL,
    1186328320ULL, 1410790079ULL, 1677721600ULL, 1995158464ULL, 2372656641ULL, 2821580158ULL,
    3355443200ULL, 3990316927ULL, 4745313281ULL, 5643160317ULL, 6710886400ULL, 7980633855ULL,
    9490626562ULL, 11286320634ULL, 13421772800ULL, 15961267710ULL, 18981253125ULL, 22572641268ULL,
    26843545600ULL, 31922535419ULL, 37962506250ULL, 45145282535ULL, 53687091200ULL, 63845070839ULL,
    75925012499ULL, 90290565071ULL, 107374182400ULL, 127690141678ULL, 151850024999ULL,
    180581130142ULL, 214748364800ULL, 255380283355ULL, 303700049998ULL, 361162260284ULL,
    429496729600ULL, 510760566711ULL, 607400099995ULL, 722324520568ULL, 858993459200ULL,
    1021521133421ULL, 1214800199990ULL, 1444649041135ULL};
// clang-format on
inline constexpr size_t kStatsBuckets = std::size(kStatsBounds) + 1;
size_t stats_bucket(uint64_t us);

// Whether an attempt ended in a transport timeout. AttemptRow keeps no Transport, only libcurl's
// error text (its error buffer, or curl_easy_strerror when that is empty) and no HTTP status; the
// SQL backfill in migrations/0004 applies the same rule to delivery_attempts rows.
bool attempt_timed_out(const AttemptRow& a);

// The rollup rows of these attempts (delivery_stats_minute and delivery_stats_hour), one
// INSERT ... ON CONFLICT DO UPDATE per table adding into this worker's rows. Part of build_batch.
void stats_rollups(std::vector<Statement>& out, const std::vector<const Job*>& jobs,
                   std::string_view worker_id, size_t max_bytes = kMaxStatementBytes);

// Statements for a batch of finished jobs, one per table (another past `max_bytes` of
// parameters); tables with no rows are omitted. They are meant for one transaction: the last
// webhook_events UPDATE derives each webhook's status from webhook_routes.
std::vector<Statement> build_batch(const std::vector<const Job*>& jobs,
                                   const std::vector<const Transition*>& transitions,
                                   std::string_view worker_id,
                                   size_t max_bytes = kMaxStatementBytes);

// Full webhook_events upserts (body and headers included) for these jobs.
std::vector<Statement> event_inserts(const std::vector<const Job*>& jobs,
                                     size_t max_bytes = kMaxStatementBytes);

// For tests and tools: the elements of a binary array parameter of these statements, each in
// PostgreSQL's text form (uuid, timestamptz as format_timestamp_us, integers, jsonb without its
// version byte; text and bytea as they are); nullopt for NULL. Throws on a malformed array.
std::vector<std::optional<std::string>> array_elements(std::string_view binary_array);

// The dead_letters row that makes a webhook sent to the poison list visible (route kPoisonRoute).
Statement poison_trace(const Job& j, std::string_view reason);

}  // namespace hookq
