// hookqctl: operator commands: migrate, check-config, partitions, sign, status, breaker, dlq,
// poison.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <tuple>

#include <CLI/CLI.hpp>

#include "shared/secret.h"
#include "shared/units.h"
#include "worker/config.h"
#include "worker/cli/alerts.h"
#include "worker/cli/breaker.h"
#include "worker/cli/loops.h"
#include "worker/cli/pause.h"
#include "worker/cli/cleanup.h"
#include "worker/cli/common.h"
#include "worker/log.h"
#include "worker/cli/dlq.h"
#include "worker/cli/events.h"
#include "worker/cli/health.h"
#include "worker/cli/health_checks.h"
#include "worker/cli/poison.h"
#include "worker/cli/replay.h"
#include "worker/cli/routes.h"
#include "worker/cli/status.h"
#include "worker/cli/sign.h"
#include "worker/cli/stats.h"
#include "worker/store/migrations.h"
#include "worker/store/pg.h"

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
    hookq::log::init("info", true);
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

    auto* sign = app.add_subcommand("sign", "print a correctly signed test request (curl)");
    std::string profile, url, body, body_file, id, hmac_header,
        hmac_alg = "sha256", hmac_enc = "hex", hmac_prefix, token_header;
    std::vector<std::string> secrets;
    sign->add_option("--profile", profile,
                     "github stripe standard svix shopify slack twilio "
                     "moysklad hmac none")
        ->required();
    sign->add_option("--secret", secrets, "file:PATH, env:NAME or literal:VALUE (first one signs)");
    sign->add_option("--url", url, "where the request goes (Twilio signs the URL)")->required();
    sign->add_option("--body", body, "the body (default: a small JSON object)");
    sign->add_option("--body-file", body_file, "read the body from this file");
    sign->add_option("--id", id, "delivery id (default: a fresh UUIDv7)");
    sign->add_option("--header", hmac_header, "hmac: the signature header");
    // An unknown value would otherwise sign with the default and fail only at the edge.
    sign->add_option("--alg", hmac_alg, "hmac: sha1, sha256 or sha512")
        ->check(CLI::IsMember({"sha1", "sha256", "sha512"}));
    sign->add_option("--encoding", hmac_enc, "hmac: hex or base64")
        ->check(CLI::IsMember({"hex", "base64"}));
    sign->add_option("--prefix", hmac_prefix, "hmac: prefix before the signature");
    sign->add_option("--token-header", token_header, "moysklad: send the token in this header");

    // Operator commands share the addresses and --json.
    hookq::ctl::Target target;
    bool json = false;
    auto addresses = [&](CLI::App* cmd) {
        cmd->add_option("--dsn", target.dsn,
                        "PostgreSQL connection string (default: from --config)");
        cmd->add_option("--redis", target.redis,
                        "Redis host:port or unix:/path (default: from --config)");
        cmd->add_flag("--json", json, "machine-readable output");
    };

    auto* breaker = app.add_subcommand("breaker", "circuit breakers per destination");
    breaker->require_subcommand(1);
    auto* breaker_list = breaker->add_subcommand("list", "every breaker and its state");
    addresses(breaker_list);
    auto* breaker_reset = breaker->add_subcommand("reset", "close a breaker now (audited)");
    addresses(breaker_reset);
    std::string destination;
    breaker_reset->add_option("destination", destination, "scheme://host:port, as listed")
        ->required();

    auto* loops = app.add_subcommand("loops",
                                     "entities repeating past hookq_loop_limit, held "
                                     "webhooks");
    addresses(loops);
    std::string loops_queue;
    auto* loops_release = loops->add_subcommand("release",
                                                "held webhooks back to the queue "
                                                "(audited)");
    addresses(loops_release);
    loops_release->add_option("queue", loops_queue, "the queue, as configured")->required();
    auto* loops_clear = loops->add_subcommand("clear", "forget a queue's loop counters (audited)");
    addresses(loops_clear);
    loops_clear->add_option("queue", loops_queue, "the queue, as configured")->required();
    // Pauses: deliveries of a paused route (or source) stay parked until resumed.
    auto* pause =
        app.add_subcommand("pause", "hold back deliveries of a route or source (audited)");
    pause->require_subcommand(1);
    auto* resume =
        app.add_subcommand("resume", "lift a pause; parked deliveries go back (audited)");
    resume->require_subcommand(1);
    auto* pauses = app.add_subcommand("pauses", "what is paused");
    addresses(pauses);
    std::string pause_name, pause_reason, pause_kind;
    for (auto* parent : {pause, resume}) {
        for (const char* kind : {"route", "source"}) {
            auto* sub = parent->add_subcommand(kind, std::string("a ") + kind + " by name");
            addresses(sub);
            sub->add_option("name", pause_name, std::string(kind) + " name")->required();
            if (parent == pause) {
                sub->add_option("--reason", pause_reason,
                                "why (shown in status and the audit log)");
            }
            sub->callback([&pause_kind, kind] { pause_kind = kind; });
        }
    }

    auto* dlq = app.add_subcommand("dlq", "dead letters");
    dlq->require_subcommand(1);
    hookq::ctl::DlqListOptions dlq_opts;
    hookq::ctl::DlqRetryOptions retry_opts;
    std::string dlq_id;
    std::vector<std::string> dlq_ids;
    auto* dlq_list = dlq->add_subcommand("list", "dead letters, newest first");
    addresses(dlq_list);
    dlq_list->add_option("--source", dlq_opts.source, "only this source");
    dlq_list->add_option("--limit", dlq_opts.limit, "at most this many")
        ->check(CLI::Range(1, 100000));
    dlq_list->add_flag("--all", dlq_opts.all, "include those already requeued");
    auto* dlq_show = dlq->add_subcommand("show", "one dead letter, its event and its attempts");
    addresses(dlq_show);
    dlq_show->add_option("id", dlq_id, "dead letter id")->required();
    auto* dlq_retry =
        dlq->add_subcommand("retry", "put dead letters back on their queue (audited)");
    addresses(dlq_retry);
    dlq_retry->add_option("ids", retry_opts.ids, "dead letter ids")->required();
    dlq_retry->add_option("--queue", retry_opts.queue,
                          "the queue to push to (default: the source's, from --config)");
    dlq_retry->add_flag("--dry-run", retry_opts.dry_run,
                        "show what would be requeued, change nothing");
    dlq_retry->add_flag("--force", retry_opts.force, "requeue even if already requeued");
    auto* dlq_delete = dlq->add_subcommand("delete", "remove dead letters (audited)");
    addresses(dlq_delete);
    dlq_delete->add_option("ids", dlq_ids, "dead letter ids")->required();

    auto* poison = app.add_subcommand("poison", "elements set aside in the poison lists");
    poison->require_subcommand(1);
    std::vector<std::string> poison_queues, poison_ids;
    std::string poison_id;
    int poison_limit = 50;
    auto poison_common = [&](CLI::App* cmd) {
        addresses(cmd);
        cmd->add_option("--queue", poison_queues, "only these queues (default: the config's)");
    };
    auto* poison_list = poison->add_subcommand("list", "poison elements, newest first");
    poison_common(poison_list);
    poison_list->add_option("--limit", poison_limit, "at most this many per queue")
        ->check(CLI::Range(1, 100000));
    auto* poison_show = poison->add_subcommand("show", "one element, decoded if it can be");
    poison_common(poison_show);
    poison_show->add_option("id", poison_id, "element id (as listed) or request id")->required();
    auto* poison_retry =
        poison->add_subcommand("retry", "put elements back on their queue (audited)");
    poison_common(poison_retry);
    poison_retry->add_option("ids", poison_ids, "element ids (as listed) or request ids")
        ->required();
    auto* poison_delete = poison->add_subcommand("delete", "drop elements for good (audited)");
    poison_common(poison_delete);
    poison_delete->add_option("ids", poison_ids, "element ids (as listed) or request ids")
        ->required();

    // The API's query parameters, flag for flag: one parser checks both.
    auto* events = app.add_subcommand("events", "recorded webhooks, newest first (one page)");
    events->require_subcommand(0, 1);
    addresses(events);
    std::map<std::string, std::string> event_args;
    for (const auto& [flag, param, help] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"--source", "source", "only this source"},
             {"--route", "route", "only webhooks routed to this route"},
             {"--status", "status", "queued, delivered, retrying, parked or dead"},
             {"--event-type", "event_type", "only this event type"},
             {"--from", "from", "received at or after (RFC 3339 or YYYY-MM-DD)"},
             {"--to", "to", "received before (RFC 3339 or YYYY-MM-DD)"},
             {"--request-id", "request_id", "this request id"},
             {"--dedup-key", "dedup_key", "this dedup key"},
             {"--cursor", "cursor", "next page: the cursor the previous page printed"},
             {"--limit", "limit", "at most this many (1-1000, default 50)"}}) {
        events->add_option_function<std::string>(
            flag, [&event_args, p = param](const std::string& v) { event_args[p] = v; }, help);
    }
    auto* events_show = events->add_subcommand("show", "one webhook: headers, body, attempts");
    addresses(events_show);
    std::string event_id;
    events_show->add_option("id", event_id, "request id")->required();

    auto* routes = app.add_subcommand("routes", "configured routes, 410 flags and breakers");
    addresses(routes);

    auto* status = app.add_subcommand("status", "queues, workers, dead letters, rates, breakers");
    addresses(status);
    std::vector<std::string> status_queues;
    status->add_option("--queue", status_queues, "report on these queues (default: the config's)");

    auto* cleanup = app.add_subcommand(
        "cleanup", "remove what is older than the retention policy, by whole partitions (audited)");
    addresses(cleanup);
    hookq::ctl::CleanupOptions cleanup_opts;
    std::string older_than;
    cleanup->add_option("--older-than", older_than,
                        "for every table, instead of [retention] (e.g. 90d; at least 1d)");
    cleanup->add_flag("--dry-run", cleanup_opts.dry_run, "show what would go, change nothing");

    // The API's query parameters, flag for flag, as for events.
    auto* stats = app.add_subcommand("stats", "delivery counts, rates and latencies (rollups)");
    addresses(stats);
    std::map<std::string, std::string> stats_args;
    for (const auto& [flag, param, help] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"--window", "window", "1h (per minute), 24h or 7d (per hour); default 1h"},
             {"--by", "by", "route or source; default route"},
             {"--source", "source", "only this source"},
             {"--route", "route", "only this route"}}) {
        stats->add_option_function<std::string>(
            flag, [&stats_args, p = param](const std::string& v) { stats_args[p] = v; }, help);
    }

    auto* health =
        app.add_subcommand("health", "per-source health; exits 1 unless every source is healthy");
    addresses(health);

    auto* health_checks = app.add_subcommand(
        "health-checks", "destination health checks; exits 1 when one is failing");
    addresses(health_checks);
    auto* slo = app.add_subcommand(
        "slo", "SLO status per source and route; exits 1 unless all are healthy");
    addresses(slo);
    // Alerting: hookqctl alerts [events], hookqctl silence add|list|expire (worker/cli/alerts.cc).
    hookq::ctl::AlertCommands alert_cmds;
    hookq::ctl::add_alert_commands(app, alert_cmds, addresses);
    auto* replay = app.add_subcommand(
        "replay", "send recorded webhooks again, paced, to the routes that did not succeed");
    replay->require_subcommand(0, 1);
    addresses(replay);
    hookq::ctl::ReplayOptions replay_opts;
    replay->add_option("--id", replay_opts.ids, "this request id (repeatable)");
    replay->add_option("--source", replay_opts.source, "only this source");
    replay->add_option("--route", replay_opts.route, "only this route");
    replay->add_option("--status", replay_opts.status,
                       "dead, failed or delivered (with --route: that route's)");
    replay->add_option("--event-type", replay_opts.event_type, "only this event type");
    replay->add_option("--since", replay_opts.since, "received within this long (1h, 7d)");
    replay->add_option("--from", replay_opts.from, "received at or after (RFC 3339 or date)");
    replay->add_option("--to", replay_opts.to, "received before (RFC 3339 or date)");
    replay->add_option("--rate", replay_opts.rate, "deliveries per second (default 50)");
    replay->add_option("--limit", replay_opts.limit, "at most this many webhooks, oldest first")
        ->check(CLI::PositiveNumber);
    replay->add_flag("--all-routes", replay_opts.all_routes,
                     "every route, those that succeeded too (default: only those that did not)");
    replay->add_flag("--dry-run", replay_opts.dry_run, "show what would be sent; change nothing");
    replay->add_flag("--yes", replay_opts.yes, "confirm a selection of more than 1000 webhooks");
    replay->add_flag("--detach", replay_opts.detach, "create the job and return");
    std::string replay_id;
    auto* replay_list = replay->add_subcommand("list", "replay jobs, newest first");
    addresses(replay_list);
    auto* replay_show = replay->add_subcommand("show", "one replay job and its progress");
    addresses(replay_show);
    replay_show->add_option("id", replay_id, "replay id")->required();
    auto* replay_cancel = replay->add_subcommand("cancel", "stop a replay (audited)");
    addresses(replay_cancel);
    replay_cancel->add_option("id", replay_id, "replay id")->required();
    auto* replay_resume =
        replay->add_subcommand("resume", "carry on a cancelled or failed replay (audited)");
    addresses(replay_resume);
    replay_resume->add_option("id", replay_id, "replay id")->required();

    CLI11_PARSE(app, argc, argv);
    target.config_path = config_path;

    try {
        if (*sign) {
            hookq::SignRequest req;
            auto scheme = hookq::scheme_from_name(profile);
            if (!scheme) {
                std::fprintf(stderr, "hookqctl sign: unknown profile \"%s\"\n", profile.c_str());
                return 2;
            }
            req.verifier.scheme = *scheme;
            for (const auto& spec : secrets) {
                std::string error, warning;
                auto s = hookq::load_secret(spec, error, &warning);
                if (!s) {
                    std::fprintf(stderr, "hookqctl sign: --secret: %s\n", error.c_str());
                    return 2;
                }
                if (!warning.empty())
                    std::fprintf(stderr, "hookqctl sign: warning: --secret: %s\n", warning.c_str());
                req.verifier.secrets.push_back(*s);
            }
            req.verifier.hmac.header = hmac_header;
            req.verifier.hmac.alg = hmac_alg == "sha1"     ? hookq::HashAlg::sha1
                                    : hmac_alg == "sha512" ? hookq::HashAlg::sha512
                                                           : hookq::HashAlg::sha256;
            req.verifier.hmac.encoding =
                hmac_enc == "base64" ? hookq::Encoding::base64 : hookq::Encoding::hex;
            req.verifier.hmac.prefix = hmac_prefix;
            req.verifier.token_header = token_header;
            req.url = url;
            req.id = id;
            req.body = body.empty() ? R"({"hookq":"test"})" : body;
            if (!body_file.empty()) {
                std::ifstream in(body_file, std::ios::binary);
                if (!in) {
                    std::fprintf(stderr, "hookqctl sign: cannot read %s\n", body_file.c_str());
                    return 2;
                }
                std::ostringstream ss;
                ss << in.rdbuf();
                req.body = ss.str();
                req.body_file = body_file;
            }
            std::fputs(hookq::signed_curl(req, static_cast<int64_t>(std::time(nullptr))).c_str(),
                       stdout);
            return 0;
        }
        if (*check) {
            auto cfg = hookq::load_config_file(config_path);
            std::printf("%s: ok (%zu routes)\n", config_path.c_str(), cfg.routes.size());
            return 0;
        }
        if (*breaker) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            if (*breaker_list) {
                return hookq::ctl::breaker_list(redis, cfg, json);
            }
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            return hookq::ctl::breaker_reset(redis, pg, destination, json);
        }
        if (*loops) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            if (!*loops_release && !*loops_clear) {
                return hookq::ctl::loops_list(redis, cfg.queues, json);
            }
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            if (*loops_release) {
                return hookq::ctl::loops_release(redis, pg, loops_queue, cfg.queues, json);
            }
            return hookq::ctl::loops_clear(redis, pg, loops_queue, cfg.queues, json);
        }
        if (*pause || *resume || *pauses) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            if (*pauses) {
                return hookq::ctl::pauses_list(redis, cfg, json);
            }
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            if (*pause) {
                return hookq::ctl::pause_set(redis, pg, cfg, pause_kind, pause_name, pause_reason,
                                             json);
            }
            return hookq::ctl::pause_lift(redis, pg, cfg, pause_kind, pause_name, json);
        }
        if (*events) {
            auto cfg = hookq::ctl::load_target(target, false);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            if (*events_show) {
                return hookq::ctl::events_show(pg, event_id, json);
            }
            return hookq::ctl::events_list(pg, event_args, json);
        }
        if (*routes) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            return hookq::ctl::routes_list(pg, redis, cfg, json);
        }
        if (*stats) {
            auto cfg = hookq::ctl::load_target(target, false);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            return hookq::ctl::stats(pg, cfg, stats_args, json);
        }
        if (alert_cmds.parsed()) {
            return hookq::ctl::run_alert_commands(alert_cmds, target, json);
        }
        if (*health) {
            // An unreachable backend is part of the answer (unhealthy), not a failure to answer.
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            redis.ensure();
            hookq::Pg pg(cfg.postgres_dsn);
            pg.connect();
            return hookq::ctl::health(redis, pg, cfg, json);
        }
        if (*health_checks) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            return hookq::ctl::health_checks(redis, cfg, json);
        }
        if (*slo) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            return hookq::ctl::slo(redis, pg, cfg, json);
        }
        if (*status) {
            auto cfg = hookq::ctl::load_target(target, true);
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            return hookq::ctl::status(redis, pg, cfg,
                                      status_queues.empty() ? cfg.queues : status_queues, json);
        }
        if (*poison) {
            bool needs_pg = poison_retry->parsed() || poison_delete->parsed();
            auto cfg = hookq::ctl::load_target(target, true);
            const auto& queues = poison_queues.empty() ? cfg.queues : poison_queues;
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            if (*poison_list) {
                return hookq::ctl::poison_list(redis, queues, poison_limit, json);
            }
            hookq::Pg pg(cfg.postgres_dsn);
            if (*poison_show) {
                // The reason PostgreSQL recorded is a bonus: show works with Redis alone.
                return hookq::ctl::poison_show(redis, pg.connect() ? &pg : nullptr, queues,
                                               poison_id, json);
            }
            if (needs_pg) {
                hookq::ctl::connect_pg(pg);
            }
            if (*poison_retry) {
                return hookq::ctl::poison_retry(pg, redis, queues, poison_ids, json);
            }
            return hookq::ctl::poison_delete(pg, redis, queues, poison_ids, json);
        }
        if (*cleanup) {
            if (!older_than.empty()) {
                auto ms = hookq::parse_duration_ms(older_than);
                if (!ms || *ms < 24ull * 3600 * 1000) {
                    std::fprintf(stderr,
                                 "hookqctl cleanup: --older-than must be a duration of at least "
                                 "1d, such as 90d (got \"%s\")\n",
                                 older_than.c_str());
                    return 2;
                }
                cleanup_opts.older_than_ms = ms;
            }
            auto cfg = hookq::ctl::load_target(target, false);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            cleanup_opts.json = json;
            return hookq::ctl::cleanup(pg, cfg, cleanup_opts);
        }
        if (*replay) {
            auto cfg = hookq::ctl::load_target(target, false);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            if (*replay_list) {
                return hookq::ctl::replay_list(pg, json);
            }
            if (*replay_show) {
                return hookq::ctl::replay_show(pg, replay_id, json);
            }
            if (*replay_cancel) {
                return hookq::ctl::replay_cancel(pg, replay_id, json);
            }
            if (*replay_resume) {
                return hookq::ctl::replay_resume(pg, replay_id, json);
            }
            replay_opts.json = json;
            return hookq::ctl::replay_create(pg, replay_opts);
        }
        if (*dlq) {
            bool needs_redis = dlq_retry->parsed();
            auto cfg = hookq::ctl::load_target(target, needs_redis);
            hookq::Pg pg(cfg.postgres_dsn);
            hookq::ctl::connect_pg(pg);
            if (*dlq_list) {
                dlq_opts.json = json;
                return hookq::ctl::dlq_list(pg, dlq_opts);
            }
            if (*dlq_show) {
                return hookq::ctl::dlq_show(pg, dlq_id, json);
            }
            if (*dlq_delete) {
                return hookq::ctl::dlq_delete(pg, dlq_ids, json);
            }
            hookq::RedisConn redis(cfg, "hookqctl");
            hookq::ctl::connect_redis(redis);
            retry_opts.json = json;
            return hookq::ctl::dlq_retry(pg, redis, cfg, retry_opts);
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
