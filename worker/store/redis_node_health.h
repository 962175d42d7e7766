// What every Redis Cluster connection of one process knows about each node's health.
//
// Each stage has its own ClusterClient (its own connections), so before this was shared each one
// found out for itself that a node was gone, and paid for it: a dead node costs a refused connect,
// cheap, but a hung one (SIGSTOPped, swapping, a partition that drops packets) accepts the
// connection and answers nothing, so every stage's every call to it waited out [redis] timeout
// before failing. Now the first failure marks the node down for the whole process:
//
//   1. up: calls go ahead.
//   2. a call fails (connect refused, reply lost or timed out): down. The outage is logged once for
//      the process, naming the connection that found it.
//   3. down: every call to it fails at once, until the backoff has passed. A failure that was
//      quick (refused) backs off 50 ms doubling to 1 s; one that cost a timeout backs off 1 s
//      doubling to 5 s, since each probe of a hung node costs its caller a whole timeout again.
//   4. backoff passed: the next caller, and only that one, may try: the probe. Its own failure
//      goes back to 3 with the next backoff; any reply from the node (an error reply too: the
//      node answered) brings it back to 1, logged once.
//
// A probe whose caller never reports (it cannot happen in ClusterClient, but a leak must not keep
// a node down for ever) lapses after twice the timeout plus a second.
//
// In hookq-worker a prober (redis_node_prober.h) does step 4 on a thread of its own: no caller is
// ever given `probe`, so no stage waits out a hung node's timeout again after the call that found
// it. hookqctl, which lives for one command, has none and probes from its calls as above.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hookq::cluster {

class NodeHealth {
  public:
    enum class Verdict {
        go,     // up: call it
        probe,  // down, and this caller may try once: report what happens
        skip,   // down: fail at once
    };

    explicit NodeHealth(uint64_t timeout_ms) : timeout_ms_(timeout_ms) {}

    Verdict may_call(const std::string& node, uint64_t now_ms);
    // The node answered. Returns true when that ends an outage (the caller logs it).
    bool answered(const std::string& node);
    // A call failed after `took_ms`. Returns true when that starts an outage (the caller logs it).
    bool failed(const std::string& node, uint64_t took_ms, uint64_t now_ms);

    bool is_down(const std::string& node, uint64_t now_ms);
    // Whether a failure that took `took_ms` counts as a timeout (a hung node) for the backoff.
    bool slow(uint64_t took_ms) const { return took_ms * 2 >= timeout_ms_; }

    // The process's one table, sized by [redis] timeout of the first caller.
    static NodeHealth& process(uint64_t timeout_ms);

    // From now on every probe is the prober's: callers are told `skip` while a node is down.
    void set_prober(bool on);
    // The prober's side. `due` returns the down nodes whose probe is due at `now_ms`, each marked
    // under way (its result goes to answered() or failed(), as a caller's would), and sets
    // `next_ms` to when the next one falls due (UINT64_MAX: none down). `wait_until` sleeps until
    // that steady-clock time, an outage starting, or wake().
    std::vector<std::string> due(uint64_t now_ms, uint64_t& next_ms);
    void wait_until(uint64_t mono_ms);
    void wake();

  private:
    struct State {
        bool down = false;
        uint64_t next_probe_ms = 0;
        uint64_t backoff_ms = 0;
        uint64_t probe_until_ms = 0;  // a probe is under way until then
    };

    const uint64_t timeout_ms_;
    std::mutex mu_;
    std::condition_variable outage_;
    bool news_ = false;  // an outage started, or wake(): the prober's next wait returns at once
    std::unordered_map<std::string, State> nodes_;
    std::atomic<bool> prober_{false};
    // Nodes down right now: while 0, the common case, no call takes the lock.
    std::atomic<int> down_{0};
};

}  // namespace hookq::cluster
