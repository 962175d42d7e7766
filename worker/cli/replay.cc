#include "worker/cli/replay.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/ops/replay.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

ops::Actor cli_actor() {
    return ops::Actor{actor(), "", "", "", "hookqctl"};
}

std::string duration(double s) {
    if (s < 0 || !std::isfinite(s)) {
        return "?";
    }
    long n = std::lround(s);
    char buf[32];
    if (n >= 3600) {
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", n / 3600, n / 60 % 60);
    } else if (n >= 60) {
        std::snprintf(buf, sizeof buf, "%ldm%02lds", n / 60, n % 60);
    } else {
        std::snprintf(buf, sizeof buf, "%lds", n);
    }
    return buf;
}

std::string selection_text(const Json& sel) {
    std::string out;
    for (const auto& [k, v] : sel.items()) {
        if (v.is_null() || (v.is_array() && v.empty())) {
            continue;
        }
        out += (out.empty() ? "" : " ") + k + "=" +
               (v.is_string() ? printable(v.get<std::string>()) : v.dump());
    }
    return out.empty() ? "-" : out;
}

// "replay 7 running [#########-----------] 45% 450/1000 sent 440 skipped 10 failed 0 25.0/s ETA
// 22s", then "(n skipped as pending in another replay)" when there are such
std::string progress_line(const Json& j, bool bar) {
    int64_t total = j["total"].get<int64_t>();
    int64_t done =
        j["sent"].get<int64_t>() + j["skipped"].get<int64_t>() + j["failed"].get<int64_t>();
    double p = j["progress"].get<double>();
    std::string out = "replay " + std::to_string(j["id"].get<int64_t>()) + " " +
                      j["state"].get<std::string>() + " ";
    if (bar) {
        int width = 24, fill = static_cast<int>(p * width);
        out += "[" + std::string(fill, '#') + std::string(width - fill, '-') + "] ";
    }
    char buf[256];
    std::snprintf(buf, sizeof buf, "%3d%% %lld/%lld sent %lld skipped %lld failed %lld",
                  static_cast<int>(p * 100), static_cast<long long>(done),
                  static_cast<long long>(total), static_cast<long long>(j["sent"].get<int64_t>()),
                  static_cast<long long>(j["skipped"].get<int64_t>()),
                  static_cast<long long>(j["failed"].get<int64_t>()));
    out += buf;
    // Why fewer were sent than selected: another replay's copies of them are still on their way.
    if (j.contains("skipped_pending") && j["skipped_pending"].get<int64_t>() > 0) {
        std::snprintf(buf, sizeof buf, " (%lld skipped as pending in another replay)",
                      static_cast<long long>(j["skipped_pending"].get<int64_t>()));
        out += buf;
    }
    if (!j["observed_rate"].is_null()) {
        std::snprintf(buf, sizeof buf, " %.1f/s", j["observed_rate"].get<double>());
        out += buf;
    }
    if (!j["eta_seconds"].is_null()) {
        out += " ETA " + duration(j["eta_seconds"].get<double>());
    }
    return out;
}

void print_job(const Json& j) {
    std::printf("id:          %lld\n", static_cast<long long>(j["id"].get<int64_t>()));
    std::printf("state:       %s\n", json_cell(j["state"]).c_str());
    std::printf("created:     %s by %s\n", json_cell(j["created_at"]).c_str(),
                json_cell(j["created_by"]).c_str());
    std::printf("selection:   %s\n", selection_text(j["selection"]).c_str());
    std::printf("routes:      %s\n", json_cell(j["routes_mode"]).c_str());
    std::printf("rate:        %s/s\n", json_cell(j["rate"]).c_str());
    std::printf("limit:       %s\n", json_cell(j["limit"]).c_str());
    std::printf("progress:    %s\n", progress_line(j, false).c_str());
    std::printf("started:     %s\n", json_cell(j["started_at"]).c_str());
    std::printf("finished:    %s\n", json_cell(j["finished_at"]).c_str());
    std::printf("worker:      %s\n", json_cell(j["worker"]).c_str());
    if (!j["error"].is_null()) {
        std::printf("error:       %s\n", json_cell(j["error"]).c_str());
    }
}

bool finished(const Json& j) {
    auto s = j["state"].get<std::string>();
    return s == "done" || s == "cancelled" || s == "failed";
}

}  // namespace

