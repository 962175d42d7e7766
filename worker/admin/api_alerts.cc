// Alerting (issue #7): /alerts, /alerts/events, /silences[/{id}], all in ops/alerts; the engine
// (worker/alerts/) writes the rows these read.
#include "worker/admin/api_handlers.h"
#include "worker/ops/alerts.h"

namespace hookq::admin::handlers {

HttpReply list_alerts(Call& c) {
    return ok(ops::list_alerts(c.s.pg, &c.s.redis, c.args, ops::alert_scope(c.cfg, c.scope)));
}

HttpReply list_alert_events(Call& c) {
    return ok(ops::list_alert_events(c.s.pg, c.args, ops::alert_scope(c.cfg, c.scope)));
}

// GET lists them (its parameters checked by ops); POST creates one, and takes none.
HttpReply silences(Call& c) {
    if (c.method == "GET") {
        return ok(ops::list_silences(c.s.pg, c.args, ops::alert_scope(c.cfg, c.scope)));
    }
    if (!c.args.empty()) {
        return error(400, "bad request", "unknown parameter '" + c.args.begin()->first + "'");
    }
    Json req;
    if (auto no = c.json_body(req, /*object=*/false, /*optional=*/false)) {
        return *no;
    }
    return ok(ops::create_silence(c.s.pg, req, c.actor(), ops::alert_scope(c.cfg, c.scope)), 201);
}

HttpReply expire_silence(Call& c) {
    return ok(ops::expire_silence(c.s.pg, c.seg[3], c.actor(), ops::alert_scope(c.cfg, c.scope)));
}

}  // namespace hookq::admin::handlers
