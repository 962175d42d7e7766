#include "worker/store/redis_cluster.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "shared/crypto.h"
#include "worker/log.h"

namespace hookq::cluster {

timeval to_timeval(uint64_t ms) {
    return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
           });
}

std::string_view err_of(const redisReply* r) {
    return r && r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len)
                                             : std::string_view();
}

// Buffers are the caller's, kept across the commands of one pipeline.
void append_argv(redisContext* ctx, const std::vector<std::string_view>& argv,
                 std::vector<const char*>& ptrs, std::vector<size_t>& lens) {
    ptrs.clear();
    lens.clear();
    for (auto a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

enum class Kind { none, moved, ask, tryagain, down };

Kind kind_of(std::string_view err) {
    if (err.starts_with("MOVED ")) {
        return Kind::moved;
    }
    if (err.starts_with("ASK ")) {
        return Kind::ask;
    }
    if (err.starts_with("TRYAGAIN")) {
        return Kind::tryagain;
    }
    if (err.starts_with("CLUSTERDOWN")) {
        return Kind::down;
    }
    return Kind::none;
}

redisReply* new_string_reply(std::string_view s) {
    auto* r = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
    r->type = REDIS_REPLY_STRING;
    r->str = static_cast<char*>(std::malloc(s.size() + 1));
    std::memcpy(r->str, s.data(), s.size());
    r->str[s.size()] = '\0';
    r->len = s.size();
    return r;
}

// The scripts sent whole (EVAL) through a pipeline, by SHA-1: each master has its own script
// cache, so a pipelined EVALSHA that one master knows another may not. Those are sent again as
// EVAL here, transparently, instead of failing a whole batch per master. Few scripts, kept for
// the life of the process; the strings never move once inserted.
struct Scripts {
    std::mutex mu;
    std::unordered_map<std::string, std::string> by_sha;
};
Scripts& scripts() {
    static Scripts s;
    return s;
}
void remember_script(std::string_view text) {
    std::string sha = crypto::sha1_hex(text);
    Scripts& s = scripts();
    std::lock_guard lock(s.mu);
    s.by_sha.try_emplace(std::move(sha), text);
}
const std::string* known_script(std::string_view sha) {
    Scripts& s = scripts();
    std::lock_guard lock(s.mu);
    auto it = s.by_sha.find(std::string(sha));
    return it == s.by_sha.end() ? nullptr : &it->second;
}

}  // namespace

int pattern_slot(std::string_view pattern) {
    size_t open = pattern.find('{');
    if (open == std::string_view::npos) {
        return -1;
    }
    // Glob characters before the tag could make the first '{' of a matching key another one.
    if (pattern.substr(0, open).find_first_of("*?[\\") != std::string_view::npos) {
        return -1;
    }
    size_t close = pattern.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) {
        return -1;
    }
    std::string_view tag = pattern.substr(open + 1, close - open - 1);
    if (tag.find_first_of("*?[\\") != std::string_view::npos) {
        return -1;
    }
    return crc16(tag) & (kSlots - 1);
}

size_t key_index(const std::vector<std::string_view>& argv) {
    if (argv.size() < 2) {
        return 0;
    }
    std::string_view cmd = argv[0];
    if (iequals(cmd, "EVAL") || iequals(cmd, "EVALSHA") || iequals(cmd, "EVAL_RO") ||
        iequals(cmd, "EVALSHA_RO") || iequals(cmd, "FCALL") || iequals(cmd, "FCALL_RO")) {
        return argv.size() > 3 && std::atoi(std::string(argv[2]).c_str()) > 0 ? 3 : 0;
    }
    for (std::string_view keyless :
         {"PING",    "TIME",     "INFO",    "SCRIPT",  "DBSIZE",  "SCAN",     "KEYS",
          "CLUSTER", "CONFIG",   "ECHO",    "CLIENT",  "COMMAND", "ROLE",     "LASTSAVE",
          "WAIT",    "MULTI",    "EXEC",    "DISCARD", "ASKING",  "READONLY", "AUTH",
          "SELECT",  "FLUSHALL", "FLUSHDB", "SLOWLOG", "HELLO",   "RESET"}) {
        if (iequals(cmd, keyless)) {
            return 0;
        }
    }
    if (iequals(cmd, "MEMORY") || iequals(cmd, "OBJECT")) {
        return argv.size() > 2 ? 2 : 0;
    }
    return 1;
}

