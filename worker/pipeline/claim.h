// Claim stage: moves envelopes from each queue into this worker's inflight list (atomically, in
// batches), moves due retries back into the queue, keeps the heartbeat alive, and reaps the
// inflight lists of workers whose heartbeat expired.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "worker/pipeline/context.h"
#include "worker/store/redis_conn.h"

namespace hookq {

namespace claim_scripts {
// KEYS queue, inflight, landing, claimseq; ARGV n, seq, room_bytes -> claimed elements: at most
// n, and no more once their bytes reach room_bytes (but at least one)
extern const std::string_view kClaim;
// KEYS inflight, claimseq; ARGV seq -> the elements claim `seq` moved, if it ran
extern const std::string_view kRecover;
extern const std::string_view kMoveDue;  // KEYS retry, queue; ARGV now_ms, limit -> count
// KEYS inflight, queue, workers, landing, claimseq, heartbeat; ARGV id ('' for our own)
// -> count, or -1 when the heartbeat is there after all (someone else's only)
extern const std::string_view kRequeue;
}  // namespace claim_scripts

// Keeps this worker's heartbeat (and Shared::clock) fresh from start-up until the process exits,
// on its own thread and connection: the claim thread stops at SIGTERM, yet a draining worker still
// holds its inflight list and must not be reaped while it delivers it.
class Heartbeat {
  public:
    explicit Heartbeat(Shared& s) : s_(s), redis_(s.cfg, "heartbeat") {}
    ~Heartbeat() { stop(); }

    // One heartbeat and registration now; false while Redis does not take it.
    bool beat();
    void start();
    void stop();
    // Local monotonic ms until which no reaper can find our heartbeat gone: the send time of the
    // last heartbeat Redis accepted, plus the TTL. Past it, another worker may requeue our work.
    uint64_t lease_until_ms() const { return lease_until_ms_.load(); }
    // Forget the heartbeat at a clean exit (after the stop()).
    void remove();

  private:
    bool sync_clock();
    void run();

    Shared& s_;
    RedisConn redis_;
    std::atomic<uint64_t> lease_until_ms_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

class ClaimStage {
  public:
    explicit ClaimStage(Shared& s) : s_(s), redis_(s.cfg, "claim") {}

    // Our own leftovers from a previous run returned to the queue (after a first heartbeat).
    // false while Redis is unreachable (the caller retries).
    bool startup();
    void run();
    // Elements still in our inflight (and landing) lists, as Redis has them; -1 if it cannot say.
    // Only once run() has returned.
    int64_t left_inflight();
    // After a complete drain: deregister so the reaper has nothing to look at. false if something
    // is left in Redis (then the registration stays, for the reaper or this id's next start).
    bool deregister();

  private:
    void move_due();
    void reap();
    std::vector<std::string> scan_keys(const std::string& pattern);
    size_t claim_batch(size_t qi, size_t n, int64_t room_bytes);
    bool recover(size_t qi);
    size_t accept(size_t qi, const redisReply& items);
    // On Redis Cluster, a queue whose master did not answer is left alone for a while (claims,
    // due retries, reaping): each call to a master that is down costs up to [redis] timeout, and
    // one thread serves every queue, so without this one lost master would slow them all.
    bool reachable(size_t qi, uint64_t now) const;
    void answered(size_t qi);
    void unanswered(size_t qi, uint64_t now);

    struct Backoff {
        uint64_t until_ms = 0;
        uint64_t ms = 0;
    };

    Shared& s_;
    RedisConn redis_;
    size_t rr_ = 0;
    uint64_t seq_ = 0;
    std::vector<RouteMsg> claimed_;  // a batch on its way to the route stage (reused)
    uint64_t next_sweep_ms_ = 0;     // reap() also SCANs for lists of unregistered workers
    // Per queue, a claim script sent without an answer (timeout, dropped connection): it may have
    // run, or may still run when Redis reads it. Nothing more is claimed on that queue until it is
    // settled, so that what it moved is still at the head of the queue's inflight list. The other
    // queues' claims go on: their lists, and on Redis Cluster perhaps their master, are others.
    std::vector<std::optional<uint64_t>> unknown_;
    std::vector<Backoff> backoff_;  // per queue; only on Redis Cluster
    // Redis answered LOADING (restarted, reading its dataset): said once, then waited out quietly.
    bool loading_ = false;
};

}  // namespace hookq
