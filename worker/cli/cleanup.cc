#include "worker/cli/cleanup.h"

#include <cstdio>
#include <string>
#include <vector>

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

}  // namespace hookq::ctl
