#include "worker/store/redis_node_health.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace hookq::cluster {

NodeHealth& NodeHealth::process(uint64_t timeout_ms) {
    static NodeHealth health(timeout_ms);
    return health;
}

NodeHealth::Verdict NodeHealth::may_call(const std::string& node, uint64_t now_ms) {
    if (down_.load(std::memory_order_acquire) == 0) {
        return Verdict::go;
    }
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.down) {
        return Verdict::go;
    }
    State& s = it->second;
    if (prober_.load(std::memory_order_relaxed) || now_ms < s.next_probe_ms ||
        now_ms < s.probe_until_ms) {
        return Verdict::skip;
    }
    s.probe_until_ms = now_ms + 2 * timeout_ms_ + 1000;
    return Verdict::probe;
}

bool NodeHealth::answered(const std::string& node) {
    if (down_.load(std::memory_order_acquire) == 0) {
        return false;
    }
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end() || !it->second.down) {
        return false;
    }
    it->second = State{};
    down_.fetch_sub(1, std::memory_order_release);
    return true;
}

bool NodeHealth::failed(const std::string& node, uint64_t took_ms, uint64_t now_ms) {
    std::lock_guard lock(mu_);
    State& s = nodes_[node];
    const bool started = !s.down;
    const uint64_t first = slow(took_ms) ? 1000 : 50;
    const uint64_t cap = slow(took_ms) ? 5000 : 1000;
    s.backoff_ms = started ? first : std::clamp<uint64_t>(s.backoff_ms * 2, first, cap);
    s.next_probe_ms = now_ms + s.backoff_ms;
    s.probe_until_ms = 0;
    if (started) {
        s.down = true;
        down_.fetch_add(1, std::memory_order_release);
        news_ = true;  // the prober may be about to sleep on what it saw before
        outage_.notify_all();
    }
    return started;
}

bool NodeHealth::is_down(const std::string& node, uint64_t now_ms) {
    if (down_.load(std::memory_order_acquire) == 0) {
        return false;
    }
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    return it != nodes_.end() && it->second.down &&
           (prober_.load(std::memory_order_relaxed) || now_ms < it->second.next_probe_ms);
}

void NodeHealth::set_prober(bool on) {
    prober_.store(on, std::memory_order_relaxed);
}

std::vector<std::string> NodeHealth::due(uint64_t now_ms, uint64_t& next_ms) {
    std::vector<std::string> out;
    next_ms = std::numeric_limits<uint64_t>::max();
    std::lock_guard lock(mu_);
    for (auto& [node, s] : nodes_) {
        if (!s.down) {
            continue;
        }
        const uint64_t at = std::max(s.next_probe_ms, s.probe_until_ms);
        if (now_ms >= at) {
            s.probe_until_ms = now_ms + 2 * timeout_ms_ + 1000;
            out.push_back(node);
        } else {
            next_ms = std::min(next_ms, at);
        }
    }
    return out;
}

void NodeHealth::wait_until(uint64_t mono_ms) {
    using Clock = std::chrono::steady_clock;
    std::unique_lock lock(mu_);
    if (news_) {
        news_ = false;
        return;
    }
    if (mono_ms == std::numeric_limits<uint64_t>::max()) {
        outage_.wait(lock);
    } else {
        outage_.wait_until(lock, Clock::time_point(std::chrono::milliseconds(mono_ms)));
    }
    news_ = false;
}

void NodeHealth::wake() {
    std::lock_guard lock(mu_);
    news_ = true;
    outage_.notify_all();
}

}  // namespace hookq::cluster
