// /breakers: the shared circuit breakers, by destination (scheme://host:port).
#include "worker/admin/api_handlers.h"
#include "worker/ops/breakers.h"

namespace hookq::admin::handlers {

namespace {

// The destination in the path from its fourth segment up to `end`, "//" restored: URL-encoded or
// not, it has split "http://host:port" into "http:" and "host:port" by the time the path is
// parsed.
std::string destination(const std::vector<std::string>& seg, size_t end) {
    std::string d;
    for (size_t i = 3; i < end; ++i) {
        d += i == 3 ? "" : (i == 4 && seg[3].ends_with(':')) ? "//" : "/";
        d += seg[i];
    }
    return d;
}

}  // namespace

HttpReply list_breakers(Call& c) {
    return ok(ops::list_breakers(c.s.redis, ops::known_destinations(c.cfg, c.scope)));
}

HttpReply get_breaker(Call& c) {
    return ok(ops::get_breaker(c.s.redis, destination(c.seg, c.seg.size()),
                               ops::scope_destinations(c.cfg, c.scope)));
}

HttpReply reset_breaker(Call& c) {
    return ok(ops::reset_breaker(c.s.redis, c.s.pg, destination(c.seg, c.seg.size() - 1), c.actor(),
                                 ops::scope_destinations(c.cfg, c.scope)));
}

}  // namespace hookq::admin::handlers
