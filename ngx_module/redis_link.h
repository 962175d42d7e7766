// One Redis connection of an nginx worker process (its only one, or one per Redis Cluster master:
// see redis_router.h): connects in init_process, reconnects with backoff and jitter, loads the
// ingest script, and carries the requests' ingests pipelined, grouped into one EVALSHA of the batch
// script per turn of nginx's event loop (group commit), each followed by WAIT under
// hookq_redis_wait.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>

#include "ngx_module/config.h"
#include "ngx_module/ngx.h"

struct redisAsyncContext;
struct redisReply;

namespace hookq::edge {

class RedisLink;

// wrong_type: the queue key holds something other than a list; nothing was written.
// unreplicated: stored on the master, but hookq_redis_wait's WAIT did not see it reach the
// replicas.
enum class IngestStatus : uint8_t {
    accepted,
    duplicate,
    queue_full,
    wrong_type,
    unreplicated,
    error
};

struct IngestResult {
    IngestStatus status = IngestStatus::error;
    // duplicate: the first delivery's request id; wrong_type: the key's type (valid in callback)
    std::string_view detail;
    // accepted: 0 under the loop limit (or none configured), 1 over it and counted, 2 held.
    int loop = 0;
};

using IngestCallback = void (*)(void* owner, const IngestResult& result) noexcept;

// The ingest script's KEYS and ARGV of one request, in the request's pool.
struct IngestArgs {
    static constexpr int kKeys = 2;  // without the loop part
    static constexpr int kArgs = 4;
    static constexpr int kLoopKeys = 6;  // with it: four more keys, five more arguments
    static constexpr int kLoopArgs = 9;
    int nkeys = kKeys;
    int nargs = kArgs;
    std::string_view keys[kLoopKeys];
    std::string_view args[kLoopArgs];
    std::string_view stage;  // keys::stage of the queue, for the guarded ingest
};

// One request's ingest, queued, then in flight inside a batch. Owned by the links (recycled through
// a free list), never by a request: a request that goes away sets `owner` to null, and the command
// is then left out of the batch if not sent yet, or its reply dropped when it comes.
struct PendingCommand {
    void* owner = nullptr;
    IngestCallback callback = nullptr;
    IngestArgs* args = nullptr;
    ngx_msec_t sent_at = 0;
    PendingCommand* next = nullptr;  // in the free list, the queue to send, or its batch
    RedisLink* link = nullptr;       // where it is queued or in flight (moves on a MOVED)
    int slot = 0;                    // its queue's cluster slot (0 outside a cluster)
    uint8_t redirects = 0;           // MOVED/ASK followed so far
    // Under hookq_redis_wait, the script's answer, kept until WAIT has answered too (the reply
    // itself dies with its callback).
    IngestStatus status = IngestStatus::error;
    uint8_t loop = 0;
    uint8_t detail_len = 0;
    char detail[46];
};

// Commands not sent yet, in arrival order, linked through PendingCommand::next: a link's commands
// of this turn, and the router's commands that came before the first slot map.
class CommandQueue {
  public:
    void push(PendingCommand* pc) noexcept {
        pc->next = nullptr;
        if (tail_ != nullptr)
            tail_->next = pc;
        else
            head_ = pc;
        tail_ = pc;
    }
    // Detaches every command: what `f` causes to be pushed (a failed request's client may send
    // its next request at once) starts a new queue rather than joining this walk.
    PendingCommand* take() noexcept {
        PendingCommand* pc = head_;
        head_ = tail_ = nullptr;
        return pc;
    }
    template <class F>
    void drain(F&& f) noexcept {
        for (PendingCommand* pc = take(); pc != nullptr;) {
            PendingCommand* next = pc->next;
            f(pc);
            pc = next;
        }
    }

  private:
    PendingCommand* head_ = nullptr;
    PendingCommand* tail_ = nullptr;
};

// One ingest call (kIngest, the batch script, or the guarded transaction): its commands in arrival
// order, whose replies come in that order.
struct Batch {
    PendingCommand* head = nullptr;
    int size = 0;
    bool retried = false;  // NOSCRIPT is retried once with EVAL
    bool single = false;   // sent as kIngest (one command), not as the batch script
    bool guarded = false;  // sent as the guarded transaction (scripts::kIngestGuarded)
    // Guarded: the first error a command of the transaction got when queued (EXEC then says only
    // EXECABORT), cut to fit: a MOVED or ASK to follow, or the cause to log (OOM, TRYAGAIN).
    uint8_t queued_error_len = 0;
    char queued_error[96];
    Batch* next_free = nullptr;
    // Under hookq_redis_wait: replies still to come (the script's and WAIT's, twice after a
    // NOSCRIPT retry), and how many replicas the last WAIT counted (-1: none came).
    int replies_pending = 0;
    long long acked = -1;
    RedisLink* link = nullptr;  // the connection it was last sent on
};

// Objects recycled through a free list (linked by their member `Next`), grown Chunk at a time
// and kept for the life of the worker: steady state allocates nothing. get() hands one out as
// freshly constructed; nullptr when out of memory.
template <class T, T* T::*Next, size_t Chunk>
class FreeList {
  public:
    T* get() noexcept {
        if (head_ == nullptr) {
            auto* chunk = new (std::nothrow) T[Chunk];
            if (chunk == nullptr)
                return nullptr;
            for (size_t i = 0; i < Chunk; i++)
                put(&chunk[i]);
        }
        T* t = head_;
        head_ = t->*Next;
        *t = T{};
        return t;
    }
    void put(T* t) noexcept {
        t->*Next = head_;
        head_ = t;
    }

