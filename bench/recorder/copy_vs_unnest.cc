// The recorder's batch write over libpq in binary, as the worker sends it (one prepared
// INSERT ... SELECT * FROM unnest($1::uuid[], ...) ON CONFLICT per table, binary array parameters)
// against COPY ... FROM STDIN (FORMAT binary) into a temporary staging table followed by INSERT ...
// SELECT FROM staging ON CONFLICT, and against COPY straight into delivery_attempts (which the
// recorder inserts without ON CONFLICT). Started by copy_vs_unnest.py --libpq (which compiles it
// and gives it a migrated database); prints one line per method and round.
//
//   copy_vs_unnest DSN BATCH BATCHES ROUNDS
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

PGconn* conn;

void check(PGresult* r, const char* what) {
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        std::fprintf(stderr, "%s: %s\n", what, PQerrorMessage(conn));
        std::exit(1);
    }
    PQclear(r);
}
void exec(const std::string& sql) {
    check(PQexec(conn, sql.c_str()), sql.c_str());
}

void be32(std::string& o, uint32_t v) {
    v = htonl(v);
    o.append(reinterpret_cast<const char*>(&v), 4);
}
void be64(std::string& o, uint64_t v) {
    be32(o, uint32_t(v >> 32));
    be32(o, uint32_t(v));
}

// One value in PostgreSQL's binary form; null when `null`.
struct Val {
    bool null = false;
    std::string bin;
};

enum Type { kUuid, kTs, kText, kJsonb, kBytea, kInt8, kFloat8 };
constexpr uint32_t kElemOid[] = {2950, 1184, 25, 3802, 17, 20, 701};
const char* const kName[] = {"uuid",   "timestamptz",     "text", "jsonb", "bytea",
                             "bigint", "double precision"};

struct Table {
    std::string name, cols, conflict;
    std::vector<Type> types;
};

const Table kEvents = {
    "webhook_events",
    "id, received_at, source, dedup_key, event_type, method, path, remote_addr, headers, body, "
    "status, attempts, delivered_at, last_error",
    " ON CONFLICT (received_at, id) DO UPDATE SET status = EXCLUDED.status, "
    "event_type = COALESCE(EXCLUDED.event_type, webhook_events.event_type), "
    "attempts = GREATEST(webhook_events.attempts, EXCLUDED.attempts), "
    "delivered_at = COALESCE(EXCLUDED.delivered_at, webhook_events.delivered_at), "
    "last_error = COALESCE(EXCLUDED.last_error, webhook_events.last_error), updated_at = now()",
    {kUuid, kTs, kText, kText, kText, kText, kText, kText, kJsonb, kBytea, kText, kInt8, kTs,
     kText}};
const Table kAttempts = {"delivery_attempts",
                         "event_id, route, url, attempt, started_at, duration_ms, http_status, "
                         "outcome, error, worker_id",
                         "",
                         {kUuid, kText, kText, kInt8, kTs, kFloat8, kInt8, kText, kText, kText}};

using Row = std::vector<Val>;

Val text(const std::string& s) {
    return {false, s};
}
Val i64(int64_t v) {
    Val x;
    be64(x.bin, uint64_t(v));
    return x;
}
Val f64(double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    Val x;
    be64(x.bin, u);
    return x;
}
Val ts(int64_t unix_us) {
    return i64(unix_us - 946684800LL * 1000000);
}  // since 2000-01-01
Val jsonb(const std::string& s) {
    return {false, "\x01" + s};
}

// One batch: `n` events (a delivered 1 KB GitHub webhook each) and their attempts.
void make_rows(std::mt19937_64& rng, size_t n, std::vector<Row>& ev, std::vector<Row>& at) {
    int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    const std::string body =
        "{\"ref\":\"refs/heads/main\",\"pad\":\"" + std::string(950, 'x') + "\"}";
    for (size_t i = 0; i < n; i++) {
        Val id;
        for (int k = 0; k < 2; k++)
            be64(id.bin, rng());
        char hex[40];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
        std::string headers = std::string("{\"content-type\": \"application/json\", ") +
                              "\"x-github-event\": \"push\", \"x-github-delivery\": \"" + hex +
                              "\", \"user-agent\": \"GitHub-Hookshot/abc\"}";
        ev.push_back({id, ts(now + int64_t(i)), text("github"), text(hex), text("push"),
                      text("POST"), text("/hooks/github"), text("127.0.0.1"), jsonb(headers),
                      text(body), text("delivered"), i64(1), ts(now + int64_t(i)), Val{true, ""}});
        at.push_back({id, text("app"), text("http://127.0.0.1:8080/webhooks/github"), i64(1),
                      ts(now + int64_t(i)), f64(0.412), i64(204), text("delivered"), Val{true, ""},
                      text("bench")});
    }
}

