#include "worker/store/redis_node_health.h"

#include <algorithm>

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
    if (now_ms < s.next_probe_ms || now_ms < s.probe_until_ms) {
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
    }
    return started;
}

bool NodeHealth::is_down(const std::string& node, uint64_t now_ms) {
    if (down_.load(std::memory_order_acquire) == 0) {
        return false;
    }
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node);
    return it != nodes_.end() && it->second.down && now_ms < it->second.next_probe_ms;
}

}  // namespace hookq::cluster
