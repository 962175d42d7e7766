// hookqctl: operator commands. Implemented here: migrate, check-config, partitions.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "worker/config.h"
#include "worker/migrations.h"
#include "worker/pg.h"

namespace {

// --dsn wins; otherwise the [postgres] dsn of the worker's configuration file.
std::string resolve_dsn(const std::string& dsn, const std::string& config_path) {
    if (!dsn.empty()) {
        return dsn;
    }
    return hookq::load_config_file(config_path).postgres_dsn;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"hookqctl: operate hookq"};
    app.require_subcommand(1);
    std::string config_path = "/etc/hookq/worker.toml";
    std::string dsn;
    std::string dir;
    app.add_option("-c,--config", config_path, "worker configuration file");

    auto* migrate = app.add_subcommand("migrate", "apply pending database migrations");
    migrate->add_option("--dsn", dsn, "PostgreSQL connection string (default: from --config)");
    migrate->add_option("--dir", dir,
                        "read migrations from this folder instead of the built-in set");

    auto* check = app.add_subcommand("check-config", "validate the worker configuration");

    auto* parts = app.add_subcommand("partitions", "create the monthly partitions ahead");
    parts->add_option("--dsn", dsn, "PostgreSQL connection string (default: from --config)");
    int months = 2;
    parts->add_option("--months", months, "months ahead")->check(CLI::Range(0, 36));

    CLI11_PARSE(app, argc, argv);

    try {
        if (*check) {
            auto cfg = hookq::load_config_file(config_path);
            std::printf("%s: ok (%zu routes)\n", config_path.c_str(), cfg.routes.size());
            return 0;
        }
        hookq::Pg pg(resolve_dsn(dsn, config_path));
        if (!pg.connect()) {
            std::fprintf(stderr, "hookqctl: cannot connect to PostgreSQL: %s\n",
                         pg.error().c_str());
            return 1;
        }
        if (*migrate) {
            auto all = dir.empty() ? hookq::embedded_migrations() : hookq::migrations_from_dir(dir);
            auto applied = hookq::apply_migrations(pg, all);
            if (applied.empty()) {
                std::printf("schema is up to date (%zu migrations)\n", all.size());
            }
            for (const auto& m : applied) {
                std::printf("applied %s\n", m.c_str());
            }
            return 0;
        }
        if (*parts) {
            if (!pg.exec("SELECT hookq_ensure_partitions(" + std::to_string(months) + ")")) {
                std::fprintf(stderr, "hookqctl: %s\n", pg.error().c_str());
                return 1;
            }
            std::printf("partitions ensured %d months ahead\n", months);
            return 0;
        }
    } catch (const hookq::ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hookqctl: %s\n", e.what());
        return 1;
    }
    return 0;
}
