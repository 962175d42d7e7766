#include "worker/store/redis_node_prober.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

#include "worker/log.h"
#include "worker/store/redis_cluster.h"

namespace hookq::cluster {

NodeProber::NodeProber(const Config& cfg)
    : NodeProber(cfg, NodeHealth::process(cfg.redis_timeout_ms)) {}

NodeProber::NodeProber(const Config& cfg, NodeHealth& health) : cfg_(cfg), health_(health) {}

NodeProber::~NodeProber() {
    stop();
}

void NodeProber::start() {
    if (cfg_.redis_cluster.empty() || thread_.joinable()) {
        return;
    }
    health_.set_prober(true);
    thread_ = std::thread([this] { run(); });
}

void NodeProber::stop() {
    if (!thread_.joinable()) {
        return;
    }
    stop_.store(true);
    health_.wake();
    thread_.join();
    // Callers probe for themselves again (nothing in the process calls Redis by then, but a
    // node must never stay down for want of a prober).
    health_.set_prober(false);
}

void NodeProber::run() {
    while (!stop_.load()) {
        probes_.remove_if([](Probe& p) {
            if (!p.done.load()) {
                return false;
            }
            p.thread.join();
            return true;
        });
        uint64_t next = 0;
        for (const std::string& node : health_.due(mono_ms(), next)) {
            Probe& p = probes_.emplace_back();
            p.thread = std::thread([this, node, &p] { probe_and_report(node, p); });
        }
        // A node under way is not due again until its probe reports (which wakes this wait) or
        // lapses: `next` accounts for both.
        health_.wait_until(next);
    }
    for (Probe& p : probes_) {
        p.thread.join();  // each within [redis] timeout
    }
    probes_.clear();
}

void NodeProber::probe_and_report(const std::string& node, Probe& p) {
    uint64_t since = mono_ms();
    if (probe(node)) {
        if (health_.answered(node)) {
            log::info("redis node connected", {{"conn", "prober"}, {"node", node}});
        }
    } else {
        uint64_t now = mono_ms();
        health_.failed(node, now - since, now);
    }
    p.done.store(true);
    health_.wake();  // its next probe, or none, is known now
}

bool NodeProber::probe(const std::string& node) {
    size_t colon = node.rfind(':');
    if (colon == std::string::npos) {
        return false;
    }
    std::string host = node.substr(0, colon);
    int port = std::atoi(node.c_str() + colon + 1);
    timeval tv = to_timeval(cfg_.redis_timeout_ms);
    redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, tv);
    bool ok = ctx && !ctx->err && redisSetTimeout(ctx, tv) == REDIS_OK;
    if (ok && !cfg_.redis_password.empty()) {
        // A refused password fails the probe, as it fails a stage's connection: the node
        // would only be found down again by the next call.
        Reply r(static_cast<redisReply*>(
            redisCommand(ctx, "AUTH %b", cfg_.redis_password.data(), cfg_.redis_password.size())));
        ok = r && r->type != REDIS_REPLY_ERROR;
    }
    if (ok) {
        Reply r(static_cast<redisReply*>(redisCommand(ctx, "PING")));
        ok = r != nullptr;
    }
    if (ctx) {
        redisFree(ctx);
    }
    return ok;
}

}  // namespace hookq::cluster
