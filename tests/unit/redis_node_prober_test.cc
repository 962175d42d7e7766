// The prober against nodes that are real sockets on loopback: hung ones accept a connection and
// never answer (a SIGSTOPped Redis), a live one answers PING.
#include "worker/store/redis_node_prober.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "worker/clock.h"

using hookq::mono_ms;
using hookq::cluster::NodeHealth;
using hookq::cluster::NodeProber;

namespace {

class FakeNode {
  public:
    explicit FakeNode(bool answers) : answers_(answers) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            ADD_FAILURE() << "cannot listen on loopback";
        }
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeNode() {
        stop_.store(true);
        thread_.join();
        ::close(fd_);
    }
    FakeNode(const FakeNode&) = delete;
    FakeNode& operator=(const FakeNode&) = delete;

    std::string name() const { return "127.0.0.1:" + std::to_string(port_); }
    uint64_t first_connect_ms() const { return first_connect_ms_.load(); }  // 0: none yet

  private:
    void serve() {
        std::vector<pollfd> fds{{fd_, POLLIN, 0}};
        while (!stop_.load()) {
            if (::poll(fds.data(), fds.size(), 20) <= 0) {
                continue;
            }
            if (fds[0].revents & POLLIN) {
                int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    uint64_t zero = 0;
                    first_connect_ms_.compare_exchange_strong(zero, mono_ms());
                    fds.push_back({c, POLLIN, 0});
                }
            }
            for (size_t i = 1; i < fds.size(); ++i) {
                if (!(fds[i].revents & POLLIN)) {
                    continue;
                }
                char buf[256];
                ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
                if (n > 0 && answers_) {
                    (void)!::write(fds[i].fd, "+PONG\r\n", 7);
                }
            }
        }
        for (size_t i = 1; i < fds.size(); ++i) {
            ::close(fds[i].fd);
        }
    }

    const bool answers_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> first_connect_ms_{0};
    std::thread thread_;
};

TEST(NodeProber, AHungNodeDoesNotHoldUpTheOthers) {
    // Wide margins: CI runs the tests side by side on two cores. One after another, the five probes
    // would start over three timeouts apart.
    constexpr uint64_t kTimeoutMs = 1000;
    hookq::Config cfg;
    cfg.redis_cluster = {{"127.0.0.1", 1}};  // only needs to be set: the nodes come from `health`
    cfg.redis_timeout_ms = kTimeoutMs;
    NodeHealth health(kTimeoutMs);

    std::vector<std::unique_ptr<FakeNode>> hung;
    for (int i = 0; i < 4; ++i) {
        hung.push_back(std::make_unique<FakeNode>(false));
    }
    FakeNode alive(true);
    // All five found hung at once: each falls due for its probe a second later, together.
    uint64_t t0 = mono_ms();
    for (const auto& n : hung) {
        health.failed(n->name(), kTimeoutMs, t0);
    }
    health.failed(alive.name(), kTimeoutMs, t0);

    NodeProber prober(cfg, health);
    prober.start();
    uint64_t back = 0;
    while (mono_ms() < t0 + 10 * kTimeoutMs) {
        if (!health.is_down(alive.name(), mono_ms())) {
            back = mono_ms();
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_NE(back, 0u) << "the live node was never found back";
    // Probed one after another, the live node would wait for every hung probe before it, a whole
    // timeout each.
    EXPECT_LT(back - t0, 1000 + kTimeoutMs);
    // Each fake node notes a connection when its thread accepts it, which may come after the live
    // node's answer.
    uint64_t first = alive.first_connect_ms(), last = first;
    for (const auto& n : hung) {
        while (n->first_connect_ms() == 0 && mono_ms() < t0 + 10 * kTimeoutMs) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        ASSERT_NE(n->first_connect_ms(), 0u) << "a hung node was never probed";
        first = std::min(first, n->first_connect_ms());
        last = std::max(last, n->first_connect_ms());
    }
    EXPECT_LT(last - first, kTimeoutMs) << "the five probes did not start together";

    // The hung ones stay down, and stopping waits for their probes at most a timeout.
    std::this_thread::sleep_for(std::chrono::milliseconds(kTimeoutMs + 100));
    for (const auto& n : hung) {
        EXPECT_TRUE(health.is_down(n->name(), mono_ms()));
    }
    uint64_t stopping = mono_ms();
    prober.stop();
    EXPECT_LT(mono_ms() - stopping, 2 * kTimeoutMs);
}

}  // namespace
