// hookq-worker: delivers what the nginx edge queued in Redis to the application, and records it.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <curl/curl.h>

#include "worker/alerts/engine.h"
#include "worker/config.h"
#include "worker/log.h"
#include "worker/pipeline/worker.h"
#include "worker/store/redis_node_prober.h"

int main(int argc, char** argv) {
    CLI::App app{"hookq-worker: delivers queued webhooks to the application"};
    std::string config_path = "/etc/hookq/worker.toml";
    bool check_only = false;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag("--check-config", check_only, "validate the configuration and exit");
    app.set_version_flag("--version", "hookq-worker 0.1.0");
    CLI11_PARSE(app, argc, argv);

    hookq::Config cfg;
    try {
        cfg = hookq::load_config_file(config_path);
    } catch (const hookq::ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
    if (check_only) {
        for (const auto& w : cfg.warnings) {
            std::fprintf(stderr, "%s: warning: %s\n", config_path.c_str(), w.c_str());
        }
        std::printf("%s: ok (%zu routes, queues:", config_path.c_str(), cfg.routes.size());
        for (const auto& q : cfg.queues) {
            std::printf(" %s", q.c_str());
        }
        std::printf(")\n");
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    hookq::log::init(cfg.log_level);
    for (const auto& w : cfg.warnings) {
        hookq::log::warn("configuration", {{"config", config_path}, {"warning", w}});
    }
    // Before any connection: every Redis Cluster node found down is probed from here on.
    hookq::cluster::NodeProber prober(cfg);
    prober.start();
    // Alerting runs beside the pipeline, on its own threads and connections.
    hookq::alerts::Engine alerts(cfg);
    alerts.start();
    int rc = hookq::run_worker(cfg);
    alerts.stop();
    prober.stop();
    curl_global_cleanup();
    return rc;
}
