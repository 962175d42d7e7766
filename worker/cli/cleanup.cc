#include "worker/cli/cleanup.h"

#include <cstdio>
#include <string>
#include <vector>

#include "shared/units.h"
#include "worker/cli/common.h"
#include "worker/ops/retention.h"

namespace hookq::ctl {

int cleanup(Pg& pg, const Config& cfg, const CleanupOptions& o) {
    RetentionConfig policy = cfg.retention;
    if (o.older_than_ms) {
        policy.events_ms = policy.attempts_ms = policy.dead_letters_ms = policy.audit_ms =
            policy.alerts_ms = *o.older_than_ms;
    }
    nlohmann::ordered_json j;
    try {
        j = o.dry_run
                ? ops::retention_plan(pg, policy)
                : ops::retention_apply(pg, policy, ops::Actor{actor(), "", "", "", "hookqctl"});
    } catch (const ops::Error& e) {
        std::fprintf(stderr, "hookqctl cleanup: %s\n", e.what());
        return 1;
    }
    if (o.json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"TABLE", "PARTITION", "FROM", "TO", "ROWS", "MB"}};
    for (const auto& p : j["partitions"]) {
        char mb[32];
        std::snprintf(mb, sizeof mb, "%.1f", p["bytes"].get<double>() / (1 << 20));
        rows.push_back({p["table"], p["partition"], p["from"], p["to"],
                        std::to_string(p["rows"].get<long long>()), mb});
    }
    for (const auto& d : j["deletes"]) {
        rows.push_back(
            {d["table"], "(rows)", "-", "-", std::to_string(d["rows"].get<long long>()), "-"});
    }
    if (rows.size() == 1) {
        std::printf("nothing is older than the retention policy\n");
        return 0;
    }
    std::fputs(table(rows).c_str(), stdout);
    std::printf("%s %lld rows\n", o.dry_run ? "would remove" : "removed",
                j["rows"].get<long long>());
    return 0;
}

void add_cleanup_command(CLI::App& app, CleanupCommand& c,
                         const std::function<void(CLI::App*)>& addresses) {
    c.cleanup = app.add_subcommand(
        "cleanup", "remove what is older than the retention policy, by whole partitions (audited)");
    addresses(c.cleanup);
    c.cleanup->add_option("--older-than", c.older_than,
                          "for every table, instead of [retention] (e.g. 90d; at least 1d)");
    c.cleanup->add_flag("--dry-run", c.opts.dry_run, "show what would go, change nothing");
}

int run_cleanup_command(const CleanupCommand& c, const Target& target, bool json) {
    CleanupOptions o = c.opts;
    if (!c.older_than.empty()) {
        auto ms = parse_duration_ms(c.older_than);
        if (!ms || *ms < 24ull * 3600 * 1000) {
            std::fprintf(stderr,
                         "hookqctl cleanup: --older-than must be a duration of at least "
                         "1d, such as 90d (got \"%s\")\n",
                         c.older_than.c_str());
            return 2;
        }
        o.older_than_ms = ms;
    }
    auto cfg = load_target(target, false);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    o.json = json;
    return cleanup(pg, cfg, o);
}

}  // namespace hookq::ctl
