// Redis Cluster over plain hiredis (Debian's 0.14 has no cluster support): key slots, the slot map
// from CLUSTER SLOTS, one connection per node, MOVED/ASK/TRYAGAIN/CLUSTERDOWN handling. RedisConn
// hands every call to a ClusterClient when [redis] cluster is set; the stages never see the
// difference. Every key of one queue carries the hash tag {Q}, so everything a script or MULTI
// touches lives on one node.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/redis_slot.h"
#include "worker/clock.h"
#include "worker/config.h"
#include "worker/store/redis_node_health.h"

namespace hookq {

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

namespace cluster {

// kSlots, crc16() and key_slot() are shared/redis_slot.h's, the edge's too.

timeval to_timeval(uint64_t ms);
// The one slot every key a SCAN/KEYS pattern can match lives in, or -1 when the pattern can match
// keys of many slots (no hash tag, or a tag with glob characters in it).
int pattern_slot(std::string_view pattern);
// Where the key that decides the node is in argv: 0 for commands without a key (PING, TIME, INFO,
// SCRIPT, SCAN, MULTI, ...). EVAL/EVALSHA: the first KEYS entry (0 with no keys); others argv[1].
size_t key_index(const std::vector<std::string_view>& argv);

// A "-MOVED 3999 127.0.0.1:6381" / "-ASK 3999 127.0.0.1:6381" error.
struct Redirect {
    bool ask = false;
    int slot = -1;
    std::string host;
    int port = 0;
};
std::optional<Redirect> parse_redirect(std::string_view error);

class ClusterClient {
  public:
    ClusterClient(const Config& cfg, std::string name);
    ~ClusterClient();
    ClusterClient(const ClusterClient&) = delete;
    ClusterClient& operator=(const ClusterClient&) = delete;

    // The slot map is known (read from a reachable node if not).
    bool ensure();
    bool connected() const { return have_map_; }
    void drop();

    // Same contract as RedisConn::command: nullptr when the command may not have run or its reply
    // was lost (a node unreachable past the timeout, a connection lost mid-reply, the cluster down
    // past the timeout); redirections and TRYAGAIN are followed here.
    Reply command(const std::vector<std::string_view>& argv);
    void append(const std::vector<std::string_view>& argv);
    bool read_replies(std::vector<Reply>& out);
    // A node-wide command (INFO) to every master of the slot map, one after another: each one's
    // "host:port" and reply (nullptr when it did not answer). Empty when no map can be read.
    std::vector<std::pair<std::string, Reply>> each_master(
        const std::vector<std::string_view>& argv);

    const std::string& last_error() const { return last_error_; }

  private:
    struct Node {
        std::string host;
        int port = 0;
        std::string addr;  // "host:port": its name in logs and in NodeHealth
        redisContext* ctx = nullptr;
        bool probing = false;  // NodeHealth let this connection try the node while it is down
    };
    // One unit of a pipeline: a command, or MULTI ... EXEC, which must all go to one node.
    struct Unit {
        size_t first = 0, count = 1;
        int slot = -1;
    };

    size_t node_index(const std::string& host, int port);
    bool connect(Node& n);
    // A call to `n` begun at `since_ms` failed: the connection goes, and the process learns the
    // node is down.
    void drop_node(Node& n, const std::string& why, uint64_t since_ms);
    void answered(Node& n);
    bool refresh();
    void maybe_refresh();
    int node_for(int slot);
    Reply send(Node& n, const std::vector<std::string_view>& argv);
    bool run_block(const std::vector<std::vector<std::string_view>>& cmds, int slot, int fixed,
                   std::vector<Reply>& replies);
    Reply scan_all(const std::vector<std::string_view>& argv);
    // read_replies' steps: the pending commands cut into units; the units by the node serving
    // them, each node connected (the map read again once if one is missing or down); one node's
    // units pipelined to it, those that did not run (a redirection, NOSCRIPT) noted for `redo`.
    using Views = std::vector<std::vector<std::string_view>>;
    static std::vector<Unit> units_of(const Views& views);
    std::map<int, std::vector<size_t>> by_node(const std::vector<Unit>& units);
    void pipeline(Node& node, const std::vector<size_t>& us, const std::vector<Unit>& units,
                  Views& views, std::vector<Reply>& out, std::vector<size_t>& redo);
    void note_moved(const Redirect& r);
    static bool redirected(const Reply& r);

    const Config& cfg_;
    std::string name_;
    NodeHealth& health_;
    std::vector<Node> nodes_;      // seeds first, then every node ever named by the cluster
    std::vector<int> slots_;       // slot -> index in nodes_ of its master, -1 unknown
    std::vector<size_t> masters_;  // distinct masters, in slot order
    bool have_map_ = false;
    bool need_refresh_ = false;
    uint64_t next_refresh_ms_ = 0;
    uint64_t refresh_backoff_ms_ = 0;
    uint64_t moved_window_ms_ = 0;
    uint64_t moved_count_ = 0;
    std::vector<std::vector<std::string>> pending_;  // appended, not yet sent
    std::string last_error_;
};

}  // namespace cluster
}  // namespace hookq