  private:
    T* head_ = nullptr;
};

class RedisLink {
  public:
    // A batch's limits: what comes on top goes in the next call of the same flush. They bound how
    // long one script call holds Redis (other clients wait meanwhile) and what hiredis formats at
    // once; one envelope over the byte limit still goes, alone. The byte limit is Redis's read
    // size (PROTO_IOBUF_LEN): Redis runs a call only once it has read all of it and answers after
    // it, so with larger batches nginx sat idle while Redis read and ran a whole turn's batch
    // (measured: 10-45% fewer req/s at -c64 with 1 MB batches on a 2-core box), where separate
    // calls, or 16 KB batches, let nginx answer the first while Redis runs the next.
    static constexpr int kMaxBatch = 256;
    static constexpr size_t kMaxBatchBytes = 16 * 1024;
    // Fewer commands than this go as separate kIngest calls: the batch script's own setup (its
    // caches, the records' parsing) is repaid only by the calls it saves. Measured (Redis CPU per
    // webhook, 1.3 KB envelopes, bench/edge/redis_cost.py): a batch of 1 costs ~25% more than
    // kIngest, 2 about the same, 3 and up 10-30% less.
    static constexpr int kMinBatch = 3;
    // From this many bytes of arguments a batch goes as the guarded transaction, whose envelopes
    // never enter Lua (Redis's Lua hashes every byte it is handed), unless one of them has the loop
    // part; a lone envelope from the second figure. Below them the transaction's five commands cost
    // Redis more than the hashing they save. Measured (bench/edge/redis_cost.py, Redis CPU per
    // webhook, script against transaction): 4 x 1.3 KB 14.4 / 15.3 us, 8 x 1.3 KB 13.9 / 11.5,
    // 2 x 4 KB 23.3 / 22.8, 2 x 8 KB 34.5 / 22.7; alone, 8 KB 32 / 35-47, 16 KB 54 / 45, 64 KB
    // 169 / 80.
    static constexpr size_t kGuardedBytes = 8 * 1024;
    static constexpr size_t kGuardedLoneBytes = 12 * 1024;

    // Once per worker process, before any link starts: the scripts' SHA1s. False when out of
    // memory.
    static bool init_scripts(ngx_log_t* log) noexcept;

    // Starts connecting to `addr`. In a cluster, the link groups batches per slot, and tells the
    // cluster router when it is ready or lost.
    void start(const MainConf& conf, const RedisAddress& addr, bool cluster,
               ngx_log_t* log) noexcept;
    void stop() noexcept;
    bool ready() const noexcept { return state_ == State::ready; }
    // Ready, or connecting with commands held until it is.
    bool usable() const noexcept {
        return ac_ != nullptr && (state_ == State::ready || state_ == State::connecting);
    }
    const RedisAddress& address() const noexcept { return addr_; }
    // A cluster node no longer in the slot map is not reconnected to after losing it; one that
    // is (again) is connected to at once if idle.
    void set_wanted(bool wanted) noexcept;

    // Queues the command for the batch sent at the end of this turn of the event loop (or, while
    // the connection is still being set up, once it is ready); nullptr when there is no connection
    // at all right now (answer 503 at once).
    PendingCommand* send_ingest(IngestArgs* args, IngestCallback cb, void* owner,
                                int slot = 0) noexcept;
    // Queues a command already made (one redirected here, or held for the slot map); its request
    // gets 503 now when the link is not usable.
    void enqueue(PendingCommand* pc) noexcept;
    // After an ASK: ASKING and the batch on this connection, now. False when not ready.
    bool send_asking(Batch* b) noexcept;
    // CLUSTER SLOTS on this connection, answered to `cb` (reply null when the connection is lost).
    bool query_slots(void (*cb)(RedisLink* link, const void* reply)) noexcept;
    // A request's command that cannot be sent: released, and its request answered 503.
    static void fail_command(PendingCommand* pc) noexcept;
    // Every command of the batch gets an error (its request 503).
    static void fail_batch(Batch* b) noexcept;
    static PendingCommand* acquire() noexcept { return commands_.get(); }
    static void release(PendingCommand* pc) noexcept;
    static Batch* acquire_batch() noexcept { return batches_.get(); }
    static void release_batch(Batch* b) noexcept;
    // The request gave up waiting (its timer fired). If the connection has said nothing since the
    // command was sent, it is unresponsive: drop it and reconnect rather than queue more behind it.
    void timed_out(PendingCommand* pc) noexcept;

