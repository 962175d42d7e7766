// Probes the Redis Cluster nodes found down, on a thread of its own, so that no stage waits on one.
//
// Without it the first call after a down node's backoff is the probe (NodeHealth's step 4), and a
// hung node (it accepts the connection and answers nothing) makes that caller wait out [redis]
// timeout every time: the claim loop, or the route stage whose pause read comes every second,
// stood still that long every few seconds, and with it every queue. With it, every stage's calls
// to a down node fail at once until the prober hears from the node again:
//
//   1. Sleeps until a down node's probe falls due (its backoff, as NodeHealth sets it), an outage
//      starts, or a probe ends.
//   2. Probes each node due, each on a thread of its own, so that a hung node, whose probe holds
//      for the whole timeout, delays neither the others' probes nor the next ones falling due:
//      connect, AUTH if a password is set, PING, within [redis] timeout. A reply to PING (an
//      error reply too, LOADING say) is the node answering: up again, logged once. No reply, or
//      AUTH refused (as for a stage's connection): back to NodeHealth's backoff, longer after a
//      timeout than after a refusal.
//
// One per hookq-worker process, and only with [redis] cluster: a single Redis has one connection
// per stage and no other node to turn to.
#pragma once

#include <atomic>
#include <list>
#include <string>
#include <thread>

#include "worker/config.h"
#include "worker/store/redis_node_health.h"

namespace hookq::cluster {

class NodeProber {
  public:
    explicit NodeProber(const Config& cfg);  // with the process's NodeHealth
    NodeProber(const Config& cfg, NodeHealth& health);
    ~NodeProber();
    NodeProber(const NodeProber&) = delete;
    NodeProber& operator=(const NodeProber&) = delete;

    void start();  // no thread without [redis] cluster
    void stop();

  private:
    // One node's probe under way. A list keeps each where its thread finds it.
    struct Probe {
        std::thread thread;
        std::atomic<bool> done{false};
    };

    void run();
    void probe_and_report(const std::string& node, Probe& p);
    bool probe(const std::string& node);

    const Config& cfg_;
    NodeHealth& health_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::list<Probe> probes_;  // the prober thread's only
};

}  // namespace hookq::cluster