std::optional<Redirect> parse_redirect(std::string_view error) {
    Redirect r;
    if (error.starts_with("MOVED ")) {
        error.remove_prefix(6);
    } else if (error.starts_with("ASK ")) {
        r.ask = true;
        error.remove_prefix(4);
    } else {
        return std::nullopt;
    }
    size_t sp = error.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp > 5) {
        return std::nullopt;
    }
    int slot = 0;
    for (char c : error.substr(0, sp)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        slot = slot * 10 + (c - '0');
    }
    std::string_view hostport = error.substr(sp + 1);
    size_t colon = hostport.rfind(':');
    if (slot >= kSlots || colon == std::string_view::npos || colon + 1 == hostport.size() ||
        hostport.size() - colon - 1 > 5) {
        return std::nullopt;
    }
    int port = 0;
    for (char c : hostport.substr(colon + 1)) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) {
        return std::nullopt;
    }
    r.slot = slot;
    r.host = std::string(hostport.substr(0, colon));
    // "[::1]:7000" in some versions; the brackets only delimit the address from the port.
    if (r.host.size() > 2 && r.host.front() == '[' && r.host.back() == ']') {
        r.host = r.host.substr(1, r.host.size() - 2);
    }
    r.port = port;
    return r;
}

ClusterClient::ClusterClient(const Config& cfg, std::string name)
    : cfg_(cfg),
      name_(std::move(name)),
      health_(NodeHealth::process(cfg.redis_timeout_ms)),
      slots_(kSlots, -1) {
    for (const auto& [host, port] : cfg_.redis_cluster) {
        node_index(host, port);
    }
}

ClusterClient::~ClusterClient() {
    drop();
}

void ClusterClient::drop() {
    for (Node& n : nodes_) {
        if (n.ctx) {
            redisFree(n.ctx);
            n.ctx = nullptr;
        }
    }
    pending_.clear();
}

size_t ClusterClient::node_index(const std::string& host, int port) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].port == port && nodes_[i].host == host) {
            return i;
        }
    }
    nodes_.push_back(Node{host, port, host + ":" + std::to_string(port)});
    return nodes_.size() - 1;
}

void ClusterClient::drop_node(Node& n, const std::string& why, uint64_t since_ms) {
    if (n.ctx) {
        redisFree(n.ctx);
        n.ctx = nullptr;
    }
    n.probing = false;
    last_error_ = n.addr + ": " + why;
    // The node may have failed over: whoever serves its slots now is in a fresh map.
    need_refresh_ = true;
    uint64_t now = mono_ms();
    if (health_.failed(n.addr, now - since_ms, now)) {
        log::warn("redis node unavailable", {{"conn", name_}, {"node", n.addr}, {"error", why}});
    }
}

void ClusterClient::answered(Node& n) {
    n.probing = false;
    if (health_.answered(n.addr)) {
        log::info("redis node connected", {{"conn", name_}, {"node", n.addr}});
    }
}

bool ClusterClient::connect(Node& n) {
    uint64_t now = mono_ms();
    if (!n.probing) {
        switch (health_.may_call(n.addr, now)) {
            case NodeHealth::Verdict::go:
                break;
            case NodeHealth::Verdict::probe:
                n.probing = true;
                break;
            case NodeHealth::Verdict::skip:
                // Found down, maybe by another stage's connection: an open connection of ours
                // would only wait out the timeout on it too.
                if (n.ctx) {
                    redisFree(n.ctx);
                    n.ctx = nullptr;
                }
                last_error_ = n.addr + ": unreachable (waiting before the next attempt)";
                return false;
        }
    }
    if (n.ctx) {
        return true;
    }
    timeval tv = to_timeval(cfg_.redis_timeout_ms);
    n.ctx = redisConnectWithTimeout(n.host.c_str(), n.port, tv);
    if (!n.ctx || n.ctx->err) {
        drop_node(n, n.ctx ? n.ctx->errstr : "cannot allocate redis context", now);
        return false;
    }
    redisSetTimeout(n.ctx, tv);
    redisEnableKeepAlive(n.ctx);
    if (!cfg_.redis_password.empty()) {
        Reply r(static_cast<redisReply*>(redisCommand(n.ctx, "AUTH %b", cfg_.redis_password.data(),
                                                      cfg_.redis_password.size())));
        if (!r || r->type == REDIS_REPLY_ERROR) {
            drop_node(n, "AUTH failed", now);
            return false;
        }
        answered(n);
    }
    return true;
}

