// The admin HTTP API inside hookq-worker ([admin] in worker.toml): libmicrohttpd on its own small
// thread pool, with its own Redis and PostgreSQL connections, so that no request, however slow,
// touches a delivery thread or a delivery connection.
#pragma once

#include <memory>

#include "worker/config.h"

namespace hookq::admin {

class Server {
  public:
    explicit Server(const Config& cfg);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Listens when [admin] has an address; logs and returns false when it cannot. Delivery goes on
    // either way: the admin API is how an operator looks, not how webhooks flow.
    bool start();
    // Stops accepting, lets running requests finish, joins the threads. Idempotent.
    void stop();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace hookq::admin
