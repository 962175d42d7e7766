// A bounded-by-construction queue between two stages (the bound is the worker's max_inflight,
// enforced at the claim stage: nothing enters the pipeline without a slot).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

namespace hookq {

template <class T>
class Channel {
  public:
    void push(T v) {
        {
            std::lock_guard lock(mu_);
            q_.push_back(std::move(v));
        }
        cv_.notify_one();
    }

    // All of `vs` with one lock and one wake-up: a stage that produces in bursts (a claimed batch,
    // a loop turn's finished deliveries) costs its consumer one context switch, not one per item.
    void push_many(std::vector<T>& vs) {
        if (vs.empty()) {
            return;
        }
        {
            std::lock_guard lock(mu_);
            for (auto& v : vs) {
                q_.push_back(std::move(v));
            }
        }
        vs.clear();
        cv_.notify_one();
    }

    // Up to `max` items appended to `out`, waiting until `deadline` for the first. false on
    // timeout, or when closed and empty.
    template <class Clock, class Dur>
    bool pop_many(std::vector<T>& out, size_t max, std::chrono::time_point<Clock, Dur> deadline) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !q_.empty() || closed_; }) || q_.empty()) {
            return false;
        }
        for (size_t n = 0; n < max && !q_.empty(); ++n) {
            out.push_back(std::move(q_.front()));
            q_.pop_front();
        }
        return true;
    }

    // false on timeout, or when closed and empty.
    template <class Clock, class Dur>
    bool pop_until(T& out, std::chrono::time_point<Clock, Dur> deadline) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !q_.empty() || closed_; }) || q_.empty()) {
            return false;
        }
        out = std::move(q_.front());
        q_.pop_front();
        return true;
    }

    bool pop(T& out, std::chrono::milliseconds timeout) {
        return pop_until(out, std::chrono::steady_clock::now() + timeout);
    }

    void close() {
        {
            std::lock_guard lock(mu_);
            closed_ = true;
        }
        cv_.notify_all();
    }

    bool closed_and_empty() {
        std::lock_guard lock(mu_);
        return closed_ && q_.empty();
    }

    size_t size() {
        std::lock_guard lock(mu_);
        return q_.size();
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<T> q_;
    bool closed_ = false;
};

}  // namespace hookq