  private:
    // Appends to the commands of this turn and posts the flush.
    void hold(PendingCommand* pc) noexcept;
    enum class State : uint8_t { idle, connecting, ready, stopped };

    static void on_connect(const redisAsyncContext* ac, int status) noexcept;
    static void on_disconnect(const redisAsyncContext* ac, int status) noexcept;
    static void on_handshake_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_batch_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_wait_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_turn_wait_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    void wait_for_turn() noexcept;
    static void on_slots_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_flush(ngx_event_t* ev) noexcept;
    static void on_reconnect_timer(ngx_event_t* ev) noexcept;
    static void on_connect_timer(ngx_event_t* ev) noexcept;

    void connect() noexcept;
    void flush() noexcept;
    void send_list(PendingCommand* pc) noexcept;
    void lost() noexcept;
    void answer_batch(Batch* b, const redisReply* r) noexcept;
    void store_results(Batch* b, const redisReply* r) noexcept;
    void finish_waited(Batch* b) noexcept;
    bool redirected(Batch* b, std::string_view error) noexcept;
    // Sends `b` as it was formed: kIngest, the batch script or the guarded transaction.
    bool send(Batch* b, bool eval) noexcept;
    bool send_batch(Batch* b, bool eval) noexcept;
    bool send_guarded(Batch* b, bool eval) noexcept;
    static void on_queued_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    bool sent(int rc, Batch* b) noexcept;
    void send_singly(Batch* b) noexcept;
    void fail_held() noexcept;
    void log_ingest_error(const IngestArgs& args, const IngestResult& result) noexcept;
    void drop(const char* reason) noexcept;
    void schedule_reconnect() noexcept;

    const MainConf* conf_ = nullptr;
    RedisAddress addr_;
    bool cluster_ = false;
    bool wanted_ = true;
    // Under hookq_redis_wait: the batches sent so far in this flush, for its one WAIT.
    bool in_flush_ = false;
    Batch* unwaited_ = nullptr;
    ngx_log_t* log_ = nullptr;
    redisAsyncContext* ac_ = nullptr;
    State state_ = State::idle;
    int handshake_left_ = 0;
    unsigned failures_ = 0;
    ngx_msec_t last_reply_at_ = 0;
    ngx_event_t reconnect_timer_{};
    ngx_event_t connect_timer_{};
    // Posted (ngx_posted_events) by the first command of a turn: nginx runs posted events after
    // every I/O event of the turn, so the batch it sends carries everything the turn produced.
    ngx_event_t flush_event_{};
    static inline std::string script_sha_;   // the batch script's
    static inline std::string single_sha_;   // kIngest's, for a batch of one
    static inline std::string guarded_sha_;  // kIngestGuarded's
    // Shared by the worker's links: a command redirected to another master moves with its request.
    static inline FreeList<PendingCommand, &PendingCommand::next, 64> commands_;
    static inline FreeList<Batch, &Batch::next_free, 16> batches_;
    // Commands not sent yet, in arrival order: those of this turn, and those that arrived during
    // the handshake, sent once it has succeeded, never pipelined behind it (after a failed SELECT
    // they would run in db 0).
    CommandQueue held_;
    // One batch's EVALSHA argv, built here and copied by hiredis as it is sent: the process's own
    // (one event loop), so that sending allocates nothing but hiredis's buffer.
    static constexpr int kMaxArgv =
        3 + kMaxBatch * (IngestArgs::kLoopKeys + 2 + IngestArgs::kLoopArgs);
    struct ScriptCall;  // builds a script call in argv_
    static inline const char* argv_[kMaxArgv];
    static inline size_t argvlen_[kMaxArgv];
    static inline char numkeys_[16];
    // The guarded transaction's LPUSHX of one group: the command, its stage, its envelopes.
    static inline const char* push_argv_[2 + kMaxBatch];
    static inline size_t push_argvlen_[2 + kMaxBatch];
    // The groups of send_batch and send_guarded: their sizes, and the same in decimal as the
    // scripts read them.
    static inline int group_size_[kMaxBatch];
    static inline char group_count_[kMaxBatch][4];
    void (*slots_cb_)(RedisLink* link, const void* reply) = nullptr;
};

}  // namespace hookq::edge
