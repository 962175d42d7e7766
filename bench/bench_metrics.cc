// The cost the delivery loop pays for /metrics: what finish() adds per attempt (one attempt and one
// outcome: a few relaxed atomic adds and a bucket scan), alone and with a scraper rendering the
// registry on another thread, and what one scrape costs the admin thread.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>

#include "worker/config.h"
#include "worker/metrics.h"

namespace {

hookq::Config config() {
    std::string text = "[postgres]\ndsn = \"dbname=hookq\"\n";
    for (int i = 0; i < 20; ++i) {
        text += "[[routes]]\nname = \"r" + std::to_string(i) + "\"\nsource = \"s" +
                std::to_string(i % 5) + "\"\nurl = \"http://app" + std::to_string(i % 4) +
                ".internal/hooks\"\n";
    }
    return hookq::load_config_string(text, "bench.toml");
}

hookq::metrics::Registry& registry() {
    static hookq::metrics::Registry r;
    static bool once = [] {
        r.init(config(), "bench");
        return true;
    }();
    (void)once;
    return r;
}

// What Dispatcher::finish() calls for one delivered attempt.
void BM_FinishIncrements(benchmark::State& state) {
    auto& reg = registry();
    uint64_t t = 1'700'000'000'000'000ULL;
    size_t route = 0;
    for (auto _ : state) {
        reg.attempt(route, 42'000 + (t & 0xffff));
        reg.outcome(route, hookq::OutcomeKind::delivered, t - 180'000, t);
        route = route == 19 ? 0 : route + 1;
        ++t;
    }
}
BENCHMARK(BM_FinishIncrements);

// The same while another thread renders the registry in a loop (a scrape every few microseconds,
// far more often than any Prometheus): the counters' lines are read, never written, by it.
void BM_FinishIncrementsWhileScraped(benchmark::State& state) {
    auto& reg = registry();
    std::atomic<bool> stop{false};
    std::thread scraper([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            benchmark::DoNotOptimize(reg.render());
        }
    });
    uint64_t t = 1'700'000'000'000'000ULL;
    size_t route = 0;
    for (auto _ : state) {
        reg.attempt(route, 42'000 + (t & 0xffff));
        reg.outcome(route, hookq::OutcomeKind::delivered, t - 180'000, t);
        route = route == 19 ? 0 : route + 1;
        ++t;
    }
    stop = true;
    scraper.join();
}
BENCHMARK(BM_FinishIncrementsWhileScraped);

// One scrape's counter text, 20 routes.
void BM_Render(benchmark::State& state) {
    auto& reg = registry();
    for (auto _ : state) {
        benchmark::DoNotOptimize(reg.render());
    }
}
BENCHMARK(BM_Render);

}  // namespace
