// `hookqctl migrate`: numbered SQL files applied in order, each in its own transaction, recorded in
// schema_migrations, all under an advisory lock so that two concurrent runs cannot interleave.
#pragma once

#include <string>
#include <vector>

#include "worker/store/pg.h"

namespace hookq {

struct Migration {
    std::string name;  // "0001_init.sql"
    std::string sql;
};

const std::vector<Migration>& embedded_migrations();
// Migrations read from a folder instead of the embedded ones (development, packaging checks).
std::vector<Migration> migrations_from_dir(const std::string& dir);

// Applies what is missing; returns the names applied (empty: already up to date). Throws
// std::runtime_error naming the failing migration.
std::vector<std::string> apply_migrations(Pg& pg, const std::vector<Migration>& all);

}  // namespace hookq