bool ClusterClient::refresh() {
    uint64_t now = mono_ms();
    // Known masters first (they answer fastest with the current map), then every node ever seen.
    std::vector<size_t> order(masters_.begin(), masters_.end());
    for (size_t i = 0; i < nodes_.size(); ++i) {
        if (std::find(order.begin(), order.end(), i) == order.end()) {
            order.push_back(i);
        }
    }
    for (size_t i : order) {
        if (!connect(nodes_[i])) {
            continue;
        }
        std::string from_host = nodes_[i].host;
        Reply r = send(nodes_[i], {"CLUSTER", "SLOTS"});
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        std::vector<int> slots(kSlots, -1);
        std::vector<size_t> masters;
        size_t covered = 0;
        for (size_t e = 0; e < r->elements; ++e) {
            const redisReply* range = r->element[e];
            if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
                range->element[0]->type != REDIS_REPLY_INTEGER ||
                range->element[1]->type != REDIS_REPLY_INTEGER ||
                range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2 ||
                range->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
                continue;
            }
            const redisReply* master = range->element[2];
            std::string host(master->element[0]->str ? master->element[0]->str : "",
                             master->element[0]->len);
            if (host.empty() || host == "?") {
                host = from_host;  // "": the node we asked
            }
            size_t n = node_index(host, static_cast<int>(master->element[1]->integer));
            long long lo = std::max<long long>(0, range->element[0]->integer);
            long long hi = std::min<long long>(kSlots - 1, range->element[1]->integer);
            for (long long s = lo; s <= hi; ++s) {
                slots[static_cast<size_t>(s)] = static_cast<int>(n);
            }
            covered += static_cast<size_t>(std::max<long long>(0, hi - lo + 1));
            if (std::find(masters.begin(), masters.end(), n) == masters.end()) {
                masters.push_back(n);
            }
        }
        if (masters.empty()) {
            continue;  // a node that knows no slots yet (just started, not joined)
        }
        if (!have_map_ || masters != masters_) {
            std::string list;
            for (size_t m : masters) {
                list += (list.empty() ? "" : ",") + nodes_[m].addr;
            }
            // The first map is routine (and hookqctl's stdout is its output); a changed set of
            // masters (a failover, a reshard onto a new node) is worth a line.
            log::write(have_map_ ? spdlog::level::info : spdlog::level::debug,
                       "redis cluster slot map loaded",
                       {{"conn", name_},
                        {"masters", list},
                        {"slots_covered", static_cast<int64_t>(covered)}});
        }
        slots_ = std::move(slots);
        masters_ = std::move(masters);
        have_map_ = true;
        need_refresh_ = false;
        refresh_backoff_ms_ = 0;
        next_refresh_ms_ = now + 100;  // a burst of MOVED replies needs one refresh, not one each
        return true;
    }
    refresh_backoff_ms_ =
        refresh_backoff_ms_ ? std::min<uint64_t>(refresh_backoff_ms_ * 2, 1000) : 50;
    next_refresh_ms_ = now + refresh_backoff_ms_;
    if (last_error_.empty()) {
        last_error_ = "no redis cluster node reachable";
    }
    return false;
}

void ClusterClient::maybe_refresh() {
    if (need_refresh_ && mono_ms() >= next_refresh_ms_) {
        refresh();
    }
}

bool ClusterClient::ensure() {
    if (!have_map_) {
        if (mono_ms() < next_refresh_ms_) {
            return false;
        }
        return refresh();
    }
    maybe_refresh();
    return true;
}

int ClusterClient::node_for(int slot) {
    if (slot >= 0) {
        return slots_[static_cast<size_t>(slot)];
    }
    // No key: any master will do; the first one that is not known to be down.
    uint64_t now = mono_ms();
    for (size_t m : masters_) {
        if (!health_.is_down(nodes_[m].addr, now)) {
            return static_cast<int>(m);
        }
    }
    return masters_.empty() ? -1 : static_cast<int>(masters_.front());
}

