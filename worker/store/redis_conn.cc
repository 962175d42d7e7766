#include "worker/store/redis_conn.h"

#include <chrono>
#include <mutex>
#include <unordered_map>

#include "shared/crypto.h"
#include "worker/clock.h"
#include "worker/log.h"

namespace hookq {

using cluster::to_timeval;

std::string sha1_of_script(std::string_view script) {
    static std::mutex mu;
    static std::unordered_map<const char*, std::string> cache;
    std::lock_guard lock(mu);
    auto it = cache.find(script.data());
    if (it != cache.end()) {
        return it->second;
    }
    return cache[script.data()] = crypto::sha1_hex(script);
}

bool is_error(const Reply& r) {
    return !r || r->type == REDIS_REPLY_ERROR;
}

RedisConn::RedisConn(const Config& cfg, std::string name) : cfg_(cfg), name_(std::move(name)) {
    if (!cfg_.redis_cluster.empty()) {
        cluster_ = std::make_unique<cluster::ClusterClient>(cfg_, name_);
    }
}

RedisConn::~RedisConn() {
    drop();
}

void RedisConn::drop() {
    if (cluster_) {
        cluster_->drop();
        return;
    }
    if (ctx_) {
        redisFree(ctx_);
        ctx_ = nullptr;
    }
    appended_ = 0;
}

bool RedisConn::ensure() {
    if (cluster_) {
        return cluster_->ensure();
    }
    if (ctx_) {
        return true;
    }
    uint64_t now = mono_ms();
    if (now < next_attempt_ms_) {
        return false;
    }
    timeval tv = to_timeval(cfg_.redis_timeout_ms);
    ctx_ = cfg_.redis_unix.empty()
               ? redisConnectWithTimeout(cfg_.redis_host.c_str(), cfg_.redis_port, tv)
               : redisConnectUnixWithTimeout(cfg_.redis_unix.c_str(), tv);
    auto fail = [&](const std::string& why) {
        last_error_ = why;
        drop();
        // Backoff between attempts so a dead Redis is not hammered by every stage.
        backoff_ms_ = backoff_ms_ ? std::min<uint64_t>(backoff_ms_ * 2, 2000) : 100;
        next_attempt_ms_ = now + backoff_ms_;
        if (!quiet_) {
            log::warn("redis unavailable", {{"conn", name_}, {"error", why}});
        }
        return false;
    };
    if (!ctx_ || ctx_->err) {
        return fail(ctx_ ? ctx_->errstr : "cannot allocate redis context");
    }
    redisSetTimeout(ctx_, tv);
    redisEnableKeepAlive(ctx_);
    if (!cfg_.redis_password.empty()) {
        Reply r(static_cast<redisReply*>(
            redisCommand(ctx_, "AUTH %b", cfg_.redis_password.data(), cfg_.redis_password.size())));
        if (is_error(r)) {
            return fail("AUTH failed");
        }
    }
    if (cfg_.redis_db != 0) {
        Reply r(static_cast<redisReply*>(redisCommand(ctx_, "SELECT %d", cfg_.redis_db)));
        if (is_error(r)) {
            return fail("SELECT failed");
        }
    }
    if (backoff_ms_) {
        log::info("redis connected", {{"conn", name_}});
    }
    backoff_ms_ = 0;
    return true;
}

std::vector<std::pair<std::string, Reply>> RedisConn::each_node(
    const std::vector<std::string_view>& argv) {
    if (cluster_) {
        return cluster_->each_master(argv);
    }
    std::vector<std::pair<std::string, Reply>> out;
    out.emplace_back(cfg_.redis_unix.empty()
                         ? cfg_.redis_host + ":" + std::to_string(cfg_.redis_port)
                         : cfg_.redis_unix,
                     command(argv));
    return out;
}

Reply RedisConn::command(const std::vector<std::string_view>& argv) {
    if (cluster_) {
        return cluster_->command(argv);
    }
    if (!ensure()) {
        return nullptr;
    }
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (auto a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
    if (!r) {
        last_error_ = ctx_->errstr;
        if (!quiet_) {
            log::warn("redis command failed", {{"conn", name_}, {"error", last_error_}});
        }
        drop();
    }
    return r;
}

Reply RedisConn::eval(std::string_view script, const std::vector<std::string_view>& keys,
                      const std::vector<std::string_view>& args) {
    std::string sha = sha1_of_script(script);
    std::string nkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv = {"EVALSHA", sha, nkeys};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    Reply r = command(argv);
    if (r && r->type == REDIS_REPLY_ERROR &&
        std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
        argv[0] = "EVAL";
        argv[1] = script;
        r = command(argv);
    }
    return r;
}

void RedisConn::append(const std::vector<std::string_view>& argv) {
    if (cluster_) {
        cluster_->append(argv);
        return;
    }
    if (!ctx_) {
        return;
    }
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (auto a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    ++appended_;
}

bool RedisConn::read_replies(std::vector<Reply>& out) {
    if (cluster_) {
        return cluster_->read_replies(out);
    }
    out.clear();
    size_t n = appended_;
    appended_ = 0;
    out.resize(n);
    if (!ctx_) {
        return false;
    }
    for (size_t i = 0; i < n; ++i) {
        void* r = nullptr;
        if (redisGetReply(ctx_, &r) != REDIS_OK) {
            last_error_ = ctx_->errstr;
            log::warn("redis pipeline failed", {{"conn", name_}, {"error", last_error_}});
            drop();
            return false;
        }
        out[i].reset(static_cast<redisReply*>(r));
    }
    return true;
}

}  // namespace hookq
