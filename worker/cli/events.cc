#include "worker/cli/events.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "worker/cli/common.h"
#include "worker/ops/events.h"

namespace hookq::ctl {

namespace {

using Json = nlohmann::ordered_json;

std::string text(const Json& v) {
    if (v.is_null()) {
        return "-";
    }
    return printable(v.is_string() ? v.get<std::string>() : v.dump());
}

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
        rows.push_back({text(e["id"]), text(e["received_at"]), text(e["source"]),
                        text(e["event_type"]), text(e["status"]), text(e["attempts"]),
                        text(e["body_size"]), text(e["last_error"])});
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
        std::printf("%-13s %s\n", (std::string(k) + ":").c_str(), text(j[k]).c_str());
    }
    std::printf("\nheaders:\n");
    for (const auto& [k, v] : j["headers"].items()) {
        std::printf("  %s: %s\n", printable(k).c_str(), text(v).c_str());
    }
    std::printf("\nbody (%s):\n%s\n", j["body_encoding"].get<std::string>().c_str(),
                printable(j["body"].get<std::string>(), true).c_str());
    if (!j["routes"].empty()) {
        std::vector<std::vector<std::string>> rows{
            {"ROUTE", "STATUS", "ATTEMPTS", "UPDATED_AT", "LAST_ERROR"}};
        for (const auto& r : j["routes"]) {
            rows.push_back({text(r["route"]), text(r["status"]), text(r["attempts"]),
                            text(r["updated_at"]), text(r["last_error"])});
        }
        std::printf("\nroutes:\n%s", table(rows).c_str());
    }
    if (j["attempts"].empty()) {
        std::printf("\nno delivery attempts\n");
    } else {
        std::vector<std::vector<std::string>> rows{
            {"STARTED_AT", "ROUTE", "ATTEMPT", "MS", "HTTP", "OUTCOME", "ERROR"}};
        for (const auto& a : j["attempts"]) {
            rows.push_back({text(a["started_at"]), text(a["route"]), text(a["attempt"]),
                            text(a["duration_ms"]), text(a["http_status"]), text(a["outcome"]),
                            text(a["error"])});
        }
        std::printf("\nattempts:\n%s", table(rows).c_str());
    }
    if (!j["dead_letters"].empty()) {
        std::vector<std::vector<std::string>> rows{
            {"DEAD_LETTER", "ROUTE", "FAILED_AT", "REQUEUED_AT", "REASON"}};
        for (const auto& d : j["dead_letters"]) {
            rows.push_back({text(d["id"]), text(d["route"]), text(d["failed_at"]),
                            text(d["requeued_at"]), text(d["reason"])});
        }
        std::printf("\ndead letters:\n%s", table(rows).c_str());
    }
    return 0;
}

}  // namespace hookq::ctl