// Column c of `rows` as a binary one-dimensional array.
std::string array(const std::vector<Row>& rows, size_t c, Type t) {
    std::string o;
    bool nulls = std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return r[c].null; });
    be32(o, 1);
    be32(o, nulls ? 1 : 0);
    be32(o, kElemOid[t]);
    be32(o, uint32_t(rows.size()));
    be32(o, 1);
    for (const Row& r : rows) {
        if (r[c].null) {
            be32(o, uint32_t(-1));
        } else {
            be32(o, uint32_t(r[c].bin.size()));
            o += r[c].bin;
        }
    }
    return o;
}

// `int4` columns (bigint in the staging table, integer in the real one) go as 4 bytes.
std::string copy_binary(const std::vector<Row>& rows, std::vector<size_t> int4 = {}) {
    std::string o("PGCOPY\n\377\r\n\0", 11);
    be32(o, 0);
    be32(o, 0);
    for (const Row& r : rows) {
        uint16_t nf = htons(uint16_t(r.size()));
        o.append(reinterpret_cast<const char*>(&nf), 2);
        for (size_t c = 0; c < r.size(); c++) {
            const Val& v = r[c];
            if (v.null) {
                be32(o, uint32_t(-1));
            } else if (std::find(int4.begin(), int4.end(), c) != int4.end()) {
                be32(o, 4);
                o += v.bin.substr(4);
            } else {
                be32(o, uint32_t(v.bin.size()));
                o += v.bin;
            }
        }
    }
    o += std::string("\xff\xff", 2);
    return o;
}

void copy(const std::string& sql, const std::string& data) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        std::fprintf(stderr, "%s: %s\n", sql.c_str(), PQerrorMessage(conn));
        std::exit(1);
    }
    PQclear(r);
    if (PQputCopyData(conn, data.data(), int(data.size())) != 1 ||
        PQputCopyEnd(conn, nullptr) != 1) {
        std::fprintf(stderr, "copy: %s\n", PQerrorMessage(conn));
        std::exit(1);
    }
    check(PQgetResult(conn), "copy end");
    while (PGresult* x = PQgetResult(conn))
        PQclear(x);
}

void exec_prepared(const char* name, const std::vector<std::string>& params) {
    std::vector<const char*> v;
    std::vector<int> len, fmt;
    for (const auto& p : params) {
        v.push_back(p.data());
        len.push_back(int(p.size()));
        fmt.push_back(1);
    }
    check(PQexecPrepared(conn, name, int(v.size()), v.data(), len.data(), fmt.data(), 1), name);
}

std::string unnest_sql(const Table& t) {
    std::string s = "INSERT INTO " + t.name + " (" + t.cols + ") SELECT * FROM unnest(";
    for (size_t i = 0; i < t.types.size(); i++)
        s += (i ? ", $" : "$") + std::to_string(i + 1) + "::" + kName[t.types[i]] + "[]";
    return s + ")" + t.conflict;
}

std::string stage_ddl(const Table& t, const std::string& stage) {
    std::string s = "CREATE TEMP TABLE " + stage + " (";
    std::istringstream cols(t.cols);
    std::string c;
    for (size_t i = 0; std::getline(cols, c, ','); i++) {
        c.erase(0, c.find_first_not_of(' '));
        s += (i ? ", " : "") + c + " " + kName[t.types[i]];
    }
    return s + ") ON COMMIT DELETE ROWS";
}

double backend_cpu_s(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream in(all.substr(all.rfind(')') + 2));
    std::string field;
    long v[13] = {};
    for (int i = 0; i < 13 && in >> field; i++)
        v[i] = std::atol(field.c_str());
    return double(v[11] + v[12]) / double(sysconf(_SC_CLK_TCK));  // utime, stime
}

