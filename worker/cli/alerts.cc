#include "worker/cli/alerts.h"

#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "worker/ops/alerts.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

void print_json(const Json& j) {
    std::printf("%s\n", j.dump(2).c_str());
}

// "2026-11-30T14:05:00.123456Z" -> "2026-11-30T14:05:00Z": seconds are what a table needs.
std::string when(const Json& v) {
    if (!v.is_string()) {
        return "-";
    }
    std::string s = v.get<std::string>();
    return s.size() > 19 ? s.substr(0, 19) + "Z" : s;
}

std::string matchers_text(const Json& m) {
    if (m.empty()) {
        return "(everything)";
    }
    std::string out;
    for (const auto& [k, v] : m.items()) {
        out += (out.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : "?");
    }
    return printable(out);
}

int alerts_list(Pg& pg, RedisConn* redis, const AlertCommands& c, bool json) {
    std::map<std::string, std::string> args;
    if (!c.state.empty()) {
        args["state"] = c.state;
    }
    Json j = ops::list_alerts(pg, redis, args);
    if (json) {
        print_json(j);
        return 0;
    }
    const Json& leader = j["evaluator"]["leader"];
    if (j["alerts"].empty()) {
        std::printf("no alerts\n");
    } else {
        std::vector<std::vector<std::string>> rows{{"STATE", "SEVERITY", "ALERT", "VALUE",
                                                    "THRESHOLD", "SINCE", "SILENCED_BY", "RUNBOOK",
                                                    "SUMMARY"}};
        for (const auto& a : j["alerts"]) {
            std::string st = a["state"];
            const Json& since = st == "firing"    ? a["firing_since"]
                                : st == "pending" ? a["pending_since"]
                                                  : a["resolved_at"];
            std::string by;
            for (const auto& id : a["silenced_by"]) {
                by += (by.empty() ? "" : ",") + std::to_string(id.get<long long>());
            }
            rows.push_back({st, json_cell(a["severity"]), json_cell(a["fingerprint"]),
                            json_cell(a["value"]), json_cell(a["threshold"]), when(since),
                            by.empty() ? "-" : by,
                            a["runbook"].get<std::string>().empty() ? "-" : json_cell(a["runbook"]),
                            json_cell(a["summary"])});
        }
        std::fputs(table(rows).c_str(), stdout);
    }
    std::printf("evaluator leader: %s\n",
                leader.is_string() ? printable(leader.get<std::string>()).c_str()
                                   : "none (no worker holds hookq:alerts:lease, or Redis is down)");
    return 0;
}

int alert_events(Pg& pg, const AlertCommands& c, bool json) {
    std::map<std::string, std::string> args;
    if (!c.fingerprint.empty()) {
        args["fingerprint"] = c.fingerprint;
    }
    if (!c.cursor.empty()) {
        args["cursor"] = c.cursor;
    }
    if (!c.limit.empty()) {
        args["limit"] = c.limit;
    }
    Json j = ops::list_alert_events(pg, args);
    if (json) {
        print_json(j);
        return 0;
    }
    if (j["events"].empty()) {
        std::printf("no alert events\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ID", "AT", "ALERT", "STATE", "SEVERITY", "VALUE", "THRESHOLD", "NOTIFIED"}};
    for (const auto& e : j["events"]) {
        std::string notified;
        for (const auto& [ch, outcome] : e["notified"].items()) {
            notified += (notified.empty() ? "" : ", ") + printable(ch) + ": " + json_cell(outcome);
        }
        rows.push_back({std::to_string(e["id"].get<long long>()), when(e["at"]),
                        json_cell(e["fingerprint"]), json_cell(e["state"]),
                        json_cell(e["severity"]), json_cell(e["value"]), json_cell(e["threshold"]),
                        notified.empty() ? "-" : notified});
    }
    std::fputs(table(rows).c_str(), stdout);
    if (j["next_cursor"].is_string()) {
        std::printf("more: --cursor %s\n", j["next_cursor"].get<std::string>().c_str());
    }
    return 0;
}

int silence_list(Pg& pg, const AlertCommands& c, bool json) {
    std::map<std::string, std::string> args;
    if (c.all) {
        args["all"] = "1";
    }
    Json j = ops::list_silences(pg, args);
    if (json) {
        print_json(j);
        return 0;
    }
    if (j["silences"].empty()) {
        std::printf(c.all ? "no silences\n" : "no silences in force\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ID", "ACTIVE", "MATCHERS", "ENDS_AT", "EXPIRED_AT", "CREATED_BY", "COMMENT"}};
    for (const auto& s : j["silences"]) {
        rows.push_back({std::to_string(s["id"].get<long long>()), s["active"] ? "yes" : "no",
                        matchers_text(s["matchers"]), when(s["ends_at"]), when(s["expired_at"]),
                        json_cell(s["created_by"]), json_cell(s["comment"])});
    }
    std::fputs(table(rows).c_str(), stdout);
    return 0;
}

