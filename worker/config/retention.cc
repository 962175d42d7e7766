#include "worker/config/sections.h"

namespace hookq::config_detail {

// [retention]. "off" (or 0) keeps a table forever; otherwise at least a day.
void read_retention(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* t = r.table(root, "retention");
    if (!t) {
        return;
    }
    r.only_keys(*t, "[retention]",
                {"events", "attempts", "dead_letters", "audit", "alerts", "interval"});
    auto read = [&](std::string_view key, uint64_t lo_ms, uint64_t& out) {
        const toml::node* n = t->get(key);
        if (n && ((n->is_string() && n->as_string()->get() == "off") ||
                  (n->is_integer() && n->as_integer()->get() == 0))) {
            out = 0;
            return;
        }
        out = r.duration(*t, key, lo_ms, 100 * 365 * kDay).value_or(out);
    };
    read("events", kDay, c.retention.events_ms);
    read("attempts", kDay, c.retention.attempts_ms);
    read("dead_letters", kDay, c.retention.dead_letters_ms);
    read("audit", kDay, c.retention.audit_ms);
    read("alerts", kDay, c.retention.alerts_ms);
    read("interval", 10 * 1000, c.retention.interval_ms);
}

}  // namespace hookq::config_detail
