// Route stage: decodes what was claimed, picks the routes, and asks each destination's breaker
// whether to deliver now, deliver as the half-open probe, or park. Also runs the breaker reports
// the dispatcher sends back, so that all breaker Redis I/O happens on this thread.
#pragma once

#include <random>
#include <string>
#include <unordered_map>

#include "worker/pipeline/breaker.h"
#include "worker/pipeline/context.h"
#include "worker/pipeline/ordering.h"
#include "worker/store/redis_conn.h"

namespace hookq {

class Dispatcher;

class RouteStage {
  public:
    RouteStage(Shared& s, Dispatcher& d)
        : s_(s), dispatcher_(d), redis_(s.cfg, "breaker"), leases_(probe_leases(s.cfg.routes)) {}
    void run();

  private:
    void handle(const JobPtr& job);
    void handle(const BreakerReport& r);
    AcquireResult gate(const std::string& dest, uint64_t now, uint64_t probe_id);
    void release_parked(const std::string& dest, std::string_view why);
    void check_leases();
    void refresh_pauses();
    void pauses_from_audit(uint64_t at);
    bool paused(const Route& r) const;
    // fanout.h: true when the webhook went out as one delivery per event (an outcome "split").
    bool split(Job& j, const Route& r);
    // ordering.h, step 1. Anything but go has added the route's outcome (waiting, or parked).
    ordering::Entered enter_order(Job& j, const Route& r, uint32_t attempt);
    void transition(const std::string& dest, std::string_view t, std::string_view reason);

    Shared& s_;
    Dispatcher& dispatcher_;
    RedisConn redis_;
    BreakerCache cache_;
    std::unordered_map<std::string, uint64_t> leases_;  // destination -> probe lease ms
    // Destination -> when the probe lease that made us park its deliveries ends (Redis ms).
    std::unordered_map<std::string, uint64_t> lease_ends_;
    // Probe ids start at this process's start time so that a restarted worker with the same id
    // never reuses the token of a lease its previous run may still hold.
    uint64_t probe_seq_ = now_us();
    std::mt19937_64 rng_{std::random_device{}()};
    // Operator pauses (hookq:paused), fetched at most once a second on this thread's loop rather
    // than per delivery. pauses_at_ is the Redis time taken just before the fetch: a resume after
    // it makes a park decided from this copy stale (see park::kAck).
    std::unordered_map<std::string, bool> pauses_;
    uint64_t pauses_at_ = 0;        // 0: never read yet, from Redis or the audit log
    bool pauses_by_audit_ = false;  // the copy is the audit log's (see pauses_from_audit)
    bool pauses_unknown_logged_ = false;
    uint64_t pauses_next_mono_ = 0;
    std::vector<Delivery> to_dispatch_;  // this batch's deliveries, submitted together
};

}  // namespace hookq
