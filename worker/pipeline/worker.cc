#include "worker/pipeline/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <systemd/sd-daemon.h>

#include <thread>

#include "worker/admin/server.h"
#include "worker/jobs/maintenance.h"
#include "worker/jobs/health_checks.h"
#include "worker/jobs/replay_runner.h"
#include "worker/pipeline/claim.h"
#include "worker/pipeline/dispatcher.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/pipeline/recorder.h"
#include "worker/pipeline/route_stage.h"

namespace hookq {

namespace {

// Signals arrive through a self-pipe written by the handler. A handler (rather than blocking the
// signals and sigwait) is robust to threads that libraries start before main() with the default
// mask: whichever thread takes the signal just writes one byte.
int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
    int saved = errno;
    unsigned char b = static_cast<unsigned char>(sig);
    [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &b, 1);
    errno = saved;
}

// Waits up to `ms` for SIGTERM/SIGINT; returns the signal or 0.
int wait_signal(uint64_t ms) {
    pollfd p{g_signal_pipe[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) {
        return 0;
    }
    unsigned char b = 0;
    return read(g_signal_pipe[0], &b, 1) == 1 ? b : 0;
}

class Watchdog {
  public:
    explicit Watchdog(Shared& s) : s_(s) {
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) > 0) {
            interval_ms_ = usec / 1000 / 2;
        }
    }
    uint64_t poll_ms() const {
        return interval_ms_ ? std::min<uint64_t>(interval_ms_, 1000) : 1000;
    }

    // Pings only while every stage loop is turning: a wedged stage should get us restarted.
    void maybe_ping(bool claim_running) {
        if (!interval_ms_) {
            return;
        }
        uint64_t now = mono_ms();
        uint64_t limit = std::max<uint64_t>(interval_ms_ * 2, 10000);
        auto fresh = [&](const std::atomic<uint64_t>& t) { return now - t.load() < limit; };
        if ((!claim_running || fresh(s_.tick_claim)) && fresh(s_.tick_route) &&
            fresh(s_.tick_dispatch) && fresh(s_.tick_record) && fresh(s_.tick_heartbeat)) {
            sd_notify(0, "WATCHDOG=1");
        }
    }

  private:
    Shared& s_;
    uint64_t interval_ms_ = 0;
};

}  // namespace

void install_signal_handlers() {
    if (g_signal_pipe[0] < 0 && pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

int run_worker(const Config& cfg) {
    install_signal_handlers();
    Shared s(cfg);
    metrics::global().init(cfg, cfg.worker_id);
    metrics::global().attach(&s.in_process, &s.in_process_bytes);
    metrics::global().attach_recorder_backlog([&s] { return s.to_record.size(); });
    Watchdog wd(s);
    ClaimStage claim(s);
    Heartbeat heartbeat(s);

    log::info("starting", {{"worker", cfg.worker_id},
                           {"queues", cfg.queues},
                           {"routes", cfg.routes.size()},
                           {"max_inflight", cfg.max_inflight},
                           {"max_inflight_bytes", cfg.max_inflight_bytes}});
    while (!heartbeat.beat() || !claim.startup()) {
        if (wait_signal(500)) {
            log::info("stopped before start-up completed");
            return 0;
        }
    }
    uint64_t t0 = mono_ms();
    s.tick_claim = s.tick_route = s.tick_dispatch = s.tick_record = t0;
    heartbeat.start();

    Dispatcher dispatcher(s);
    RouteStage route(s, dispatcher);
    Recorder recorder(s);
    std::thread t_record([&] { recorder.run(); });
    std::thread t_dispatch([&] { dispatcher.run(); });
    std::thread t_route([&] { route.run(); });
    std::thread t_claim([&] { claim.run(); });

    sd_notify(0, "READY=1\nSTATUS=delivering");
    admin::Server admin(cfg);
    admin.start();
    Maintenance maintenance(cfg);
    maintenance.start();
    HealthChecks health_checks(cfg);
    health_checks.start();
    ReplayRunner replay(cfg);
    replay.start();
    log::info("ready", {{"worker", cfg.worker_id}});

    int sig = 0;
    while (!(sig = wait_signal(wd.poll_ms()))) {
        wd.maybe_ping(true);
    }
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    log::info("draining", {{"signal", sig},
                           {"in_process", s.in_process.load()},
                           {"timeout_ms", cfg.drain_timeout_ms}});

    // Stop taking new work, then give what is in flight until the deadline to finish and be acked.
    s.stop_claiming = true;
    s.cap_cv.notify_all();
    t_claim.join();
    // The heartbeat thread keeps our claim on the inflight list alive meanwhile. Should it fail to
    // (Redis away), the drain ends before the heartbeat can expire: once another worker may have
    // requeued our list, finishing a delivery here would only deliver it twice.
    uint64_t deadline = mono_ms() + cfg.drain_timeout_ms;
    uint64_t margin = std::max<uint64_t>(200, cfg.heartbeat_ttl_ms / 10);
    bool lease_lost = false;
    while (s.in_process.load() > 0 && mono_ms() < deadline) {
        if (mono_ms() + margin >= heartbeat.lease_until_ms()) {
            lease_lost = true;
            break;
        }
        if (wait_signal(100) == SIGINT) {
            break;  // a second, impatient signal: stop now, everything unacked stays in inflight
        }
        wd.maybe_ping(false);
    }
    int64_t left = s.in_process.load();
    if (left > 0) {
        log::warn(lease_lost
                      ? "heartbeat not renewed in time; unfinished webhooks stay in inflight "
                        "for redelivery"
                      : "drain deadline reached; unfinished webhooks stay in inflight for "
                        "redelivery",
                  {{"left", left}});
        recorder.abandon();
    }
    s.to_route.close();
    dispatcher.stop();
    t_route.join();
    t_dispatch.join();
    s.to_record.close();
    t_record.join();
    heartbeat.stop();
    if (left == 0 && claim.deregister()) {
        heartbeat.remove();
    }
    health_checks.stop();
    replay.stop();
    maintenance.stop();
    admin.stop();
    metrics::global().attach_recorder_backlog(nullptr);  // `s` goes out of scope
    // What Redis holds, not what this process knows of: a claim whose answer was lost leaves work
    // in inflight that no Job here stands for.
    log::info("stopped", {{"worker", cfg.worker_id},
                          {"left_in_process", left},
                          {"peak_in_process_bytes", s.peak_in_process_bytes.load()},
                          {"acks_removed_nothing", metrics::global().acks_removed_nothing()},
                          {"left_inflight", claim.left_inflight()}});
    return 0;
}

}  // namespace hookq
