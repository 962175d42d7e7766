#include "worker/cli/events.h"

#include <cstdio>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/events.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

}  // namespace

int events_list(Pg& pg, const std::map<std::string, std::string>& args, bool json) {
    auto page = ops::list_events(pg, ops::parse_event_query(args));
    if (json) {
        std::printf("%s\n", page.dump(2).c_str());
        return 0;
    }
    if (page["items"].empty()) {
        std::printf("no events\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ID", "RECEIVED_AT", "SOURCE", "EVENT_TYPE", "STATUS", "ATTEMPTS", "BYTES", "LAST_ERROR"}};
    for (const auto& e : page["items"]) {
        rows.push_back({json_cell(e["id"]), json_cell(e["received_at"]), json_cell(e["source"]),
                        json_cell(e["event_type"]), json_cell(e["status"]),
                        json_cell(e["attempts"]), json_cell(e["body_size"]),
                        json_cell(e["last_error"])});
    }
    std::fputs(table(rows).c_str(), stdout);
    if (!page["next_cursor"].is_null()) {
        std::printf("more: --cursor %s\n", page["next_cursor"].get<std::string>().c_str());
    }
    return 0;
}

int events_show(Pg& pg, const std::string& id, bool json) {
    auto j = ops::get_event(pg, id);
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    for (const char* k :
         {"id", "received_at", "source", "event_type", "dedup_key", "method", "path", "remote_addr",
          "status", "attempts", "delivered_at", "last_error", "body_size"}) {
        std::printf("%-13s %s\n", (std::string(k) + ":").c_str(), json_cell(j[k]).c_str());
    }
    std::printf("\nheaders:\n");
    for (const auto& [k, v] : j["headers"].items()) {
        std::printf("  %s: %s\n", printable(k).c_str(), json_cell(v).c_str());
    }
    std::printf("\nbody (%s):\n%s\n", j["body_encoding"].get<std::string>().c_str(),
                printable(j["body"].get<std::string>(), true).c_str());
    if (!j["routes"].empty()) {
        std::vector<std::vector<std::string>> rows{
            {"ROUTE", "STATUS", "ATTEMPTS", "UPDATED_AT", "LAST_ERROR"}};
        for (const auto& r : j["routes"]) {
            rows.push_back({json_cell(r["route"]), json_cell(r["status"]), json_cell(r["attempts"]),
                            json_cell(r["updated_at"]), json_cell(r["last_error"])});
        }
        std::printf("\nroutes:\n%s", table(rows).c_str());
    }
    if (j["attempts"].empty()) {
        std::printf("\nno delivery attempts\n");
    } else {
        std::vector<std::vector<std::string>> rows{
            {"STARTED_AT", "ROUTE", "ATTEMPT", "MS", "HTTP", "OUTCOME", "ERROR"}};
        for (const auto& a : j["attempts"]) {
            rows.push_back({json_cell(a["started_at"]), json_cell(a["route"]),
                            json_cell(a["attempt"]), json_cell(a["duration_ms"]),
                            json_cell(a["http_status"]), json_cell(a["outcome"]),
                            json_cell(a["error"])});
        }
        std::printf("\nattempts:\n%s", table(rows).c_str());
    }
    if (!j["dead_letters"].empty()) {
        std::vector<std::vector<std::string>> rows{
            {"DEAD_LETTER", "ROUTE", "FAILED_AT", "REQUEUED_AT", "REASON"}};
        for (const auto& d : j["dead_letters"]) {
            rows.push_back({json_cell(d["id"]), json_cell(d["route"]), json_cell(d["failed_at"]),
                            json_cell(d["requeued_at"]), json_cell(d["reason"])});
        }
        std::printf("\ndead letters:\n%s", table(rows).c_str());
    }
    return 0;
}

void add_events_commands(CLI::App& app, EventsCommands& c,
                         const std::function<void(CLI::App*)>& addresses) {
    c.events = app.add_subcommand("events", "recorded webhooks, newest first (one page)");
    c.events->require_subcommand(0, 1);
    addresses(c.events);
    // The API's query parameters, flag for flag: one parser checks both.
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
        c.events->add_option_function<std::string>(
            flag, [&c, p = param](const std::string& v) { c.args[p] = v; }, help);
    }
    c.show = c.events->add_subcommand("show", "one webhook: headers, body, attempts");
    addresses(c.show);
    c.show->add_option("id", c.id, "request id")->required();
}

int run_events_commands(const EventsCommands& c, const Target& target, bool json) {
    auto cfg = load_target(target, false);
    Pg pg(cfg.postgres_dsn);
    connect_pg(pg);
    if (c.show->parsed()) {
        return events_show(pg, c.id, json);
    }
    return events_list(pg, c.args, json);
}

}  // namespace hookq::ctl
