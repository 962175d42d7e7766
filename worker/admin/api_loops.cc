// Loops (ops/loops.h): GET /loops, POST /loops/{queue}/release, DELETE /loops/{queue}; for an
// unrestricted token only (api.cc).
#include "worker/admin/api_handlers.h"
#include "worker/ops/loops.h"

namespace hookq::admin::handlers {

HttpReply list_loops(Call& c) {
    return ok(ops::list_loops(c.s.redis, c.cfg.queues));
}

HttpReply clear_loops(Call& c) {
    return ok(ops::clear_loops(c.s.redis, c.s.pg, c.seg[3], c.actor(), c.cfg.queues));
}

HttpReply release_loops(Call& c) {
    return ok(ops::release_loops(c.s.redis, c.s.pg, c.seg[3], c.actor(), c.cfg.queues));
}

}  // namespace hookq::admin::handlers
