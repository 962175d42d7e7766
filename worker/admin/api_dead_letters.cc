// /dead-letters: list, read, delete and retry the webhooks delivery gave up on.
#include "worker/admin/api_handlers.h"
#include "worker/ops/dead_letters.h"

namespace hookq::admin::handlers {

HttpReply list_dead_letters(Call& c) {
    ops::DeadLetterQuery q;
    q.source = c.arg("source");
    q.route = c.arg("route");
    q.cursor = c.arg("cursor");
    std::string limit = c.arg("limit");
    if (!limit.empty()) {
        if (limit.size() > 6 || limit.find_first_not_of("0123456789") != std::string::npos) {
            return error(
                400, "bad request",
                "limit must be a number from 1 to " + std::to_string(ops::kMaxDeadLetterPage));
        }
        q.limit = std::stoi(limit);
    }
    std::string inc = c.arg("include_requeued");
    if (!inc.empty() && inc != "true" && inc != "false") {
        return error(400, "bad request", "include_requeued must be true or false");
    }
    q.include_requeued = inc == "true";
    if (auto no = c.source_refused(q.source)) {
        return *no;
    }
    return ok(ops::list_dead_letters(c.s.pg, q, c.scope));
}

HttpReply dead_letter(Call& c) {
    return ok(c.method == "GET" ? ops::get_dead_letter(c.s.pg, c.seg[3], c.scope)
                                : ops::delete_dead_letter(c.s.pg, c.seg[3], c.actor(), c.scope));
}

HttpReply retry_dead_letter(Call& c) {
    Json o;
    if (auto no = c.json_body(o, /*object=*/true, /*optional=*/true)) {
        return *no;
    }
    ops::RetryRequest req;
    for (const auto& [k, v] : o.items()) {
        if (k == "queue" && v.is_string()) {
            req.queue = v.get<std::string>();
        } else if (k == "force" && v.is_boolean()) {
            req.force = v.get<bool>();
        } else if (k == "dry_run" && v.is_boolean()) {
            req.dry_run = v.get<bool>();
        } else {
            return error(400, "bad request",
                         "unknown or mistyped field '" + k +
                             "' (queue: string, force: bool, dry_run: bool)");
        }
    }
    auto res = ops::retry_dead_letter(c.s.pg, c.s.redis, c.cfg, c.seg[3], req, c.actor(), c.scope);
    switch (res.outcome) {
        case ops::RetryOutcome::requeued:
        case ops::RetryOutcome::would_requeue:
            break;
        case ops::RetryOutcome::not_found:
            return error(404, "not found", "no dead letter " + c.seg[3]);
        case ops::RetryOutcome::gone:
        case ops::RetryOutcome::already_requeued:
            return error(409, "conflict", res.json.value("why", ""));
    }
    return ok(res.json);
}

}  // namespace hookq::admin::handlers