Reply ClusterClient::send(Node& n, const std::vector<std::string_view>& argv) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (auto a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    uint64_t since = mono_ms();
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(n.ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
    if (!r) {
        drop_node(n, n.ctx->errstr, since);
    } else {
        answered(n);
    }
    return r;
}

void ClusterClient::note_moved(const Redirect& r) {
    size_t n = node_index(r.host, r.port);
    slots_[static_cast<size_t>(r.slot)] = static_cast<int>(n);
    // A slot moving is rarely alone (a reshard, a failover): fetch the whole map, at most every
    // 100 ms.
    need_refresh_ = true;
    uint64_t now = mono_ms();
    ++moved_count_;
    if (now >= moved_window_ms_) {
        log::warn("redis cluster redirections: slot map out of date",
                  {{"conn", name_},
                   {"node", nodes_[n].addr},
                   {"slot", r.slot},
                   {"moved", static_cast<int64_t>(moved_count_)}});
        moved_count_ = 0;
        moved_window_ms_ = now + 5000;
    }
}

bool ClusterClient::redirected(const Reply& r) {
    return r && kind_of(err_of(r.get())) != Kind::none;
}

// The core of every call: the commands (one, or MULTI ... EXEC) go to the node serving `slot` (or
// `fixed` when >= 0), are sent again as long as the cluster says they did not run (MOVED, ASK,
// TRYAGAIN, CLUSTERDOWN) and the timeout allows, and are never sent twice once a reply was lost.
bool ClusterClient::run_block(const std::vector<std::vector<std::string_view>>& cmds, int slot,
                              int fixed, std::vector<Reply>& replies) {
    const uint64_t deadline = mono_ms() + cfg_.redis_timeout_ms;
    uint64_t pause = 20;
    int target = fixed;
    bool asking = false;
    int hops = 0;
    auto wait = [&](const std::string& why) {
        if (mono_ms() + pause > deadline) {
            last_error_ = why;
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(pause));
        pause = std::min<uint64_t>(pause * 2, 200);
        maybe_refresh();
        return true;
    };
    for (;;) {
        int ni = target >= 0 ? target : node_for(slot);
        if (ni < 0) {
            need_refresh_ = true;
            if (!wait("no redis cluster node serves slot " + std::to_string(slot))) {
                return false;
            }
            continue;
        }
        Node& node = nodes_[static_cast<size_t>(ni)];
        if (!connect(node)) {
            // Nothing was sent: safe to try again, where a fresh map says. But only there: until
            // a replica takes over (cluster-node-timeout, 15 s by default) the map names the lost
            // master, and waiting out `timeout` on each call to it would stall every caller of
            // this connection (one stage thread serves every queue) instead of only its queue's.
            need_refresh_ = true;
            std::string why = last_error_;
            if (fixed >= 0) {
                return false;
            }
            maybe_refresh();
            int again = node_for(slot);
            if (again < 0 || again == ni) {
                last_error_ = why;
                return false;
            }
            target = -1;
            asking = false;
            continue;
        }
        std::vector<const char*> ptrs;
        std::vector<size_t> lens;
        const uint64_t since = mono_ms();
        if (asking) {
            redisAppendCommand(node.ctx, "ASKING");
        }
        for (const auto& argv : cmds) {
            append_argv(node.ctx, argv, ptrs, lens);
        }
        replies.clear();
        for (size_t i = 0; i < cmds.size() + (asking ? 1 : 0); ++i) {
            void* r = nullptr;
            if (redisGetReply(node.ctx, &r) != REDIS_OK) {
                drop_node(node, node.ctx->errstr, since);
                replies.clear();
                return false;
            }
            if (asking && i == 0) {
                freeReplyObject(r);
                continue;
            }
            replies.emplace_back(static_cast<redisReply*>(r));
        }
        answered(node);
        const redisReply* bad = nullptr;
        for (const Reply& r : replies) {
            if (redirected(r)) {
                bad = r.get();
                break;
            }
        }
        if (!bad) {
            return true;
        }
        std::string_view err = err_of(bad);
        Kind kind = kind_of(err);
        asking = false;
        target = fixed;
        if (kind == Kind::moved || kind == Kind::ask) {
            auto red = parse_redirect(err);
            if (!red || ++hops > 16 || fixed >= 0) {
                return true;  // the caller sees the error reply as it is
            }
            if (kind == Kind::moved) {
                note_moved(*red);
            } else {
                target = static_cast<int>(node_index(red->host, red->port));
                asking = true;
            }
            continue;
        }
        // TRYAGAIN (a multi-key command during a slot migration) or CLUSTERDOWN (a failover in
        // progress): nothing ran; wait and ask again, as a connection failure would past the
        // timeout.
        if (kind == Kind::down) {
            need_refresh_ = true;
        }
        std::string why = node.addr + ": " + std::string(err);
        if (!wait(why)) {
            replies.clear();
            return false;
        }
    }
}

Reply ClusterClient::scan_all(const std::vector<std::string_view>& argv) {
    // The cursor of a scan over every master: "<master index>-<that master's cursor>", "0" at both
    // ends, so callers keep treating it as opaque.
    std::string_view cursor = argv[1];
    size_t m = 0;
    std::string_view inner = "0";
    if (cursor != "0") {
        size_t dash = cursor.find('-');
        if (dash == std::string_view::npos) {
            last_error_ = "invalid cluster SCAN cursor";
            return nullptr;
        }
        m = static_cast<size_t>(std::atoll(std::string(cursor.substr(0, dash)).c_str()));
        inner = cursor.substr(dash + 1);
    }
    if (m >= masters_.size()) {
        // The map shrank during the scan: done (a periodic sweep looks again next period).
        auto* r = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
        r->type = REDIS_REPLY_ARRAY;
        r->elements = 2;
        r->element = static_cast<redisReply**>(std::calloc(2, sizeof(redisReply*)));
        r->element[0] = new_string_reply("0");
        r->element[1] = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
        r->element[1]->type = REDIS_REPLY_ARRAY;
        return Reply(r);
    }
    std::vector<std::string_view> one(argv);
    one[1] = inner;
    std::vector<Reply> replies;
    if (!run_block({one}, -1, static_cast<int>(masters_[m]), replies) || replies.size() != 1) {
        return nullptr;
    }
    Reply r = std::move(replies[0]);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        return r;
    }
    std::string next(r->element[0]->str, r->element[0]->len);
    if (next != "0") {
        next = std::to_string(m) + "-" + next;
    } else if (m + 1 < masters_.size()) {
        next = std::to_string(m + 1) + "-0";
    }
    freeReplyObject(r->element[0]);
    r->element[0] = new_string_reply(next);
    return r;
}