struct Batch {
    std::vector<std::string> ev_arrays, at_arrays;
    std::string ev_copy, at_copy, at_copy_direct;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s DSN BATCH BATCHES ROUNDS\n", argv[0]);
        return 2;
    }
    const size_t batch = std::stoul(argv[2]), batches = std::stoul(argv[3]);
    const int rounds = std::stoi(argv[4]);
    conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        std::fprintf(stderr, "connect: %s\n", PQerrorMessage(conn));
        return 1;
    }
    exec("SET synchronous_commit = on");
    int pid = PQbackendPID(conn);
    check(PQprepare(conn, "ev_unnest", unnest_sql(kEvents).c_str(), 0, nullptr), "prepare ev");
    check(PQprepare(conn, "at_unnest", unnest_sql(kAttempts).c_str(), 0, nullptr), "prepare at");
    exec(stage_ddl(kEvents, "ev_stage"));
    exec(stage_ddl(kAttempts, "at_stage"));
    check(PQprepare(conn, "ev_from_stage",
                    ("INSERT INTO webhook_events (" + kEvents.cols + ") SELECT * FROM ev_stage" +
                     kEvents.conflict)
                        .c_str(),
                    0, nullptr),
          "prepare ev stage");
    check(
        PQprepare(conn, "at_from_stage",
                  ("INSERT INTO delivery_attempts (" + kAttempts.cols + ") SELECT * FROM at_stage")
                      .c_str(),
                  0, nullptr),
        "prepare at stage");

    const char* methods[] = {"unnest (binary arrays)", "copy binary+stage",
                             "copy binary+stage, attempts direct"};
    // The client's encoding is done before the clock starts: only the server's work and the wire.
    std::mt19937_64 rng(42);
    std::vector<std::vector<Batch>> data(3);
    for (auto& per : data) {
        for (size_t b = 0; b < batches; b++) {
            std::vector<Row> ev, at;
            make_rows(rng, batch, ev, at);
            Batch x;
            for (size_t c = 0; c < kEvents.types.size(); c++)
                x.ev_arrays.push_back(array(ev, c, kEvents.types[c]));
            for (size_t c = 0; c < kAttempts.types.size(); c++)
                x.at_arrays.push_back(array(at, c, kAttempts.types[c]));
            x.ev_copy = copy_binary(ev);
            x.at_copy = copy_binary(at);
            x.at_copy_direct = copy_binary(at, {3, 6});  // attempt, http_status: integer
            per.push_back(std::move(x));
        }
    }
    const double n = double(batch * batches);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            int m = r % 2 ? 2 - k : k;
            exec("TRUNCATE webhook_events, delivery_attempts");
            exec("CHECKPOINT");
            double c0 = backend_cpu_s(pid);
            auto t0 = std::chrono::steady_clock::now();
            for (const Batch& b : data[m]) {
                exec("BEGIN");
                if (m == 0) {
                    exec_prepared("ev_unnest", b.ev_arrays);
                    exec_prepared("at_unnest", b.at_arrays);
                } else {
                    copy("COPY ev_stage FROM STDIN (FORMAT binary)", b.ev_copy);
                    exec_prepared("ev_from_stage", {});
                    if (m == 1) {
                        copy("COPY at_stage FROM STDIN (FORMAT binary)", b.at_copy);
                        exec_prepared("at_from_stage", {});
                    } else {
                        copy("COPY delivery_attempts (" + kAttempts.cols +
                                 ") FROM STDIN (FORMAT binary)",
                             b.at_copy_direct);
                    }
                }
                exec("COMMIT");
            }
            double wall =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            double cpu = backend_cpu_s(pid) - c0;
            PGresult* res = PQexec(conn,
                                   "SELECT (SELECT count(*) FROM webhook_events) + "
                                   "(SELECT count(*) FROM delivery_attempts)");
            long rows =
                PQresultStatus(res) == PGRES_TUPLES_OK ? std::atol(PQgetvalue(res, 0, 0)) : -1;
            PQclear(res);
            if (rows != long(2 * n)) {
                std::fprintf(stderr, "%s: %ld rows, expected %.0f\n", methods[m], rows, 2 * n);
                return 1;
            }
            std::printf("  round %d %-36s wall %6.1f us/row  backend CPU %6.1f us/row\n", r + 1,
                        methods[m], wall / n * 1e6, cpu / n * 1e6);
            std::fflush(stdout);
        }
    }
    PQfinish(conn);
    return 0;
}
