// Alerting (issue #7): /alerts, /alerts/events, /silences[/{id}], all in ops/alerts; the engine
// (worker/alerts/) writes the rows these read.
#include "worker/admin/api_handlers.h"
#include "worker/ops/alerts.h"

namespace hookq::admin::handlers {

HttpReply list_alerts(Call& c) {
    HttpReply r;
    r.body = ops::list_alerts(c.s.pg, &c.s.redis, c.args, ops::alert_scope(c.cfg, c.scope));
    return r;
}

HttpReply list_alert_events(Call& c) {
    HttpReply r;
    r.body = ops::list_alert_events(c.s.pg, c.args, ops::alert_scope(c.cfg, c.scope));
    return r;
}

// GET lists them (its parameters checked by ops); POST creates one, and takes none.
HttpReply silences(Call& c) {
    HttpReply r;
    if (c.method == "GET") {
        r.body = ops::list_silences(c.s.pg, c.args, ops::alert_scope(c.cfg, c.scope));
        return r;
    }
    if (!c.args.empty()) {
        return error(400, "bad request", "unknown parameter '" + c.args.begin()->first + "'");
    }
    Json req;
    if (auto no = c.json_body(req, /*object=*/false, /*optional=*/false)) {
        return *no;
    }
    r.body = ops::create_silence(c.s.pg, req, c.actor(), ops::alert_scope(c.cfg, c.scope));
    r.status = 201;
    return r;
}

HttpReply expire_silence(Call& c) {
    HttpReply r;
    r.body = ops::expire_silence(c.s.pg, c.seg[3], c.actor(), ops::alert_scope(c.cfg, c.scope));
    return r;
}

}  // namespace hookq::admin::handlers
