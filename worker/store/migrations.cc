#include "worker/store/migrations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace hookq {

namespace {
// Any fixed number: "hookq" in ASCII. Shared by every hookqctl so migrations never interleave.
constexpr const char* kLockId = "448546171761";
}  // namespace

std::vector<Migration> migrations_from_dir(const std::string& dir) {
    std::vector<Migration> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() != ".sql") {
            continue;
        }
        std::ifstream in(e.path());
        std::stringstream ss;
        ss << in.rdbuf();
        out.push_back({e.path().filename().string(), ss.str()});
    }
    std::sort(out.begin(), out.end(),
              [](const Migration& a, const Migration& b) { return a.name < b.name; });
    return out;
}

std::vector<std::string> apply_migrations(Pg& pg, const std::vector<Migration>& all) {
    auto must = [&](std::string_view sql, const std::string& what) {
        if (!pg.exec(sql)) {
            throw std::runtime_error(what + ": " + pg.error());
        }
    };
    must(std::string("SELECT pg_advisory_lock(") + kLockId + ")", "advisory lock");
    std::vector<std::string> applied;
    try {
        must(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())",
            "schema_migrations");
        PgResult r = pg.query("SELECT version FROM schema_migrations");
        if (!r) {
            throw std::runtime_error("reading schema_migrations: " + pg.error());
        }
        std::set<std::string> done;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            done.insert(PQgetvalue(r.get(), i, 0));
        }
        for (const Migration& m : all) {
            if (done.count(m.name)) {
                continue;
            }
            must("BEGIN", m.name);
            if (!pg.exec(m.sql)) {
                std::string err = pg.error();
                pg.exec("ROLLBACK");
                throw std::runtime_error(m.name + ": " + err);
            }
            Statement ins;
            ins.sql = "INSERT INTO schema_migrations (version) VALUES ($1)";
            ins.add(m.name);
            if (!pg.exec(ins)) {
                std::string err = pg.error();
                pg.exec("ROLLBACK");
                throw std::runtime_error(m.name + ": " + err);
            }
            must("COMMIT", m.name);
            applied.push_back(m.name);
        }
    } catch (...) {
        pg.exec(std::string("SELECT pg_advisory_unlock(") + kLockId + ")");
        throw;
    }
    pg.exec(std::string("SELECT pg_advisory_unlock(") + kLockId + ")");
    return applied;
}

}  // namespace hookq
