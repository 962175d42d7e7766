// Claim stage: moves envelopes from each queue into this worker's inflight list (atomically, in
// batches), moves due retries back into the queue, keeps the heartbeat alive, and reaps the
// inflight lists of workers whose heartbeat expired.
#pragma once

#include "worker/context.h"
#include "worker/redis_conn.h"

namespace hookq {

namespace claim_scripts {
extern const std::string_view kClaim;    // KEYS queue, inflight; ARGV n -> claimed elements
extern const std::string_view kMoveDue;  // KEYS retry, queue; ARGV now_ms, limit -> count
extern const std::string_view kRequeue;  // KEYS inflight, queue, workers; ARGV id -> count
}  // namespace claim_scripts

class ClaimStage {
  public:
    explicit ClaimStage(Shared& s) : s_(s), redis_(s.cfg, "claim") {}

    // Heartbeat, registration, and our own leftovers from a previous run returned to the queue.
    // false while Redis is unreachable (the caller retries).
    bool startup();
    void run();
    // After a complete drain: deregister so the reaper has nothing to look at.
    void deregister();

  private:
    bool sync_clock();  // Shared::clock from Redis TIME
    bool heartbeat();
    void move_due();
    void reap();
    size_t claim_batch(size_t qi, size_t n);

    Shared& s_;
    RedisConn redis_;
    size_t rr_ = 0;
};

}  // namespace hookq
