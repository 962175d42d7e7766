#include "ngx_module/redis_router.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <string>

#include "shared/redis_slot.h"

namespace hookq::edge {
namespace {

// At most one CLUSTER SLOTS per this long (a burst of MOVED, or a dead master's reconnects, ask
// once); and while a master in the map is down, asked again this often until its replica has
// taken over (cluster-node-timeout plus the election).
constexpr ngx_msec_t kRefreshInterval = 100;
constexpr ngx_msec_t kDegradedPoll = 250;
constexpr ngx_msec_t kRetryAfterFailure = 1000;
// A command follows at most this many MOVED/ASK: more means a map in flux, and the provider's
// retry (503) is the better wait.
constexpr uint8_t kMaxRedirects = 3;

bool numeric_ip(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

RedisRouter& RedisRouter::instance() noexcept {
    // One per worker process; constructed on first use after fork.
    static RedisRouter router;
    return router;
}

bool RedisRouter::start(const MainConf& conf, ngx_log_t* log) noexcept {
    conf_ = &conf;
    log_ = log;
    if (!RedisLink::init_scripts(log))
        return false;
    try {
        if (!conf.cluster) {
            nodes_.push_back(std::make_unique<RedisLink>());
            single_ = nodes_.back().get();
            single_->start(conf, conf.redis, false, log);
            return true;
        }
        slots_ = std::make_unique<RedisLink*[]>(cluster::kSlots);
        std::fill_n(slots_.get(), cluster::kSlots, nullptr);
        for (seeds_ = 0; seeds_ < conf.cluster_seeds.size(); seeds_++)
            nodes_.push_back(std::make_unique<RedisLink>());
    } catch (...) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "hookq: out of memory setting up the redis links");
        return false;
    }
    refresh_timer_.data = this;
    refresh_timer_.log = log;
    refresh_timer_.handler = on_refresh_timer;
    refresh_timer_.cancelable = 1;
    refresh_wanted_ = true;  // the first seed that is ready is asked for the map
    for (size_t i = 0; i < seeds_; i++)
        nodes_[i]->start(conf, conf.cluster_seeds[i], true, log);
    return true;
}

void RedisRouter::stop() noexcept {
    if (refresh_timer_.timer_set)
        ngx_del_timer(&refresh_timer_);
    for (auto& n : nodes_)
        n->stop();
    waiting_.drain([](PendingCommand* pc) { RedisLink::release(pc); });
}

PendingCommand* RedisRouter::send_cluster(int slot, IngestArgs* args, IngestCallback cb,
                                          void* owner) noexcept {
    RedisLink* link = slots_[slot];
    if (link != nullptr) {
        // The slot's master is down (or being reconnected to): 503 now, and find out whether a
        // replica has taken over.
        if (!link->usable()) {
            schedule_refresh(0);
            return nullptr;
        }
        return link->send_ingest(args, cb, owner, slot);
    }
    if (have_map_) {  // a slot no master serves: the cluster is incomplete
        schedule_refresh(0);
        return nullptr;
    }
    // The first map is on its way (a worker just started): held, as a single link holds its
    // commands during its handshake.
    if (map_failed_ || !any_usable())
        return nullptr;
    PendingCommand* pc = RedisLink::acquire();
    if (pc == nullptr)
        return nullptr;
    pc->owner = owner;
    pc->callback = cb;
    pc->args = args;
    pc->sent_at = ngx_current_msec;
    pc->slot = slot;
    pc->link = nullptr;
    waiting_.push(pc);
    return pc;
}

bool RedisRouter::any_usable() const noexcept {
    return std::any_of(nodes_.begin(), nodes_.end(), [](auto& n) { return n->usable(); });
}

RedisLink* RedisRouter::node(std::string_view host, int port) noexcept {
    for (auto& n : nodes_)
        if (n->address().host == host && n->address().port == port)
            return n.get();
    try {
        RedisAddress a;
        a.host = std::string(host);
        a.port = port;
        // Resolving a name would block the event loop: the cluster must announce IPs (its
        // default).
        if (!numeric_ip(a.host)) {
            ngx_log_error(NGX_LOG_ERR, log_, 0,
                          "hookq: redis cluster node \"%s\" is not an IP address: not used",
                          a.host.c_str());
            return nullptr;
        }
        a.display = (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
                    std::to_string(port);
        a.password = conf_->cluster_seeds.front().password;
        nodes_.push_back(std::make_unique<RedisLink>());
        RedisLink* link = nodes_.back().get();
        link->start(*conf_, a, true, log_);
        return link;
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, log_, 0, "hookq: out of memory adding a redis cluster node");
        return nullptr;
    }
}

void RedisRouter::on_link_ready(RedisLink*) noexcept {
    if (refresh_wanted_ || !have_map_)
        refresh();
}

void RedisRouter::on_link_down(RedisLink*) noexcept {
    schedule_refresh(0);
    if (!have_map_ && !any_usable())
        fail_waiting();
}

void RedisRouter::schedule_refresh(ngx_msec_t delay) noexcept {
    if (refresh_timer_.timer_set || refreshing_)
        return;
    auto since = static_cast<ngx_msec_int_t>(ngx_current_msec - last_refresh_);
    if (since < static_cast<ngx_msec_int_t>(kRefreshInterval))
        delay = std::max<ngx_msec_t>(delay, kRefreshInterval - static_cast<ngx_msec_t>(since));
    ngx_add_timer(&refresh_timer_, std::max<ngx_msec_t>(delay, 1));
}

void RedisRouter::on_refresh_timer(ngx_event_t* ev) noexcept {
    static_cast<RedisRouter*>(ev->data)->refresh();
}

void RedisRouter::refresh() noexcept {
    if (refreshing_)
        return;
    last_refresh_ = ngx_current_msec;
    // Any ready node will do, taken in turn so that one answering stale maps is not asked forever.
    for (size_t i = 0; i < nodes_.size(); i++) {
        RedisLink* link = nodes_[(next_ask_ + i) % nodes_.size()].get();
        if (link->ready() && link->query_slots(on_slots)) {
            next_ask_ = (next_ask_ + i + 1) % nodes_.size();
            refreshing_ = true;
            refresh_wanted_ = false;
            return;
        }
    }
    // None ready: the seeds are (re)connected to, and the first that is ready is asked.
    refresh_wanted_ = true;
    for (size_t i = 0; i < seeds_; i++)
        nodes_[i]->set_wanted(true);
    if (!have_map_ && !any_usable())
        fail_waiting();
}

void RedisRouter::on_slots(RedisLink* from, const void* reply) noexcept {
    RedisRouter& self = instance();
    self.refreshing_ = false;
    auto* r = static_cast<const redisReply*>(reply);
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
        if (r != nullptr)
            ngx_log_error(NGX_LOG_ERR, self.log_, 0, "hookq: redis %s: CLUSTER SLOTS failed: %*s",
                          from->address().display.c_str(),
                          r->type == REDIS_REPLY_ERROR ? r->len : 0,
                          r->type == REDIS_REPLY_ERROR ? r->str : "");
        self.schedule_refresh(kRetryAfterFailure);
        // No map at all (say, the seeds are not in cluster mode): 503 now, not at the timeout.
        if (r != nullptr && !self.have_map_) {
            self.map_failed_ = true;
            self.fail_waiting();
        } else if (!self.have_map_ && !self.any_usable()) {
            self.fail_waiting();
        }
        return;
    }
    RedisLink** slots = self.slots_.get();
    std::fill_n(slots, cluster::kSlots, nullptr);
    std::vector<RedisLink*> used;
    for (size_t i = 0; i < r->elements; i++) {
        // [start, end, [ip, port, id, ...], replicas...]
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long start = e->element[0]->integer, end = e->element[1]->integer;
        if (start < 0 || end >= cluster::kSlots || start > end)
            continue;
        const redisReply* m = e->element[2];
        std::string_view host(m->element[0]->str, m->element[0]->len);
        // An empty (or "?") address: the node asked, as it does not know its own.
        if (host.empty() || host == "?")
            host = from->address().host;
        RedisLink* link = self.node(host, static_cast<int>(m->element[1]->integer));
        if (link == nullptr)
            continue;
        std::fill(slots + start, slots + end + 1, link);
        try {
            used.push_back(link);
        } catch (...) {
        }
    }
    self.have_map_ = true;
    self.map_failed_ = false;
    bool degraded = std::any_of(slots, slots + cluster::kSlots, [](auto* l) { return !l; });
    for (size_t i = 0; i < self.nodes_.size(); i++) {
        RedisLink* link = self.nodes_[i].get();
        bool mapped = std::find(used.begin(), used.end(), link) != used.end();
        // A node out of the map (a failed master, now replaced) is not reconnected to; the seeds
        // always are, to be asked for the map.
        link->set_wanted(mapped || i < self.seeds_);
        degraded |= mapped && !link->ready();
    }
    self.dispatch_waiting();
    if (degraded)
        self.schedule_refresh(kDegradedPoll);
}

