// Loops (ops/loops.h): GET /loops, POST /loops/{queue}/release, DELETE /loops/{queue}; for an
// unrestricted token only (api.cc).
#include "worker/admin/api_handlers.h"
#include "worker/ops/loops.h"

namespace hookq::admin::handlers {

HttpReply list_loops(Call& c) {
    HttpReply r;
    r.body = ops::list_loops(c.s.redis, c.cfg.queues);
    return r;
}

HttpReply clear_loops(Call& c) {
    HttpReply r;
    r.body = ops::clear_loops(c.s.redis, c.s.pg, c.seg[3], c.actor(), c.cfg.queues);
    return r;
}

HttpReply release_loops(Call& c) {
    HttpReply r;
    r.body = ops::release_loops(c.s.redis, c.s.pg, c.seg[3], c.actor(), c.cfg.queues);
    return r;
}

}  // namespace hookq::admin::handlers
