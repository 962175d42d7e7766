#include "worker/cli/dlq.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/dead_letters.h"

namespace hookq::ctl {

namespace {

void print_json(const nlohmann::ordered_json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

ops::Actor cli_actor() {
    return ops::Actor{actor(), "", "", "", "hookqctl"};
}

}  // namespace

int dlq_list(Pg& pg, const DlqListOptions& o) {
    // Pages of the one listing the API serves, until --limit.
    ops::DeadLetterQuery q;
    q.source = o.source;
    q.include_requeued = o.all;
    auto items = nlohmann::ordered_json::array();
    while (static_cast<int>(items.size()) < o.limit) {
        q.limit = std::min(o.limit - static_cast<int>(items.size()), ops::kMaxDeadLetterPage);
        auto page = ops::list_dead_letters(pg, q);
        for (auto& item : page["items"]) {
            items.push_back(std::move(item));
        }
        if (page["next_cursor"].is_null()) {
            break;
        }
        q.cursor = page["next_cursor"].get<std::string>();
    }
    if (o.json) {
        print_json(items);
        return 0;
    }
    if (items.empty()) {
        std::printf("no dead letters\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ID", "EVENT", "SOURCE", "ROUTE", "ATTEMPTS", "FAILED_AT", "REQUEUED_AT", "REASON"}};
    for (const auto& d : items) {
        rows.push_back({std::to_string(d["id"].get<long long>()), d["event_id"], d["source"],
                        d["route"], std::to_string(d["attempts"].get<int>()), d["failed_at"],
                        d["requeued_at"].is_null() ? "-" : d["requeued_at"].get<std::string>(),
                        d["reason"]});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int dlq_show(Pg& pg, const std::string& id, bool json) {
    auto j = ops::get_dead_letter(pg, id);
    if (json) {
        print_json(j);
        return 0;
    }
    auto text = [](const nlohmann::ordered_json& v) {
        return v.is_null() ? std::string("-")
                           : printable(v.is_string() ? v.get<std::string>() : v.dump());
    };
    for (const auto& [k, v] : j.items()) {
        if (k == "delivery_attempts" || k == "headers" || k == "body" || k == "body_encoding") {
            continue;
        }
        std::printf("%-13s %s\n", (k + ":").c_str(), text(v).c_str());
    }
    if (j["headers"].is_object()) {
        std::printf("\nheaders:\n");
        for (const auto& [k, v] : j["headers"].items()) {
            std::printf("  %s: %s\n", printable(k).c_str(), text(v).c_str());
        }
    }
    if (j["body"].is_string()) {
        std::printf("\nbody (%s):\n%s\n", j["body_encoding"].get<std::string>().c_str(),
                    printable(j["body"].get<std::string>(), true).c_str());
    } else {
        std::printf("\nbody: - (the webhook's row is gone)\n");
    }
    std::printf("\n");
    const auto& attempts = j["delivery_attempts"];
    if (attempts.empty()) {
        std::printf("no delivery attempts\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ROUTE", "ATTEMPT", "STARTED_AT", "MS", "HTTP", "OUTCOME", "ERROR"}};
    for (const auto& a : attempts) {
        char ms[32];
        std::snprintf(ms, sizeof ms, "%.1f", a["duration_ms"].get<double>());
        rows.push_back({text(a["route"]), text(a["attempt"]), text(a["started_at"]), ms,
                        text(a["http_status"]), text(a["outcome"]),
                        a["error"].is_null() ? "" : text(a["error"])});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int dlq_retry(Pg& pg, RedisConn& redis, const Config& cfg, const DlqRetryOptions& o) {
    // Every id checked before any is acted on: a typo in the list changes nothing.
    for (const auto& id : o.ids) {
        ops::check_dead_letter_id(id);
    }
    ops::RetryRequest req{o.queue, o.dry_run, o.force};
    auto results = nlohmann::ordered_json::array();
    int failed = 0;
    for (const auto& id : o.ids) {
        auto r = ops::retry_dead_letter(pg, redis, cfg, id, req, cli_actor());
        failed += r.outcome != ops::RetryOutcome::requeued &&
                  r.outcome != ops::RetryOutcome::would_requeue;
        results.push_back(std::move(r.json));
    }
    if (o.json) {
        print_json(results);
    } else {
        for (const auto& res : results) {
            std::string line = std::to_string(res["id"].get<long long>()) + ": " +
                               res["result"].get<std::string>();
            if (res.contains("queue")) {
                line += " event " + res["event_id"].get<std::string>() + " route " +
                        res["route"].get<std::string>() + " on queue " +
                        res["queue"].get<std::string>();
            }
            if (res.contains("why")) {
                line += " (" + res["why"].get<std::string>() + ")";
            }
            std::printf("%s\n", line.c_str());
        }
    }
    return failed ? 1 : 0;
}

int dlq_delete(Pg& pg, const std::vector<std::string>& ids, bool json) {
    for (const auto& id : ids) {
        ops::check_dead_letter_id(id);
    }
    // Each id's answer is what DELETE /api/v1/dead-letters/{id} returns: {"deleted": id}, or the
    // API's 404 body.
    auto results = nlohmann::ordered_json::array();
    int failed = 0;
    for (const auto& id : ids) {
        try {
            results.push_back(ops::delete_dead_letter(pg, id, cli_actor()));
        } catch (const ops::Error& e) {
            if (e.kind != ops::Error::not_found) {
                throw;
            }
            ++failed;
            results.push_back({{"error", "not found"}, {"detail", e.what()}});
        }
    }
    if (json) {
        print_json(results.size() == 1 ? results[0] : results);
    } else {
        for (size_t i = 0; i < ids.size(); ++i) {
            std::printf("%s: %s\n", ids[i].c_str(),
                        results[i].contains("deleted") ? "deleted" : "not found");
        }
    }
    return failed ? 1 : 0;
}

void add_dlq_commands(CLI::App& app, DlqCommands& c,
                      const std::function<void(CLI::App*)>& addresses) {
    c.dlq = app.add_subcommand("dlq", "dead letters");
    c.dlq->require_subcommand(1);
    c.list = c.dlq->add_subcommand("list", "dead letters, newest first");
    addresses(c.list);
    c.list->add_option("--source", c.list_opts.source, "only this source");
    c.list->add_option("--limit", c.list_opts.limit, "at most this many")
        ->check(CLI::Range(1, 100000));
    c.list->add_flag("--all", c.list_opts.all, "include those already requeued");
    c.show = c.dlq->add_subcommand("show", "one dead letter, its event and its attempts");
    addresses(c.show);
    c.show->add_option("id", c.id, "dead letter id")->required();
    c.retry = c.dlq->add_subcommand("retry", "put dead letters back on their queue (audited)");
    addresses(c.retry);
    c.retry->add_option("ids", c.retry_opts.ids, "dead letter ids")->required();
    c.retry->add_option("--queue", c.retry_opts.queue,
                        "the queue to push to (default: the source's, from --config)");
    c.retry->add_flag("--dry-run", c.retry_opts.dry_run,
                      "show what would be requeued, change nothing");
    c.retry->add_flag("--force", c.retry_opts.force, "requeue even if already requeued");
    c.delete_ = c.dlq->add_subcommand("delete", "remove dead letters (audited)");
    addresses(c.delete_);
    c.delete_->add_option("ids", c.ids, "dead letter ids")->required();
}

int run_dlq_commands(const DlqCommands& c, const Target& target, bool json) {
    bool needs_redis = c.retry->parsed();
    auto cfg = load_target(target, needs_redis);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.list->parsed()) {
        DlqListOptions o = c.list_opts;
        o.json = json;
        return dlq_list(pg, o);
    }
    if (c.show->parsed()) {
        return dlq_show(pg, c.id, json);
    }
    if (c.delete_->parsed()) {
        return dlq_delete(pg, c.ids, json);
    }
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    DlqRetryOptions o = c.retry_opts;
    o.json = json;
    return dlq_retry(pg, redis, cfg, o);
}

}  // namespace hookq::ctl