int replay_create(Pg& pg, const ReplayOptions& o) {
    // The API's body, field for field: one parser and one set of errors for both.
    nlohmann::json body = nlohmann::json::object();
    if (!o.ids.empty()) {
        body["request_ids"] = o.ids;
    }
    const std::vector<std::pair<std::string, std::string>> fields{
        {"source", o.source}, {"route", o.route},
        {"status", o.status}, {"event_type", o.event_type},
        {"since", o.since},   {"from", o.from},
        {"to", o.to}};
    for (const auto& [k, v] : fields) {
        if (!v.empty()) {
            body[k] = v;
        }
    }
    body["rate"] = o.rate;
    if (o.limit > 0) {
        body["limit"] = o.limit;
    }
    body["routes"] = o.all_routes ? "all" : "failed";
    body["dry_run"] = o.dry_run;
    body["confirm"] = o.yes;
    ops::ReplayRequest req = ops::parse_replay_request(body, static_cast<int64_t>(now_us()));
    if (o.dry_run) {
        Json p = ops::preview_replay(pg, req);
        if (o.json) {
            std::printf("%s\n", p.dump(2).c_str());
            return 0;
        }
        std::printf("dry run: nothing changed\n");
        std::printf("selection:   %s\n", selection_text(p["selection"]).c_str());
        std::printf("webhooks:    %lld (%lld to send, %lld with nothing to send)\n",
                    static_cast<long long>(p["total"].get<int64_t>()),
                    static_cast<long long>(p["to_send"].get<int64_t>()),
                    static_cast<long long>(p["skipped"].get<int64_t>()));
        std::vector<std::vector<std::string>> rows{{"ROUTE", "DELIVERIES"}};
        for (const auto& [r, n] : p["routes"].items()) {
            rows.push_back({printable(r), n.dump()});
        }
        std::printf("routes (%s):\n%s", json_cell(p["routes_mode"]).c_str(), table(rows).c_str());
        std::printf("sample:     ");
        for (const auto& id : p["sample"]) {
            std::printf(" %s", id.get<std::string>().c_str());
        }
        std::printf("\nat %s/s:    about %s\n", json_cell(p["rate"]).c_str(),
                    duration(p["estimated_seconds"].get<double>()).c_str());
        if (p["confirmation_required"].get<bool>()) {
            std::printf("more than %lld webhooks: the replay needs --yes (or a --limit)\n",
                        static_cast<long long>(ops::kReplayConfirmAbove));
        }
        return 0;
    }
    Json job;
    try {
        job = ops::create_replay(pg, req, cli_actor());
    } catch (const ops::ConfirmationRequired& e) {
        std::fprintf(stderr, "hookqctl replay: %s (see --dry-run)\n", e.what());
        return 2;
    } catch (const ops::Error& e) {
        if (e.kind != ops::Error::conflict) {
            throw;
        }
        // The same replay is still running: nothing was created.
        std::fprintf(stderr, "hookqctl replay: %s\n", e.what());
        return 2;
    }
    if (o.json && o.detach) {
        std::printf("%s\n", job.dump(2).c_str());
        return 0;
    }
    const std::string id = std::to_string(job["id"].get<int64_t>());
    if (!o.json) {
        std::printf(
            "replay %s created: %lld webhooks at %s/s (Ctrl-C stops watching, not the "
            "replay; hookqctl replay cancel %s)\n",
            id.c_str(), static_cast<long long>(job["total"].get<int64_t>()),
            json_cell(job["rate"]).c_str(), id.c_str());
        std::fflush(stdout);
    }
    if (o.detach) {
        return 0;
    }
    const bool tty = !o.json && isatty(STDOUT_FILENO);
    auto last_line = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    for (;;) {
        job = ops::get_replay(pg, id);
        bool end = finished(job);
        auto now = std::chrono::steady_clock::now();
        if (tty) {
            std::printf("\r%s\033[K", progress_line(job, true).c_str());
            std::fflush(stdout);
        } else if (!o.json && (end || now - last_line >= std::chrono::seconds(2))) {
            std::printf("%s\n", progress_line(job, false).c_str());
            std::fflush(stdout);
            last_line = now;
        }
        if (end) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 500));
    }
    if (tty) {
        std::printf("\n");
    }
    if (o.json) {
        std::printf("%s\n", job.dump(2).c_str());
    } else if (!job["error"].is_null()) {
        std::printf("error: %s\n", json_cell(job["error"]).c_str());
    }
    return job["state"] == "done" ? 0 : 1;
}

