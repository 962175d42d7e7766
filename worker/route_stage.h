// Route stage: decodes what was claimed, picks the routes, and asks each destination's breaker
// whether to deliver now, deliver as the half-open probe, or park. Also runs the breaker reports
// the dispatcher sends back, so that all breaker Redis I/O happens on this thread.
#pragma once

#include <random>

#include "worker/breaker.h"
#include "worker/context.h"
#include "worker/redis_conn.h"

namespace hookq {

class Dispatcher;

class RouteStage {
  public:
    RouteStage(Shared& s, Dispatcher& d) : s_(s), dispatcher_(d), redis_(s.cfg, "breaker") {}
    void run();

  private:
    void handle(const JobPtr& job);
    void handle(const BreakerReport& r);
    AcquireResult gate(const std::string& dest, uint64_t now);
    void transition(const std::string& dest, std::string_view t, std::string_view reason);

    Shared& s_;
    Dispatcher& dispatcher_;
    RedisConn redis_;
    BreakerCache cache_;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace hookq
