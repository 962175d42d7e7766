// Each nginx worker process's one Redis connection: connects in init_process, reconnects with
// backoff and jitter, loads the ingest script, and carries every request's EVALSHA pipelined.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ngx_module/config.h"
#include "ngx_module/ngx.h"

struct redisAsyncContext;

namespace hookq::edge {

// wrong_type: the queue key holds something other than a list; nothing was written.
enum class IngestStatus : uint8_t { accepted, duplicate, queue_full, wrong_type, error };

struct IngestResult {
    IngestStatus status = IngestStatus::error;
    // duplicate: the first delivery's request id; wrong_type: the key's type (valid in callback)
    std::string_view detail;
    // accepted: 0 under the loop limit (or none configured), 1 over it and counted, 2 held.
    int loop = 0;
};

using IngestCallback = void (*)(void* owner, const IngestResult& result) noexcept;

// The EVALSHA arguments of one request, in the request's pool.
struct IngestArgs {
    static constexpr int kArgc = 9;       // without the loop part
    static constexpr int kLoopArgc = 18;  // with it: four more keys, five more arguments
    int argc = kArgc;
    const char* argv[kLoopArgc];
    size_t argvlen[kLoopArgc];
};

// One command in flight. Owned by the link (recycled through a free list), never by a request: a
// request that goes away sets `owner` to null and the reply, when it comes, is dropped.
struct PendingCommand {
    void* owner = nullptr;
    IngestCallback callback = nullptr;
    IngestArgs* args = nullptr;
    ngx_msec_t sent_at = 0;
    bool retried = false;                 // NOSCRIPT is retried once with EVAL
    PendingCommand* next_free = nullptr;  // in the free list, or in the list held for the handshake
};

class RedisLink {
  public:
    static RedisLink& instance() noexcept;

    // False (logged) when the link cannot even be set up: the worker should not run without it.
    bool start(const MainConf& conf, ngx_log_t* log) noexcept;
    void stop() noexcept;
    bool ready() const noexcept { return state_ == State::ready; }
    std::string_view script_sha() const noexcept { return script_sha_; }

    // Sends the command, or holds it while the connection is still being set up; nullptr when there
    // is no connection at all right now (answer 503 at once).
    PendingCommand* send_ingest(IngestArgs* args, IngestCallback cb, void* owner) noexcept;
    // The request gave up waiting (its timer fired). If the connection has said nothing since the
    // command was sent, it is unresponsive: drop it and reconnect rather than queue more behind it.
    void timed_out(PendingCommand* pc) noexcept;

  private:
    enum class State : uint8_t { idle, connecting, ready, stopped };

    static void on_connect(const redisAsyncContext* ac, int status) noexcept;
    static void on_disconnect(const redisAsyncContext* ac, int status) noexcept;
    static void on_handshake_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_ingest_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_reconnect_timer(ngx_event_t* ev) noexcept;
    static void on_connect_timer(ngx_event_t* ev) noexcept;

    void connect() noexcept;
    void send_held() noexcept;
    void fail_held() noexcept;
    void drop(const char* reason) noexcept;
    void schedule_reconnect() noexcept;
    PendingCommand* acquire() noexcept;
    void release(PendingCommand* pc) noexcept;

    const MainConf* conf_ = nullptr;
    ngx_log_t* log_ = nullptr;
    redisAsyncContext* ac_ = nullptr;
    State state_ = State::idle;
    int handshake_left_ = 0;
    unsigned failures_ = 0;
    ngx_msec_t last_reply_at_ = 0;
    ngx_event_t reconnect_timer_{};
    ngx_event_t connect_timer_{};
    std::string script_sha_;
    PendingCommand* free_ = nullptr;
    // Commands that arrived during the handshake, in order: sent once it has succeeded, never
    // pipelined behind it (after a failed SELECT they would run in db 0).
    PendingCommand* held_head_ = nullptr;
    PendingCommand* held_tail_ = nullptr;
};

}  // namespace hookq::edge