int replay_list(Pg& pg, bool json) {
    Json j = ops::list_replays(pg);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    if (j["replays"].empty()) {
        std::printf("no replays\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"ID", "STATE", "CREATED_AT", "BY", "TOTAL", "SENT",
                                                "SKIPPED", "FAILED", "RATE", "SELECTION"}};
    for (const auto& r : j["replays"]) {
        rows.push_back({json_cell(r["id"]), json_cell(r["state"]), json_cell(r["created_at"]),
                        json_cell(r["created_by"]), json_cell(r["total"]), json_cell(r["sent"]),
                        json_cell(r["skipped"]), json_cell(r["failed"]), json_cell(r["rate"]),
                        selection_text(r["selection"])});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int replay_show(Pg& pg, const std::string& id, bool json) {
    Json j = ops::get_replay(pg, id);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    print_job(j);
    return 0;
}

int replay_cancel(Pg& pg, const std::string& id, bool json) {
    Json j = ops::cancel_replay(pg, id, cli_actor());
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("replay %s cancelled (%s)\n", id.c_str(), progress_line(j, false).c_str());
    }
    return 0;
}

int replay_resume(Pg& pg, const std::string& id, bool json) {
    Json j = ops::resume_replay(pg, id, cli_actor());
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("replay %s resumes from where it stopped (%s)\n", id.c_str(),
                    progress_line(j, false).c_str());
    }
    return 0;
}

void add_replay_commands(CLI::App& app, ReplayCommands& c,
                         const std::function<void(CLI::App*)>& addresses) {
    c.replay = app.add_subcommand(
        "replay", "send recorded webhooks again, paced, to the routes that did not succeed");
    c.replay->require_subcommand(0, 1);
    addresses(c.replay);
    ReplayOptions& o = c.opts;
    c.replay->add_option("--id", o.ids, "this request id (repeatable)");
    c.replay->add_option("--source", o.source, "only this source");
    c.replay->add_option("--route", o.route, "only this route");
    c.replay->add_option("--status", o.status,
                         "dead, failed or delivered (with --route: that route's)");
    c.replay->add_option("--event-type", o.event_type, "only this event type");
    c.replay->add_option("--since", o.since, "received within this long (1h, 7d)");
    c.replay->add_option("--from", o.from, "received at or after (RFC 3339 or date)");
    c.replay->add_option("--to", o.to, "received before (RFC 3339 or date)");
    c.replay->add_option("--rate", o.rate, "deliveries per second (default 50)");
    c.replay
        ->add_option("--limit", o.limit, "at most this many webhooks, oldest first")
        // PositiveNumber would answer a 0 with "not in range 0.000000 to 1.79e308".
        ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()));
    c.replay->add_flag("--all-routes", o.all_routes,
                       "every route, those that succeeded too (default: only those that did not)");
    c.replay->add_flag("--dry-run", o.dry_run, "show what would be sent; change nothing");
    c.replay->add_flag("--yes", o.yes, "confirm a selection of more than 1000 webhooks");
    c.replay->add_flag("--detach", o.detach, "create the job and return");
    c.list = c.replay->add_subcommand("list", "replay jobs, newest first");
    addresses(c.list);
    c.show = c.replay->add_subcommand("show", "one replay job and its progress");
    addresses(c.show);
    c.show->add_option("id", c.id, "replay id")->required();
    c.cancel = c.replay->add_subcommand("cancel", "stop a replay (audited)");
    addresses(c.cancel);
    c.cancel->add_option("id", c.id, "replay id")->required();
    c.resume =
        c.replay->add_subcommand("resume", "carry on a cancelled or failed replay (audited)");
    addresses(c.resume);
    c.resume->add_option("id", c.id, "replay id")->required();
}

int run_replay_commands(const ReplayCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, false);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.list->parsed()) {
        return replay_list(pg, json);
    }
    if (c.show->parsed()) {
        return replay_show(pg, c.id, json);
    }
    if (c.cancel->parsed()) {
        return replay_cancel(pg, c.id, json);
    }
    if (c.resume->parsed()) {
        return replay_resume(pg, c.id, json);
    }
    ReplayOptions o = c.opts;
    o.json = json;
    return replay_create(pg, o);
}

}  // namespace hookq::ctl
