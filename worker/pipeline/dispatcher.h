// Deliver stage: one thread runs a libcurl multi handle with many transfers in flight. Connections
// stay in the multi handle's cache, so each destination keeps its keep-alive connections. Nothing
// on this thread blocks: Redis and PostgreSQL work is handed to the other stages.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "worker/pipeline/context.h"
#include "worker/pipeline/rate_limiter.h"

namespace hookq {

class Dispatcher {
  public:
    explicit Dispatcher(Shared& s);
    ~Dispatcher();

    void submit(std::vector<Delivery> ds);  // any thread
    void run();
    // Stops the loop; transfers still running are abandoned (their jobs stay in inflight and
    // are redelivered later, which is what at-least-once allows).
    void stop();

    struct Transfer;  // public for curl's callbacks

  private:
    struct Bucket {
        std::deque<Delivery> waiting;  // for a token of the route's shared rate limit
    };

    // Per destination at most max_connections_per_host transfers are handed to curl; the rest wait
    // here. Queued inside curl they would burn their timeout before being sent, and curl's
    // bookkeeping grows with every handle it holds.
    struct Dest {
        size_t active = 0;
        std::deque<Delivery> pending;
    };
    void admit(Delivery d);
    Dest& dest_of(const Delivery& d);
    void start(Delivery d);
    void finish(Transfer* t, CURLcode res);
    void complete(const JobPtr& job);
    void release_waiting(uint64_t now);
    // Finishes the transfers whose outcome is known but whose body has not arrived in time.
    void cut_slow_bodies(uint64_t now);

    Shared& s_;
    CURLM* multi_ = nullptr;
    std::mutex mu_;
    std::vector<Delivery> incoming_;
    std::atomic<bool> stop_{false};
    std::vector<Bucket> buckets_;
    RateLimiter limiter_;
    std::vector<CURL*> idle_handles_;
    std::unordered_set<Transfer*> active_;
    std::vector<Transfer*> draining_;  // final status in, body still being read (a few at most)
    // What a loop turn finished, handed on at its end in one push each (one wake-up per turn).
    std::vector<RecordMsg> done_;
    std::vector<RouteMsg> reports_;
    std::unordered_map<std::string, Dest> dests_;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace hookq