void RedisRouter::dispatch_waiting() noexcept {
    waiting_.drain([this](PendingCommand* pc) {
        RedisLink* link = slots_[pc->slot];
        if (pc->owner == nullptr)
            RedisLink::release(pc);
        else if (link == nullptr)
            RedisLink::fail_command(pc);
        else
            link->enqueue(pc);  // fails it when the link is down
    });
}

void RedisRouter::fail_waiting() noexcept {
    waiting_.drain([](PendingCommand* pc) { RedisLink::fail_command(pc); });
}

void RedisRouter::redirect(PendingCommand* list, bool ask, int slot, std::string_view host,
                           int port, RedisLink* from) noexcept {
    RedisLink* target = node(host, port);
    if (!ask) {
        // Only this slot is known to have moved; the rest of the map soon.
        if (target != nullptr) {
            slots_[slot] = target;
            target->set_wanted(true);  // a node that had left the map may own slots again
        }
        schedule_refresh(0);
    }
    Batch* again = nullptr;
    PendingCommand* tail = nullptr;
    while (list != nullptr) {
        PendingCommand* pc = list;
        list = pc->next;
        pc->next = nullptr;
        if (pc->owner == nullptr) {
            RedisLink::release(pc);
        } else if (target == nullptr || ++pc->redirects > kMaxRedirects) {
            if (target != nullptr) {
                ngx_log_error(NGX_LOG_ERR, log_, 0,
                              "hookq: redis %s: slot %d redirected %d times: answering 503",
                              from->address().display.c_str(), slot, kMaxRedirects);
            }
            RedisLink::fail_command(pc);
        } else if (!ask) {
            target->enqueue(pc);
        } else {
            if (again == nullptr && (again = RedisLink::acquire_batch()) == nullptr) {
                RedisLink::fail_command(pc);
                continue;
            }
            if (tail != nullptr)
                tail->next = pc;
            else
                again->head = pc;
            tail = pc;
            again->size++;
        }
    }
    if (again != nullptr && !target->send_asking(again))
        RedisLink::fail_batch(again);
}

}  // namespace hookq::edge
