// /replays: send stored webhooks again, as a job the replay runner works through.
#include "worker/admin/api_handlers.h"
#include "worker/clock.h"
#include "worker/ops/replay.h"

namespace hookq::admin::handlers {

// GET: the jobs. POST: a job, or with "dry_run" what it would send (a large selection asks for
// "confirm": 409 with the count, from api.cc).
HttpReply replays(Call& c) {
    if (c.method == "GET") {
        return ok(ops::list_replays(c.s.pg, c.scope));
    }
    Json o;
    if (auto no = c.json_body(o, /*object=*/false, /*optional=*/false)) {
        return *no;
    }
    ops::ReplayRequest req =
        ops::parse_replay_request(nlohmann::json(o), static_cast<int64_t>(now_us()));
    if (req.dry_run) {
        return ok(ops::preview_replay(c.s.pg, req, c.scope));
    }
    return ok(ops::create_replay(c.s.pg, req, c.actor(), c.scope), 201);
}

HttpReply get_replay(Call& c) {
    return ok(ops::get_replay(c.s.pg, c.seg[3], c.scope));
}

HttpReply cancel_replay(Call& c) {
    return ok(ops::cancel_replay(c.s.pg, c.seg[3], c.actor(), c.scope));
}

HttpReply resume_replay(Call& c) {
    return ok(ops::resume_replay(c.s.pg, c.seg[3], c.actor(), c.scope));
}

}  // namespace hookq::admin::handlers
