// Pauses (issue #9): GET /pauses, POST /{routes,sources}/{name}/{pause,resume}, in ops/pauses; the
// route stage of every worker reads what these write.
#include "worker/admin/api_handlers.h"
#include "worker/ops/pauses.h"

namespace hookq::admin::handlers {

namespace {
std::string kind(const Call& c) {
    return c.seg[2] == "routes" ? "route" : "source";
}
}  // namespace

HttpReply list_pauses(Call& c) {
    return ok(ops::list_pauses(c.s.redis, c.cfg, c.scope));
}

// The body, when given, is {"reason": "..."}, kept with the pause and in the audit log.
HttpReply pause(Call& c) {
    Json o;
    if (auto no = c.json_body(o, /*object=*/true, /*optional=*/true)) {
        return *no;
    }
    std::string reason;
    for (const auto& [k, v] : o.items()) {
        if (k != "reason" || !v.is_string()) {
            return error(400, "bad request",
                         "unknown or mistyped field '" + k + "' (reason: string)");
        }
        reason = v.get<std::string>();
    }
    return ok(ops::pause(c.s.redis, c.s.pg, c.cfg, kind(c), c.seg[3], reason, c.actor(), c.scope));
}

HttpReply resume(Call& c) {
    return ok(ops::resume(c.s.redis, c.s.pg, c.cfg, kind(c), c.seg[3], c.actor(), c.scope));
}

}  // namespace hookq::admin::handlers
