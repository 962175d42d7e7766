// /metrics: the delivery counters live, the gauges (queues, breakers, pauses, Redis memory,
// destination health, SLOs) from a snapshot that a thread of ours refreshes with its own
// connections, so that a scrape never waits on Redis or PostgreSQL. The refresh runs only while
// someone scrapes: an unwatched worker puts no load on PostgreSQL.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "worker/admin/http.h"
#include "worker/admin/session.h"
#include "worker/config.h"
#include "worker/metrics.h"

namespace hookq::admin {

class MetricsPage {
  public:
    // `cfg`: as for SessionPool, the admin connections' Redis timeout in it.
    explicit MetricsPage(const Config& cfg) : cfg_(cfg) {}
    ~MetricsPage() { stop(); }
    MetricsPage(const MetricsPage&) = delete;
    MetricsPage& operator=(const MetricsPage&) = delete;

    void start();
    void stop();  // idempotent

    // With [admin] metrics_public = false, a token of any role that sees every source.
    HttpReply answer(MHD_Connection* c);

  private:
    void loop();
    void refresh(Session& s);

    const Config& cfg_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    uint64_t last_scrape_ms_ = 0;  // steady clock; the refresh pauses when nobody scrapes
    uint64_t done_ms_ = 0;         // the last refresh, successful or not
    uint64_t ok_ms_ = 0;           // the last successful one
    Json status_;                  // of the last successful refresh
    Json slo_, health_checks_;     // each of its last successful computation
    metrics::SnapshotInfo info_;
    std::thread thread_;
};

}  // namespace hookq::admin