Reply ClusterClient::command(const std::vector<std::string_view>& argv) {
    if (argv.empty() || !ensure()) {
        return nullptr;
    }
    if (iequals(argv[0], "SCAN") && argv.size() >= 2) {
        int slot = -1;
        for (size_t i = 2; i + 1 < argv.size(); ++i) {
            if (iequals(argv[i], "MATCH")) {
                slot = pattern_slot(argv[i + 1]);
            }
        }
        if (slot < 0) {
            return scan_all(argv);
        }
        std::vector<Reply> replies;
        return run_block({argv}, slot, -1, replies) ? std::move(replies[0]) : nullptr;
    }
    size_t ki = key_index(argv);
    int slot = ki ? key_slot(argv[ki]) : -1;
    std::vector<Reply> replies;
    if (!run_block({argv}, slot, -1, replies)) {
        return nullptr;
    }
    return std::move(replies[0]);
}

std::vector<std::pair<std::string, Reply>> ClusterClient::each_master(
    const std::vector<std::string_view>& argv) {
    std::vector<std::pair<std::string, Reply>> out;
    if (!ensure()) {
        return out;
    }
    const std::vector<size_t> masters = masters_;  // a refresh under way must not move it
    for (size_t m : masters) {
        std::vector<Reply> replies;
        Reply r;
        if (run_block({argv}, -1, static_cast<int>(m), replies) && replies.size() == 1) {
            r = std::move(replies[0]);
        }
        out.emplace_back(nodes_[m].addr, std::move(r));
    }
    return out;
}

void ClusterClient::append(const std::vector<std::string_view>& argv) {
    if (!have_map_) {
        return;  // as the single-node connection: nothing is queued on a connection that is down
    }
    if (argv.size() > 1 && iequals(argv[0], "EVAL")) {
        remember_script(argv[1]);
    }
    pending_.emplace_back(argv.begin(), argv.end());
}

