// Where each ingest goes: the worker's one Redis link (hookq_redis), or, on a Redis Cluster
// (hookq_redis_cluster), the link to the master that owns the queue's slot. Every key of a queue
// carries the hash tag {queue}, so a queue's slot is known at configuration time (LocConf::slot)
// and only the slot -> master map is learnt, from CLUSTER SLOTS: at start, soon after a MOVED,
// and after losing a master (throttled; polled while a mapped master is down, until the
// failover has promoted its replica). hiredis 0.14 knows nothing of clusters: this is all of it.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "ngx_module/redis_link.h"

namespace hookq::edge {

class RedisRouter {
  public:
    static RedisRouter& instance() noexcept;

    bool start(const MainConf& conf, ngx_log_t* log) noexcept;
    void stop() noexcept;

    // nullptr: no connection can take it right now (answer 503 at once).
    PendingCommand* send_ingest(int slot, IngestArgs* args, IngestCallback cb,
                                void* owner) noexcept {
        if (single_ != nullptr)
            return single_->send_ingest(args, cb, owner);
        return send_cluster(slot, args, cb, owner);
    }
    void timed_out(PendingCommand* pc) noexcept {
        if (pc->link != nullptr)
            pc->link->timed_out(pc);
        else
            pc->owner = nullptr;  // still waiting for the slot map: dropped when it comes
    }

    // From the cluster's links.
    void on_link_ready(RedisLink* link) noexcept;
    void on_link_down(RedisLink* link) noexcept;
    void redirect(PendingCommand* list, bool ask, int slot, std::string_view host, int port,
                  RedisLink* from) noexcept;

  private:
    PendingCommand* send_cluster(int slot, IngestArgs* args, IngestCallback cb,
                                 void* owner) noexcept;
    RedisLink* node(std::string_view host, int port) noexcept;
    bool any_usable() const noexcept;
    void refresh() noexcept;
    void schedule_refresh(ngx_msec_t delay) noexcept;
    void dispatch_waiting() noexcept;
    void fail_waiting() noexcept;
    static void on_slots(RedisLink* link, const void* reply) noexcept;
    static void on_refresh_timer(ngx_event_t* ev) noexcept;

    const MainConf* conf_ = nullptr;
    ngx_log_t* log_ = nullptr;
    RedisLink* single_ = nullptr;
    // Links are never freed while the worker runs (slots_ and commands point at them); a node that
    // left the map is only no longer reconnected to.
    std::vector<std::unique_ptr<RedisLink>> nodes_;
    size_t seeds_ = 0;  // nodes_[0, seeds_) are hookq_redis_cluster's seeds
    std::unique_ptr<RedisLink*[]> slots_;
    bool have_map_ = false;
    bool map_failed_ = false;      // no map yet, and the last CLUSTER SLOTS was refused
    bool refreshing_ = false;      // a CLUSTER SLOTS is in flight
    bool refresh_wanted_ = false;  // no node was ready to ask: ask the next one that is
    ngx_msec_t last_refresh_ = 0;
    size_t next_ask_ = 0;
    ngx_event_t refresh_timer_{};
    // Commands that came before the first slot map: sent when it comes, 503 if it cannot.
    CommandQueue waiting_;
};

}  // namespace hookq::edge
