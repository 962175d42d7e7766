#include "worker/cli/setup.h"

#include <cstdio>

#include "worker/config.h"
#include "worker/store/migrations.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

namespace {

// --dsn wins; otherwise the [postgres] dsn of the worker's configuration file.
std::string resolve_dsn(const std::string& dsn, const std::string& config_path) {
    if (!dsn.empty()) {
        return dsn;
    }
    return load_config_file(config_path).postgres_dsn;
}

}  // namespace

void add_setup_commands(CLI::App& app, SetupCommands& c) {
    c.migrate = app.add_subcommand("migrate", "apply pending database migrations");
    c.migrate->add_option("--dsn", c.dsn, "PostgreSQL connection string (default: from --config)");
    c.migrate->add_option("--dir", c.dir,
                          "read migrations from this folder instead of the built-in set");

    c.check = app.add_subcommand("check-config", "validate the worker configuration");

    c.partitions = app.add_subcommand("partitions", "create the monthly partitions ahead");
    c.partitions->add_option("--dsn", c.dsn,
                             "PostgreSQL connection string (default: from --config)");
    c.partitions->add_option("--months", c.months, "months ahead")->check(CLI::Range(0, 36));
}

int run_setup_commands(const SetupCommands& c, const std::string& config_path) {
    if (c.check->parsed()) {
        auto cfg = load_config_file(config_path);
        std::printf("%s: ok (%zu routes)\n", config_path.c_str(), cfg.routes.size());
        return 0;
    }
    Pg pg(resolve_dsn(c.dsn, config_path));
    if (!pg.connect()) {
        std::fprintf(stderr, "hookqctl: cannot connect to PostgreSQL: %s\n", pg.error().c_str());
        return 1;
    }
    if (c.migrate->parsed()) {
        auto all = c.dir.empty() ? embedded_migrations() : migrations_from_dir(c.dir);
        auto applied = apply_migrations(pg, all);
        if (applied.empty()) {
            std::printf("schema is up to date (%zu migrations)\n", all.size());
        }
        for (const auto& m : applied) {
            std::printf("applied %s\n", m.c_str());
        }
        return 0;
    }
    if (!pg.exec("SELECT hookq_ensure_partitions(" + std::to_string(c.months) + ")")) {
        std::fprintf(stderr, "hookqctl: %s\n", pg.error().c_str());
        return 1;
    }
    std::printf("partitions ensured %d months ahead\n", c.months);
    return 0;
}

}  // namespace hookq::ctl