// A batch may name keys of several nodes. Commands are grouped per node (in their order), each
// group pipelined to its node, and the replies put back in the order of append(); a MULTI ... EXEC
// stays whole and goes where its first key does. What a node refuses as not its own (MOVED, ASK,
// TRYAGAIN, CLUSTERDOWN: it did not run) is sent again on its own through run_block. Commands of
// one slot keep their order: a slot has one node, and a redirection refuses all of them.
//
// A node that cannot be reached does not hold up the others: its units are not sent (as in
// run_block, a call to a master known to be down fails at once unless a fresh map names another
// node) and their replies stay null, as do those lost with a connection mid-reply. The caller
// sends again only what has no reply, so nothing that did run on a healthy master runs twice
// (an ack's LREM would then remove nothing and its script push a retry record again).
bool ClusterClient::read_replies(std::vector<Reply>& out) {
    out.clear();
    std::vector<std::vector<std::string>> cmds = std::move(pending_);
    pending_.clear();
    out.resize(cmds.size());
    if (!have_map_) {
        return false;
    }
    Views views;
    views.reserve(cmds.size());
    for (const auto& c : cmds) {
        views.emplace_back(c.begin(), c.end());
    }
    std::vector<Unit> units = units_of(views);
    std::vector<size_t> redo;
    for (auto& [ni, us] : by_node(units)) {
        Node& node = nodes_[static_cast<size_t>(ni)];
        if (node.ctx) {  // else unreachable: not sent, its replies stay null
            pipeline(node, us, units, views, out, redo);
        }
    }
    std::sort(redo.begin(), redo.end());
    for (size_t ui : redo) {
        const Unit& u = units[ui];
        Views block(views.begin() + static_cast<long>(u.first),
                    views.begin() + static_cast<long>(u.first + u.count));
        std::vector<Reply> replies;
        bool ok = run_block(block, u.slot, -1, replies) && replies.size() == u.count;
        for (size_t k = 0; k < u.count; ++k) {
            out[u.first + k] = ok ? std::move(replies[k]) : nullptr;
        }
    }
    return std::all_of(out.begin(), out.end(), [](const Reply& r) { return r != nullptr; });
}

std::vector<ClusterClient::Unit> ClusterClient::units_of(const Views& views) {
    std::vector<Unit> units;
    for (size_t i = 0; i < views.size();) {
        Unit u{i, 1, -1};
        if (iequals(views[i][0], "MULTI")) {
            size_t j = i + 1;
            while (j < views.size() && !iequals(views[j][0], "EXEC")) {
                if (u.slot < 0) {
                    if (size_t ki = key_index(views[j])) {
                        u.slot = key_slot(views[j][ki]);
                    }
                }
                ++j;
            }
            u.count = std::min(j, views.size() - 1) - i + 1;
        } else if (size_t ki = key_index(views[i])) {
            u.slot = key_slot(views[i][ki]);
        }
        units.push_back(u);
        i += u.count;
    }
    return units;
}

std::map<int, std::vector<size_t>> ClusterClient::by_node(const std::vector<Unit>& units) {
    std::map<int, std::vector<size_t>> nodes;
    for (bool fresh = false;; fresh = true) {
        nodes.clear();
        bool all = true;
        for (size_t ui = 0; ui < units.size(); ++ui) {
            int n = node_for(units[ui].slot);
            if (n < 0) {
                last_error_ = "no redis cluster node serves slot " + std::to_string(units[ui].slot);
                need_refresh_ = true;
                all = false;
            } else {
                nodes[n].push_back(ui);
            }
        }
        for (const auto& entry : nodes) {
            all = connect(nodes_[static_cast<size_t>(entry.first)]) && all;
        }
        if (all || fresh) {
            return nodes;
        }
        need_refresh_ = true;
        maybe_refresh();
    }
}

void ClusterClient::pipeline(Node& node, const std::vector<size_t>& us,
                             const std::vector<Unit>& units, Views& views, std::vector<Reply>& out,
                             std::vector<size_t>& redo) {
    const uint64_t since = mono_ms();
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (size_t ui : us) {
        for (size_t k = units[ui].first; k < units[ui].first + units[ui].count; ++k) {
            append_argv(node.ctx, views[k], ptrs, lens);
        }
    }
    for (size_t ui : us) {
        bool again = false;
        for (size_t k = units[ui].first; node.ctx && k < units[ui].first + units[ui].count; ++k) {
            void* r = nullptr;
            if (redisGetReply(node.ctx, &r) != REDIS_OK) {
                // The rest of this node's replies are lost; a unit stays whole (a MULTI whose
                // EXEC reply is lost is not known to have run).
                drop_node(node, node.ctx->errstr, since);
                for (size_t m = units[ui].first; m < units[ui].first + units[ui].count; ++m) {
                    out[m].reset();
                }
                again = false;
                break;
            }
            out[k].reset(static_cast<redisReply*>(r));
            again = again || redirected(out[k]);
            if (units[ui].count == 1 && views[k].size() > 1 &&
                err_of(out[k].get()).starts_with("NOSCRIPT") && iequals(views[k][0], "EVALSHA")) {
                if (const std::string* text = known_script(views[k][1])) {
                    views[k][0] = "EVAL";
                    views[k][1] = *text;
                    again = true;
                }
            }
        }
        if (again) {
            redo.push_back(ui);
        }
    }
    if (node.ctx) {
        answered(node);
    }
}

}  // namespace hookq::cluster
