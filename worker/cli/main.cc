// hookqctl: the operator's command line. Each command group declares its subcommands and runs them
// in its own worker/cli/<command>.cc; this file wires them together.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "worker/config.h"
#include "worker/cli/alerts.h"
#include "worker/cli/breaker.h"
#include "worker/cli/cleanup.h"
#include "worker/cli/common.h"
#include "worker/cli/dlq.h"
#include "worker/cli/events.h"
#include "worker/cli/health.h"
#include "worker/cli/health_checks.h"
#include "worker/cli/loops.h"
#include "worker/cli/pause.h"
#include "worker/cli/poison.h"
#include "worker/cli/replay.h"
#include "worker/cli/routes.h"
#include "worker/cli/setup.h"
#include "worker/cli/sign.h"
#include "worker/cli/stats.h"
#include "worker/cli/status.h"
#include "worker/log.h"

int main(int argc, char** argv) {
    namespace ctl = hookq::ctl;
    hookq::log::init("info", true);
    CLI::App app{"hookqctl: operate hookq"};
    app.require_subcommand(1);
    std::string config_path = "/etc/hookq/worker.toml";
    app.add_option("-c,--config", config_path, "worker configuration file");

    // Operator commands share the addresses and --json.
    ctl::Target target;
    bool json = false;
    auto addresses = [&](CLI::App* cmd) {
        cmd->add_option("--dsn", target.dsn,
                        "PostgreSQL connection string (default: from --config)");
        cmd->add_option("--redis", target.redis,
                        "Redis host:port or unix:/path (default: from --config)");
        cmd->add_flag("--json", json, "machine-readable output");
    };

    // --help lists the commands in the order they are added.
    ctl::SetupCommands setup;  // migrate, check-config, partitions
    ctl::add_setup_commands(app, setup);
    ctl::SignCommand sign;
    ctl::add_sign_command(app, sign);
    ctl::BreakerCommands breaker;
    ctl::add_breaker_commands(app, breaker, addresses);
    ctl::LoopsCommands loops;
    ctl::add_loops_commands(app, loops, addresses);
    ctl::PauseCommands pause;  // pause, resume, pauses
    ctl::add_pause_commands(app, pause, addresses);
    ctl::DlqCommands dlq;
    ctl::add_dlq_commands(app, dlq, addresses);
    ctl::PoisonCommands poison;
    ctl::add_poison_commands(app, poison, addresses);
    ctl::EventsCommands events;
    ctl::add_events_commands(app, events, addresses);
    ctl::RoutesCommand routes;
    ctl::add_routes_command(app, routes, addresses);
    ctl::StatusCommand status;
    ctl::add_status_command(app, status, addresses);
    ctl::CleanupCommand cleanup;
    ctl::add_cleanup_command(app, cleanup, addresses);
    ctl::StatsCommand stats;
    ctl::add_stats_command(app, stats, addresses);
    ctl::HealthCommand health;
    ctl::add_health_command(app, health, addresses);
    ctl::HealthCheckCommands health_checks;  // health-checks, slo
    ctl::add_health_check_commands(app, health_checks, addresses);
    ctl::AlertCommands alerts;  // alerts, silence
    ctl::add_alert_commands(app, alerts, addresses);
    ctl::ReplayCommands replay;
    ctl::add_replay_commands(app, replay, addresses);

    CLI11_PARSE(app, argc, argv);
    target.config_path = config_path;

    try {
        if (setup.parsed()) {
            return ctl::run_setup_commands(setup, config_path);
        }
        if (sign.parsed()) {
            return ctl::run_sign_command(sign);
        }
        if (breaker.parsed()) {
            return ctl::run_breaker_commands(breaker, target, json);
        }
        if (loops.parsed()) {
            return ctl::run_loops_commands(loops, target, json);
        }
        if (pause.parsed()) {
            return ctl::run_pause_commands(pause, target, json);
        }
        if (dlq.parsed()) {
            return ctl::run_dlq_commands(dlq, target, json);
        }
        if (poison.parsed()) {
            return ctl::run_poison_commands(poison, target, json);
        }
        if (events.parsed()) {
            return ctl::run_events_commands(events, target, json);
        }
        if (routes.parsed()) {
            return ctl::run_routes_command(routes, target, json);
        }
        if (status.parsed()) {
            return ctl::run_status_command(status, target, json);
        }
        if (cleanup.parsed()) {
            return ctl::run_cleanup_command(cleanup, target, json);
        }
        if (stats.parsed()) {
            return ctl::run_stats_command(stats, target, json);
        }
        if (health.parsed()) {
            return ctl::run_health_command(health, target, json);
        }
        if (health_checks.parsed()) {
            return ctl::run_health_check_commands(health_checks, target, json);
        }
        if (alerts.parsed()) {
            return ctl::run_alert_commands(alerts, target, json);
        }
        if (replay.parsed()) {
            return ctl::run_replay_commands(replay, target, json);
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