int silence_add(Pg& pg, const AlertCommands& c, bool json) {
    Json req;
    req["matchers"] = Json::object();
    for (const auto& m : c.matches) {
        auto eq = m.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::fprintf(stderr,
                         "hookqctl silence add: --match is key=value (rule=breaker_open, "
                         "route=orders), not \"%s\"\n",
                         printable(m).c_str());
            return 2;
        }
        req["matchers"][m.substr(0, eq)] = m.substr(eq + 1);
    }
    if (!c.duration.empty()) {
        req["duration"] = c.duration;
    }
    if (!c.until.empty()) {
        req["ends_at"] = c.until;
    }
    req["comment"] = c.comment;
    Json s;
    try {
        s = ops::create_silence(pg, req, ops::Actor{actor(), "", "", "", "hookqctl"});
    } catch (const ops::Error& e) {
        std::fprintf(stderr, "hookqctl silence add: %s\n", e.what());
        return 2;
    }
    if (json) {
        print_json(s);
    } else {
        std::printf("silence %lld: %s until %s\n", s["id"].get<long long>(),
                    matchers_text(s["matchers"]).c_str(), when(s["ends_at"]).c_str());
    }
    return 0;
}

int silence_expire(Pg& pg, const AlertCommands& c, bool json) {
    Json j;
    try {
        j = ops::expire_silence(pg, c.id, ops::Actor{actor(), "", "", "", "hookqctl"});
    } catch (const ops::Error& e) {
        std::fprintf(stderr, "hookqctl silence expire: %s\n", e.what());
        return e.kind == ops::Error::bad_request ? 2 : 1;
    }
    if (json) {
        print_json(j);
    } else {
        std::printf("silence %s expired\n", c.id.c_str());
    }
    return 0;
}

}  // namespace

void add_alert_commands(CLI::App& app, AlertCommands& c,
                        const std::function<void(CLI::App*)>& addresses) {
    c.alerts = app.add_subcommand("alerts", "alerts: pending, firing and recently resolved");
    c.alerts->require_subcommand(0, 1);
    addresses(c.alerts);
    c.alerts->add_option("--state", c.state, "pending, firing, resolved or active")
        ->check(CLI::IsMember({"pending", "firing", "resolved", "active"}));
    c.events =
        c.alerts->add_subcommand("events", "alert transitions and notifications, newest first");
    addresses(c.events);
    c.events->add_option("--fingerprint", c.fingerprint,
                         "only this alert, e.g. queue_age{queue=stripe}");
    c.events->add_option("--limit", c.limit, "at most this many (1-1000, default 50)");
    c.events->add_option("--cursor", c.cursor, "next page: the cursor the previous page printed");

    c.silence = app.add_subcommand("silence", "silences: mute matching alerts' notifications");
    c.silence->require_subcommand(1);
    c.add = c.silence->add_subcommand("add", "silence matching alerts for a while (audited)");
    addresses(c.add);
    c.add->add_option(
        "--match", c.matches,
        "key=value, repeatable: rule=<rule name> or <label>=<value>; none: every alert");
    auto* dur = c.add->add_option("--for", c.duration, "how long: 1m to 30d, e.g. 2h");
    auto* until = c.add->add_option("--until", c.until, "or until this RFC 3339 time");
    dur->excludes(until);
    c.add->add_option("--comment", c.comment, "why (required)")->required();
    c.list = c.silence->add_subcommand("list", "silences in force (--all: every one)");
    addresses(c.list);
    c.list->add_flag("--all", c.all, "expired and ended ones too");
    c.expire = c.silence->add_subcommand("expire", "end a silence now (audited)");
    addresses(c.expire);
    c.expire->add_option("id", c.id, "silence id, as listed")->required();
}

int run_alert_commands(const AlertCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, false);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.events->parsed()) {
        return alert_events(pg, c, json);
    }
    if (c.alerts->parsed()) {
        // The evaluator's leader is a bonus: the listing is PostgreSQL's.
        RedisConn redis(cfg, "hookqctl");
        return alerts_list(pg, redis.ensure() ? &redis : nullptr, c, json);
    }
    if (c.add->parsed()) {
        return silence_add(pg, c, json);
    }
    if (c.list->parsed()) {
        return silence_list(pg, c, json);
    }
    return silence_expire(pg, c, json);
}

}  // namespace hookq::ctl
