// The database's upkeep, on its own thread and connection, off the delivery path: hourly, monthly
// partitions created ahead and the statistics rollups trimmed and compacted; retention applied
// every [retention] interval. Every
// worker runs it; an advisory lock makes one cleanup run at a time, and the partition function
// tolerates a concurrent creation.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "worker/config.h"
#include "worker/store/pg.h"

namespace hookq {

class Maintenance {
  public:
    explicit Maintenance(const Config& cfg) : cfg_(cfg), pg_(cfg.postgres_dsn) {}
    ~Maintenance() { stop(); }
    Maintenance(const Maintenance&) = delete;
    Maintenance& operator=(const Maintenance&) = delete;

    void start();
    void stop();

  private:
    void run();
    bool connected();
    void hourly();  // partitions ahead, statistics rollups
    void retention();

    const Config& cfg_;
    Pg pg_;
    bool down_logged_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace hookq
