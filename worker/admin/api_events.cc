// /events and /events/{id}: the webhooks received, and one with its attempts.
#include "worker/admin/api_handlers.h"
#include "worker/ops/events.h"

namespace hookq::admin::handlers {

HttpReply list_events(Call& c) {
    ops::EventQuery q = ops::parse_event_query(c.args);
    if (auto no = c.source_refused(q.source)) {
        return *no;
    }
    return ok(ops::list_events(c.s.pg, q, c.scope));
}

HttpReply get_event(Call& c) {
    return ok(ops::get_event(c.s.pg, c.seg[3], c.scope));
}

}  // namespace hookq::admin::handlers
