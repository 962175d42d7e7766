// A synchronous hiredis connection owned by one thread. Each stage that talks to Redis has its own,
// so a slow command in one stage never delays another.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/config.h"
#include "worker/store/redis_cluster.h"

namespace hookq {

class RedisConn {
  public:
    // With [redis] cluster set, every call goes through a cluster::ClusterClient that routes it
    // to the node serving the slot of its key (redis_cluster.h).
    RedisConn(const Config& cfg, std::string name);
    ~RedisConn();
    RedisConn(const RedisConn&) = delete;
    RedisConn& operator=(const RedisConn&) = delete;

    // Connects (AUTH, SELECT) if not connected; false if Redis cannot be reached right now.
    bool ensure();
    // Talking to a Redis Cluster ([redis] cluster).
    bool cluster() const { return cluster_ != nullptr; }
    bool connected() const { return cluster_ ? cluster_->connected() : ctx_ != nullptr; }
    void drop();

    // nullptr on a connection failure (the connection is dropped so the next call reconnects).
    // Error replies are returned as REDIS_REPLY_ERROR for the caller to judge.
    Reply command(const std::vector<std::string_view>& argv);
    // EVALSHA, falling back to EVAL when the script cache does not have it (after a restart).
    Reply eval(std::string_view script, const std::vector<std::string_view>& keys,
               const std::vector<std::string_view>& args);

    // Pipelining: append many, then read the replies in order: one entry per command appended,
    // null where no reply came (not sent, or its connection failed before the reply: it may have
    // run). false when any is null. A caller sends again only the commands without a reply.
    void append(const std::vector<std::string_view>& argv);
    bool read_replies(std::vector<Reply>& out);

    // A node-wide command (INFO) to the one Redis, or to every master of a cluster: each node's
    // "host:port" (the socket path for unix:) and its reply, nullptr when it did not answer.
    std::vector<std::pair<std::string, Reply>> each_node(const std::vector<std::string_view>& argv);

    // Connection failures are not logged here: for a caller that says once per outage what it
    // could not reach, rather than on every attempt.
    void quiet() { quiet_ = true; }

    const std::string& last_error() const {
        return cluster_ ? cluster_->last_error() : last_error_;
    }

  private:
    const Config& cfg_;
    std::string name_;
    redisContext* ctx_ = nullptr;
    size_t appended_ = 0;
    std::string last_error_;
    uint64_t next_attempt_ms_ = 0;
    uint64_t backoff_ms_ = 0;
    bool quiet_ = false;
    std::unique_ptr<cluster::ClusterClient> cluster_;
};

std::string sha1_of_script(std::string_view script);
bool is_error(const Reply& r);

}  // namespace hookq
