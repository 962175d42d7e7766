// /replays: send stored webhooks again, as a job the replay runner works through.
#include "worker/admin/api_handlers.h"
#include "worker/clock.h"
#include "worker/ops/replay.h"

namespace hookq::admin::handlers {

// GET: the jobs. POST: a job, or with "dry_run" what it would send (a large selection asks for
// "confirm": 409 with the count, from api.cc).
HttpReply replays(Call& c) {
    HttpReply r;
    if (c.method == "GET") {
        r.body = ops::list_replays(c.s.pg, c.scope);
        return r;
    }
    Json o;
    if (auto no = c.json_body(o, /*object=*/false, /*optional=*/false)) {
        return *no;
    }
    ops::ReplayRequest req =
        ops::parse_replay_request(nlohmann::json(o), static_cast<int64_t>(now_us()));
    if (req.dry_run) {
        r.body = ops::preview_replay(c.s.pg, req, c.scope);
    } else {
        r.body = ops::create_replay(c.s.pg, req, c.actor(), c.scope);
        r.status = 201;
    }
    return r;
}

HttpReply get_replay(Call& c) {
    HttpReply r;
    r.body = ops::get_replay(c.s.pg, c.seg[3], c.scope);
    return r;
}

HttpReply cancel_replay(Call& c) {
    HttpReply r;
    r.body = ops::cancel_replay(c.s.pg, c.seg[3], c.actor(), c.scope);
    return r;
}

HttpReply resume_replay(Call& c) {
    HttpReply r;
    r.body = ops::resume_replay(c.s.pg, c.seg[3], c.actor(), c.scope);
    return r;
}

}  // namespace hookq::admin::handlers
