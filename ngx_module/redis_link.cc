#include "ngx_module/redis_link.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include "ngx_module/log_limiter.h"
#include "ngx_module/redis_adapter.h"
#include "ngx_module/redis_router.h"
#include "shared/crypto.h"
#include "shared/redis_keys.h"
#include "shared/redis_slot.h"

namespace hookq::edge {
namespace {

constexpr ngx_msec_t kBackoffFirst = 50;
constexpr ngx_msec_t kBackoffCap = 5000;

bool is_error(const redisReply* r) {
    return r == nullptr || r->type == REDIS_REPLY_ERROR;
}

std::string_view reply_text(const redisReply* r) {
    if (r == nullptr)
        return "connection lost";
    return {r->str, r->len};
}

// Parses one envelope's reply of the batch script: kIngest's {-1} | {-2, type[, n]} | {0, id} |
// {1, length, loop}, or {-3, message} when it raised an error.
IngestResult parse_ingest(const redisReply* r) {
    IngestResult res;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return res;
    switch (r->element[0]->integer) {
        case -1:
            res.status = IngestStatus::queue_full;
            break;
        case -2:
        case 0:
            if (r->elements >= 2 && r->element[1]->type == REDIS_REPLY_STRING) {
                res.status = r->element[0]->integer == 0 ? IngestStatus::duplicate
                                                         : IngestStatus::wrong_type;
                res.detail = {r->element[1]->str, r->element[1]->len};
                // wrong_type of one of the loop part's keys: its index in KEYS
                if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_INTEGER)
                    res.loop = static_cast<int>(r->element[2]->integer);
            }
            break;
        case -3:
            if (r->elements >= 2 && r->element[1]->type == REDIS_REPLY_STRING)
                res.detail = {r->element[1]->str, r->element[1]->len};
            break;
        case 1:
            res.status = IngestStatus::accepted;
            if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_INTEGER)
                res.loop = static_cast<int>(r->element[2]->integer);
            break;
        default:
            break;
    }
    return res;
}

LogLimiter g_ingest_errors{1000};

// `v` in decimal into `buf` (not NUL-terminated), as a view of it.
std::string_view decimal(char* buf, size_t size, int v) noexcept {
    auto* end =
        reinterpret_cast<char*>(ngx_snprintf(reinterpret_cast<u_char*>(buf), size, "%d", v));
    return {buf, static_cast<size_t>(end - buf)};
}

// How many commands from `pc` on form one group of the batch's records: consecutive, without the
// loop part, of one queue, depth limit and ttl (their common arguments go once).
int group_size(const PendingCommand* pc) noexcept {
    const IngestArgs& first = *pc->args;
    int size = 0;
    do {
        size++;
        pc = pc->next;
    } while (pc != nullptr && pc->args->nkeys == IngestArgs::kKeys &&
             pc->args->keys[0] == first.keys[0] && pc->args->args[0] == first.args[0] &&
             pc->args->args[1] == first.args[1]);
    return size;
}

}  // namespace

// A script call being put together in argv_: "EVALSHA sha numkeys" (or EVAL and the text, after
// NOSCRIPT), then what put() adds; numkeys is filled in by keys_done() once known.
struct RedisLink::ScriptCall {
    int n = 0;
    ScriptCall(bool eval, std::string_view text, std::string_view sha) noexcept {
        put(eval ? std::string_view{"EVAL"} : std::string_view{"EVALSHA"});
        put(eval ? text : sha);
        put({});
    }
    void put(std::string_view v) noexcept {
        argv_[n] = v.data();
        argvlen_[n] = v.size();
        n++;
    }
    void keys_done(int numkeys) noexcept {
        argv_[2] = numkeys_;
        argvlen_[2] = decimal(numkeys_, sizeof numkeys_, numkeys).size();
    }
};

bool RedisLink::init_scripts(ngx_log_t* log) noexcept {
    try {
        script_sha_ = crypto::sha1_hex(scripts::kIngestBatch);
        single_sha_ = crypto::sha1_hex(scripts::kIngest);
        guarded_sha_ = crypto::sha1_hex(scripts::kIngestGuarded);
    } catch (...) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "hookq: out of memory hashing the ingest script");
        return false;
    }
    return true;
}

void RedisLink::start(const MainConf& conf, const RedisAddress& addr, bool cluster,
                      ngx_log_t* log) noexcept {
    conf_ = &conf;
    addr_ = addr;
    cluster_ = cluster;
    log_ = log;
    for (ngx_event_t* ev : {&reconnect_timer_, &connect_timer_}) {
        ev->data = this;
        ev->log = log;
        // A pending reconnect must not hold up a graceful shutdown or reload.
        ev->cancelable = 1;
    }
    reconnect_timer_.handler = on_reconnect_timer;
    connect_timer_.handler = on_connect_timer;
    flush_event_.data = this;
    flush_event_.log = log;
    flush_event_.handler = on_flush;
    state_ = State::idle;
    connect();
}

void RedisLink::set_wanted(bool wanted) noexcept {
    wanted_ = wanted;
    if (!wanted && reconnect_timer_.timer_set)
        ngx_del_timer(&reconnect_timer_);
    if (wanted && state_ == State::idle && ac_ == nullptr && !reconnect_timer_.timer_set)
        connect();
}

void RedisLink::stop() noexcept {
    state_ = State::stopped;
    if (reconnect_timer_.timer_set)
        ngx_del_timer(&reconnect_timer_);
    if (connect_timer_.timer_set)
        ngx_del_timer(&connect_timer_);
    if (flush_event_.posted) {  // nginx's macro is several statements
        ngx_delete_posted_event(&flush_event_);
    }
    if (ac_ != nullptr) {
        redisAsyncContext* ac = ac_;
        ac_ = nullptr;
        redisAsyncFree(ac);
    }
}

void RedisLink::connect() noexcept {
    const RedisAddress& a = addr_;
    redisAsyncContext* ac = a.unix_path.empty() ? redisAsyncConnect(a.host.c_str(), a.port)
                                                : redisAsyncConnectUnix(a.unix_path.c_str());
    if (ac == nullptr || ac->err) {
        ngx_log_error(NGX_LOG_ERR, log_, 0, "hookq: redis %s: connect failed: %s",
                      a.display.c_str(), ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect();
        return;
    }
    if (!attach_to_nginx(ac, log_)) {
        ngx_log_error(NGX_LOG_ERR, log_, 0, "hookq: redis %s: no free nginx connection",
                      a.display.c_str());
        redisAsyncFree(ac);
        schedule_reconnect();
        return;
    }
    ac->data = this;
    ac_ = ac;
    state_ = State::connecting;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    // The handshake is pipelined behind the TCP connect: AUTH, SELECT, SCRIPT LOAD; the link is
    // ready when the last of them has answered.
    handshake_left_ = 0;
    if (!a.password.empty()) {
        const char* argv[] = {"AUTH", a.password.data()};
        size_t len[] = {4, a.password.size()};
        redisAsyncCommandArgv(ac, on_handshake_reply, nullptr, 2, argv, len);
        handshake_left_++;
    }
    if (a.db != 0) {
        redisAsyncCommand(ac, on_handshake_reply, nullptr, "SELECT %d", a.db);
        handshake_left_++;
    }
    for (std::string* sha : {&single_sha_, &script_sha_, &guarded_sha_}) {
        std::string_view text = sha == &script_sha_    ? scripts::kIngestBatch
                                : sha == &guarded_sha_ ? scripts::kIngestGuarded
                                                       : scripts::kIngest;
        const char* argv[] = {"SCRIPT", "LOAD", text.data()};
        size_t len[] = {6, 4, text.size()};
        redisAsyncCommandArgv(ac, on_handshake_reply, sha, 3, argv, len);
        handshake_left_++;
    }
    ngx_add_timer(&connect_timer_, conf_->redis_connect_timeout);
}

void RedisLink::on_connect(const redisAsyncContext* ac, int status) noexcept {
    auto* link = static_cast<RedisLink*>(ac->data);
    if (status == REDIS_OK || link->ac_ != ac)
        return;
    // hiredis frees the context itself after this callback.
    ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: connect failed: %s",
                  link->addr_.display.c_str(), ac->errstr);
    link->ac_ = nullptr;
    link->lost();
}

void RedisLink::on_disconnect(const redisAsyncContext* ac, int status) noexcept {
    auto* link = static_cast<RedisLink*>(ac->data);
    if (link->ac_ != ac)
        return;  // we dropped it ourselves and already scheduled a reconnect
    ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: connection lost%s%s",
                  link->addr_.display.c_str(), status == REDIS_OK ? "" : ": ",
                  status == REDIS_OK ? "" : ac->errstr);
    link->ac_ = nullptr;
    link->lost();
}

// privdata: for a SCRIPT LOAD, the SHA1 it must answer.
void RedisLink::on_handshake_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept {
    auto* link = static_cast<RedisLink*>(ac->data);
    auto* r = static_cast<redisReply*>(reply);
    if (link->ac_ != ac || link->state_ != State::connecting)
        return;
    if (is_error(r)) {
        std::string_view why = reply_text(r);
        // An AUTH error must not echo anything that could be the password: Redis's own messages
        // never do, and they are the only text logged here.
        ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: handshake failed: %*s",
                      link->addr_.display.c_str(), why.size(), why.data());
        link->drop("handshake failed");
        return;
    }
    auto* sha = static_cast<const std::string*>(privdata);
    if (sha != nullptr &&
        (r->type != REDIS_REPLY_STRING || std::string_view(r->str, r->len) != *sha)) {
        ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: unexpected SCRIPT LOAD reply",
                      link->addr_.display.c_str());
        link->drop("bad script load");
        return;
    }
    if (--link->handshake_left_ > 0)
        return;
    if (link->connect_timer_.timer_set)
        ngx_del_timer(&link->connect_timer_);
    link->state_ = State::ready;
    link->failures_ = 0;
    link->last_reply_at_ = ngx_current_msec;
    ngx_log_error(NGX_LOG_INFO, link->log_, 0, "hookq: redis %s: ready",
                  link->addr_.display.c_str());
    link->flush();
    if (link->cluster_)
        RedisRouter::instance().on_link_ready(link);
}

void RedisLink::on_connect_timer(ngx_event_t* ev) noexcept {
    auto* link = static_cast<RedisLink*>(ev->data);
    if (link->state_ != State::connecting)
        return;
    ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: connect timed out",
                  link->addr_.display.c_str());
    link->drop("connect timeout");
}

void RedisLink::on_reconnect_timer(ngx_event_t* ev) noexcept {
    auto* link = static_cast<RedisLink*>(ev->data);
    if (link->state_ == State::idle && link->ac_ == nullptr && link->wanted_)
        link->connect();
}

void RedisLink::drop(const char*) noexcept {
    if (connect_timer_.timer_set)
        ngx_del_timer(&connect_timer_);
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    if (state_ != State::stopped)
        state_ = State::idle;
    // Every command still in flight is answered with a null reply from inside redisAsyncFree (or
    // right after the current callback returns, when called from one): its request gets 503.
    if (ac != nullptr)
        redisAsyncFree(ac);
    lost();
}

// The connection is gone (ac_ already null): held commands fail now, a reconnect is scheduled, and
// in a cluster the slot map is refreshed (a failover may have moved this node's slots).
void RedisLink::lost() noexcept {
    if (state_ != State::stopped)
        state_ = State::idle;
    fail_held();
    schedule_reconnect();
    if (cluster_ && state_ != State::stopped)
        RedisRouter::instance().on_link_down(this);
}

void RedisLink::schedule_reconnect() noexcept {
    if (state_ == State::stopped || reconnect_timer_.timer_set || !wanted_)
        return;
    // Exponential backoff with jitter in [cap/2, cap], so that the workers of every nginx in a
    // fleet do not knock on a recovering Redis in step.
    ngx_msec_t cap = std::min<ngx_msec_t>(kBackoffCap, kBackoffFirst << std::min(failures_, 10u));
    failures_++;
    ngx_msec_t delay = cap / 2 + static_cast<ngx_msec_t>(ngx_random()) % (cap / 2 + 1);
    ngx_add_timer(&reconnect_timer_, delay);
}

void RedisLink::release(PendingCommand* pc) noexcept {
    pc->owner = nullptr;  // a stale pointer to it must not look like a live request's command
    pc->args = nullptr;
    commands_.put(pc);
}

void RedisLink::release_batch(Batch* b) noexcept {
    b->head = nullptr;
    b->size = 0;
    batches_.put(b);
}

void RedisLink::fail_command(PendingCommand* pc) noexcept {
    void* owner = pc->owner;
    IngestCallback cb = pc->callback;
    release(pc);
    if (owner != nullptr)
        cb(owner, IngestResult{});
}

PendingCommand* RedisLink::send_ingest(IngestArgs* args, IngestCallback cb, void* owner,
                                       int slot) noexcept {
    // While connecting, commands are held until the handshake has succeeded: a freshly started
    // worker (after a reload) serves its first requests instead of refusing them. They are not
    // pipelined behind the handshake, because Redis runs what follows a failed SELECT in db 0. If
    // the handshake fails, their requests get 503.
    if (ac_ == nullptr || (state_ != State::ready && state_ != State::connecting))
        return nullptr;
    PendingCommand* pc = acquire();
    if (pc == nullptr)
        return nullptr;
    pc->owner = owner;
    pc->callback = cb;
    pc->args = args;
    pc->sent_at = ngx_current_msec;
    pc->slot = slot;
    hold(pc);
    return pc;
}

void RedisLink::hold(PendingCommand* pc) noexcept {
    pc->link = this;
    held_.push(pc);
    // Group commit: the first command of the turn posts the flush. With accept_mutex off (nginx's
    // default) epoll's events are handled inline and posted events after all of them, so the flush
    // sees every command the turn produced. (With accept_mutex on, I/O events are posted too and
    // some may run after the flush: their commands post it again and go in a second batch of the
    // same turn. Still correct, only less grouped.)
    if (state_ == State::ready && !flush_event_.posted) {
        ngx_post_event(&flush_event_, &ngx_posted_events);
    }
}

void RedisLink::enqueue(PendingCommand* pc) noexcept {
    if (!usable()) {
        fail_command(pc);
        return;
    }
    hold(pc);
}

void RedisLink::on_flush(ngx_event_t* ev) noexcept {
    static_cast<RedisLink*>(ev->data)->flush();
}

// Sends every queued command, kMaxBatch (or kMaxBatchBytes) per script call, in arrival order.
void RedisLink::flush() noexcept {
    if (state_ != State::ready || ac_ == nullptr)
        return;  // held for the handshake, or failed by fail_held()
    // Detached first: a failure below answers requests, and nginx may then serve a pipelined
    // request at once, whose command joins a new queue (and posts the next flush).
    PendingCommand* pc = held_.take();
    in_flush_ = true;
    if (!cluster_) {
        send_list(pc);
        wait_for_turn();
        return;
    }
    // A script's keys must all be in one slot (CROSSSLOT otherwise): one queue's slot per batch,
    // each slot's commands in arrival order.
    while (pc != nullptr) {
        int slot = pc->slot;
        PendingCommand *same = nullptr, *same_tail = nullptr, *rest = nullptr, *rest_tail = nullptr;
        while (pc != nullptr) {
            PendingCommand* next = pc->next;
            pc->next = nullptr;
            PendingCommand*& head = pc->slot == slot ? same : rest;
            PendingCommand*& tail = pc->slot == slot ? same_tail : rest_tail;
            if (tail != nullptr)
                tail->next = pc;
            else
                head = pc;
            tail = pc;
            pc = next;
        }
        send_list(same);
        pc = rest;
    }
    wait_for_turn();
}

// Under hookq_redis_wait: ONE WAIT after all the turn's script calls. It counts the replicas that
// have this connection's last write, and so every earlier one: a WAIT per call would cost one
// replication round trip each, in series (Redis blocks the connection during WAIT).
void RedisLink::wait_for_turn() noexcept {
    in_flush_ = false;
    Batch* group = unwaited_;
    unwaited_ = nullptr;
    if (group == nullptr)
        return;
    if (ac_ != nullptr && redisAsyncCommand(ac_, on_turn_wait_reply, group, "WAIT %d %d",
                                            static_cast<int>(conf_->wait_replicas),
                                            static_cast<int>(conf_->wait_timeout)) == REDIS_OK)
        return;
    // Not even queued: nothing is confirmed (the scripts' replies are still to come).
    on_turn_wait_reply(ac_, nullptr, group);
}

void RedisLink::send_list(PendingCommand* pc) noexcept {
    while (pc != nullptr) {
        Batch* b = acquire_batch();
        PendingCommand* tail = nullptr;
        size_t bytes = 0;
        bool loop = false;
        while (pc != nullptr && b != nullptr && b->size < kMaxBatch) {
            PendingCommand* next = pc->next;
            if (pc->owner == nullptr) {  // its request timed out or went away meanwhile
                release(pc);
                pc = next;
                continue;
            }
            size_t size = 0;
            for (int i = 0; i < pc->args->nargs; i++)
                size += pc->args->args[i].size();
            if (b->size > 0 && bytes + size > kMaxBatchBytes)
                break;
            bytes += size;
            loop = loop || pc->args->nkeys != IngestArgs::kKeys;
            pc->next = nullptr;
            pc->sent_at = ngx_current_msec;
            if (tail != nullptr)
                tail->next = pc;
            else
                b->head = pc;
            tail = pc;
            b->size++;
            pc = next;
        }
        if (b == nullptr) {  // out of memory: this command fails, the next ones may fare better
            PendingCommand* next = pc->next;
            void* owner = pc->owner;
            IngestCallback cb = pc->callback;
            release(pc);
            if (owner != nullptr)
                cb(owner, IngestResult{});
            pc = next;
            continue;
        }
        if (b->size == 0) {
            release_batch(b);
            continue;
        }
        b->guarded = conf_->redis_batch && !loop &&
                     bytes >= (b->size == 1 ? kGuardedLoneBytes : kGuardedBytes);
        if (!b->guarded && b->size > 1 && (b->size < kMinBatch || !conf_->redis_batch))
            send_singly(b);
        else if (!send(b, false))
            fail_batch(b);
    }
}

// A batch too small to pay for the batch script: each command as its own kIngest call, all of them
// still pipelined in the one write of this turn.
void RedisLink::send_singly(Batch* b) noexcept {
    PendingCommand* pc = b->head;
    release_batch(b);
    while (pc != nullptr) {
        PendingCommand* next = pc->next;
        pc->next = nullptr;
        Batch* one = pc->owner != nullptr ? acquire_batch() : nullptr;
        if (one != nullptr) {
            one->head = pc;
            one->size = 1;
            if (!send_batch(one, false))
                fail_batch(one);  // may answer (and free) requests whose commands come next
        } else {
            // Gone while an earlier command's failure was answered, or out of memory.
            void* owner = pc->owner;
            IngestCallback cb = pc->callback;
            release(pc);
            if (owner != nullptr)
                cb(owner, IngestResult{});
        }
        pc = next;
    }
}

bool RedisLink::send(Batch* b, bool eval) noexcept {
    return b->guarded ? send_guarded(b, eval) : send_batch(b, eval);
}

// The guarded transaction (shared/redis_keys.h, kIngestGuarded) from the batch's commands, which
// have no loop part: consecutive envelopes of one queue, limit and ttl form a group, as in
// send_batch. The two script calls take the same KEYS and ARGV but for ARGV[1]; the envelopes go
// only in the LPUSHXes between them. Only EXEC's reply answers the batch; the others are read for
// a MOVED or ASK (on_queued_reply).
bool RedisLink::send_guarded(Batch* b, bool eval) noexcept {
    if (ac_ == nullptr)
        return false;
    b->single = false;
    b->queued_error_len = 0;
    ScriptCall call(eval, scripts::kIngestGuarded, guarded_sha_);
    int numkeys = 0, groups = 0;
    for (const PendingCommand* pc = b->head; pc != nullptr;) {
        int size = group_size(pc);
        call.put(pc->args->keys[0]);
        call.put(pc->args->stage);
        for (int i = 0; i < size; i++, pc = pc->next)
            call.put(pc->args->keys[1]);
        numkeys += 2 + size;
        group_size_[groups++] = size;
    }
    call.keys_done(numkeys);
    const int mode = call.n;
    call.put("<");
    groups = 0;
    for (const PendingCommand* pc = b->head; pc != nullptr;) {
        int size = group_size_[groups];
        call.put(decimal(group_count_[groups], sizeof group_count_[0], size));
        groups++;
        call.put(pc->args->args[0]);
        call.put(pc->args->args[1]);
        for (; size > 0; size--, pc = pc->next)
            call.put(pc->args->args[2]);
    }
    const int n = call.n;
    // hiredis formats each command into its output buffer as it is queued, so argv_ is reused. A
    // transaction that cannot be queued whole (hiredis out of memory) must not stay open on the
    // connection, to take in whatever comes next: the connection is dropped (every command in
    // flight on it gets 503, the callbacks here a null reply) and made again.
    if (redisAsyncCommand(ac_, on_queued_reply, b, "MULTI") != REDIS_OK)
        return false;
    auto abandon = [this] {
        drop("cannot queue the ingest transaction");
        return false;
    };
    if (redisAsyncCommandArgv(ac_, on_queued_reply, b, n, argv_, argvlen_) != REDIS_OK)
        return abandon();
    push_argv_[0] = "LPUSHX";
    push_argvlen_[0] = 6;
    groups = 0;
    for (const PendingCommand* pc = b->head; pc != nullptr; groups++) {
        push_argv_[1] = pc->args->stage.data();
        push_argvlen_[1] = pc->args->stage.size();
        int m = 2;
        for (int size = group_size_[groups]; size > 0; size--, pc = pc->next, m++) {
            push_argv_[m] = pc->args->args[3].data();
            push_argvlen_[m] = pc->args->args[3].size();
        }
        if (redisAsyncCommandArgv(ac_, on_queued_reply, b, m, push_argv_, push_argvlen_) !=
            REDIS_OK)
            return abandon();
    }
    argv_[mode] = ">";
    if (redisAsyncCommandArgv(ac_, on_queued_reply, b, n, argv_, argvlen_) != REDIS_OK ||
        !sent(redisAsyncCommand(ac_, on_batch_reply, b, "EXEC"), b))
        return abandon();
    return true;
}

// A reply inside the guarded transaction: QUEUED, or an error that makes EXEC refuse it all,
// the first of which is kept for on_batch_reply.
void RedisLink::on_queued_reply(redisAsyncContext*, void* reply, void* privdata) noexcept {
    auto* r = static_cast<redisReply*>(reply);
    auto* b = static_cast<Batch*>(privdata);
    if (r == nullptr || r->type != REDIS_REPLY_ERROR || b->queued_error_len != 0)
        return;
    size_t n = std::min(r->len, sizeof b->queued_error);
    memcpy(b->queued_error, r->str, n);
    b->queued_error_len = static_cast<uint8_t>(n);
}

// Formats the batch script's call (EVALSHA, or EVAL after NOSCRIPT) from the batch's commands. A
// batch of one is sent as kIngest itself (see kMinBatch).
bool RedisLink::send_batch(Batch* b, bool eval) noexcept {
    if (ac_ == nullptr)
        return false;
    b->single = b->size == 1;
    if (b->single) {
        const IngestArgs& a = *b->head->args;
        ScriptCall call(eval, scripts::kIngest, single_sha_);
        call.keys_done(a.nkeys);
        for (int i = 0; i < a.nkeys; i++)
            call.put(a.keys[i]);
        for (int i = 0; i < a.nargs; i++)
            call.put(a.args[i]);
        return sent(redisAsyncCommandArgv(ac_, on_batch_reply, b, call.n, argv_, argvlen_), b);
    }
    // The script's records (shared/redis_keys.h): consecutive envelopes of one queue, limit and
    // ttl form a group whose common arguments go once; one with the loop part is a record alone.
    // The KEYS pass finds the groups and keeps their sizes for the ARGV pass.
    auto loop = [](const PendingCommand* pc) { return pc->args->nkeys != IngestArgs::kKeys; };
    ScriptCall call(eval, scripts::kIngestBatch, script_sha_);
    int numkeys = 0, groups = 0;
    for (const PendingCommand* pc = b->head; pc != nullptr;) {
        if (loop(pc)) {
            for (int i = 0; i < IngestArgs::kLoopKeys; i++)
                call.put(pc->args->keys[i]);
            numkeys += IngestArgs::kLoopKeys;
            pc = pc->next;
            continue;
        }
        int size = group_size(pc);
        call.put(pc->args->keys[0]);
        for (int i = 0; i < size; i++, pc = pc->next)
            call.put(pc->args->keys[1]);
        numkeys += 1 + size;
        group_size_[groups++] = size;
    }
    call.keys_done(numkeys);
    groups = 0;
    for (const PendingCommand* pc = b->head; pc != nullptr;) {
        if (loop(pc)) {
            call.put("L");
            for (int i = 0; i < IngestArgs::kLoopArgs; i++)
                call.put(pc->args->args[i]);
            pc = pc->next;
            continue;
        }
        int size = group_size_[groups];
        call.put(decimal(group_count_[groups], sizeof group_count_[0], size));
        groups++;
        call.put(pc->args->args[0]);
        call.put(pc->args->args[1]);
        for (; size > 0; size--, pc = pc->next) {
            call.put(pc->args->args[2]);
            call.put(pc->args->args[3]);
        }
    }
    const int n = call.n;
    return sent(redisAsyncCommandArgv(ac_, on_batch_reply, b, n, argv_, argvlen_), b);
}

// The script call is queued (rc): under hookq_redis_wait, WAIT follows it in the same write, so
// the replicas' count comes one replication delay after the script's reply, not one round trip.
// Redis blocks this connection meanwhile: the next batch's script runs once WAIT has answered.
bool RedisLink::sent(int rc, Batch* b) noexcept {
    if (rc != REDIS_OK)
        return false;
    b->link = this;
    if (conf_->wait_replicas <= 0)
        return true;
    b->replies_pending++;
    if (in_flush_) {  // the turn's WAIT, sent once the turn's calls are (wait_for_turn)
        b->replies_pending++;
        b->next_free = unwaited_;
        unwaited_ = b;
        return true;
    }
    // A NOSCRIPT retry or an ASK, outside the turn: its own WAIT.
    if (redisAsyncCommand(ac_, on_wait_reply, b, "WAIT %d %d",
                          static_cast<int>(conf_->wait_replicas),
                          static_cast<int>(conf_->wait_timeout)) == REDIS_OK)
        b->replies_pending++;
    return true;
}

// Every command of the batch gets an error (its request 503).
void RedisLink::fail_batch(Batch* b) noexcept {
    PendingCommand* pc = b->head;
    release_batch(b);
    while (pc != nullptr) {
        PendingCommand* next = pc->next;
        void* owner = pc->owner;
        IngestCallback cb = pc->callback;
        release(pc);
        if (owner != nullptr)
            cb(owner, IngestResult{});
        pc = next;
    }
}

// The handshake failed or the connection went away before it ended: every held command's request
// gets 503 now rather than at its timeout.
void RedisLink::fail_held() noexcept {
    if (flush_event_.posted) {  // nginx's macro is several statements
        ngx_delete_posted_event(&flush_event_);
    }
    held_.drain([](PendingCommand* pc) { fail_command(pc); });
}

void RedisLink::on_batch_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept {
    auto* link = static_cast<RedisLink*>(ac->data);
    auto* b = static_cast<Batch*>(privdata);
    auto* r = static_cast<redisReply*>(reply);
    if (r != nullptr)
        link->last_reply_at_ = ngx_current_msec;
    const bool wait = link->conf_->wait_replicas > 0;

    if (link->state_ == State::stopped) {
        PendingCommand* pc = b->head;
        b->head = nullptr;
        while (pc != nullptr) {
            PendingCommand* next = pc->next;
            link->release(pc);
            pc = next;
        }
        if (!wait || --b->replies_pending <= 0)
            link->release_batch(b);
        return;
    }
    // The guarded transaction answers in EXEC's reply: its first call's 0, the LPUSHXes' counts,
    // then its second call's replies, one per command. After a MOVED or ASK of a command in it,
    // EXEC refuses it all (EXECABORT): the redirect was kept from the command's own reply.
    const redisReply* first = r;
    const redisReply* res = r;
    std::string_view error = r != nullptr && r->type == REDIS_REPLY_ERROR
                                 ? std::string_view{r->str, r->len}
                                 : std::string_view{};
    if (b->guarded) {
        if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements >= 3) {
            first = r->element[0];
            res = r->element[r->elements - 1];
        }
        if (b->queued_error_len > 0)
            error = {b->queued_error, b->queued_error_len};
    }
    // Redis restarted or flushed its script cache: nothing of the batch ran (in the guarded
    // transaction, neither call of the script, so LPUSHX found no stage). EVAL carries the script
    // and caches it again, for the commands whose requests still wait (the others' arguments died
    // with their pools).
    if (first != nullptr && first->type == REDIS_REPLY_ERROR && !b->retried &&
        std::string_view(first->str, first->len).starts_with("NOSCRIPT")) {
        PendingCommand** at = &b->head;
        while (*at != nullptr) {
            PendingCommand* pc = *at;
            if (pc->owner == nullptr) {
                *at = pc->next;
                link->release(pc);
                b->size--;
            } else {
                at = &pc->next;
            }
        }
        if (b->head == nullptr) {
            if (!wait || --b->replies_pending <= 0)
                link->release_batch(b);
            return;
        }
        b->retried = true;
        if (link->send(b, true)) {
            if (wait)
                b->replies_pending--;  // this reply; the retry's two are counted by send()
            return;
        }
    }
    if (link->cluster_ && !error.empty() && link->redirected(b, error)) {
        if (!wait || --b->replies_pending <= 0)
            link->release_batch(b);
        return;
    }
    char note[96];
    bool whole = res != nullptr && res->type == REDIS_REPLY_ARRAY &&
                 (b->single || res->elements == static_cast<size_t>(b->size));
    if (res != nullptr && !whole && g_ingest_errors.allow(note, sizeof note)) {
        std::string_view why = res == r && !error.empty() ? error
                               : res->type == REDIS_REPLY_ERROR
                                   ? reply_text(res)
                                   : std::string_view{"unexpected reply"};
        ngx_log_error(NGX_LOG_ERR, link->log_, 0, "hookq: redis %s: ingest failed: %*s%s",
                      link->addr_.display.c_str(), why.size(), why.data(), note);
    }
    if (wait) {
        link->store_results(b, whole ? res : nullptr);
        if (--b->replies_pending <= 0)
            link->finish_waited(b);
        return;
    }
    // Answered in order; the owner is read as each command's turn comes, since answering one
    // request can free another (its request pool cleanup then detaches it).
    PendingCommand* pc = b->head;
    bool b_single = b->single;
    link->release_batch(b);
    for (size_t i = 0; pc != nullptr; i++) {
        PendingCommand* next = pc->next;
        void* owner = pc->owner;
        IngestCallback cb = pc->callback;
        IngestResult result;
        if (whole && owner != nullptr) {
            const redisReply* one = b_single ? res : res->element[i];
            result = parse_ingest(one);
            if (result.status == IngestStatus::wrong_type ||
                (result.status == IngestStatus::error && !result.detail.empty()))
                link->log_ingest_error(*pc->args, result);
        }
        link->release(pc);
        if (owner != nullptr)
            cb(owner, result);
        pc = next;
    }
}

// Under hookq_redis_wait: each command's answer, copied out of the reply (freed after this
// callback) until WAIT's reply decides. r null: the call failed as a whole.
void RedisLink::store_results(Batch* b, const redisReply* r) noexcept {
    size_t i = 0;
    for (PendingCommand* pc = b->head; pc != nullptr; pc = pc->next, i++) {
        IngestResult result;
        if (r != nullptr && pc->owner != nullptr) {
            result = parse_ingest(b->single ? r : r->element[i]);
            if (result.status == IngestStatus::wrong_type ||
                (result.status == IngestStatus::error && !result.detail.empty()))
                log_ingest_error(*pc->args, result);
        }
        pc->status = result.status;
        pc->loop = static_cast<uint8_t>(result.loop);
        size_t n = std::min(result.detail.size(), sizeof pc->detail);
        if (n < result.detail.size() && result.status == IngestStatus::duplicate)
            pc->status = IngestStatus::error;  // an id that does not fit is no id
        // An empty view may have no data at all, and memcpy's source must not be null.
        if (n > 0)
            memcpy(pc->detail, result.detail.data(), n);
        pc->detail_len = static_cast<uint8_t>(n);
    }
}

void RedisLink::on_wait_reply(redisAsyncContext*, void* reply, void* privdata) noexcept {
    auto* b = static_cast<Batch*>(privdata);
    auto* link = b->link;
    auto* r = static_cast<redisReply*>(reply);
    if (r != nullptr)
        link->last_reply_at_ = ngx_current_msec;
    b->acked = r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (--b->replies_pending > 0)
        return;
    if (link->state_ == State::stopped) {
        PendingCommand* pc = b->head;
        while (pc != nullptr) {
            PendingCommand* next = pc->next;
            link->release(pc);
            pc = next;
        }
        link->release_batch(b);
        return;
    }
    link->finish_waited(b);
}

// privdata: the turn's batches, linked by next_free (unused while a batch is in flight).
void RedisLink::on_turn_wait_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept {
    auto* b = static_cast<Batch*>(privdata);
    while (b != nullptr) {
        Batch* next = b->next_free;  // b may be released below
        b->next_free = nullptr;
        on_wait_reply(ac, reply, b);
        b = next;
    }
}

// Both replies are in: the stored answers go out, except that a write WAIT did not see reach
// enough replicas is answered 503. It is on the master, and a replica may have it or not; the
// provider's retry is then a duplicate (2xx) while the master lives, or stored afresh on the
// promoted replica if the master died without passing it on.
void RedisLink::finish_waited(Batch* b) noexcept {
    const bool replicated = b->acked >= conf_->wait_replicas;
    PendingCommand* pc = b->head;
    release_batch(b);
    bool logged = false;
    while (pc != nullptr) {
        PendingCommand* next = pc->next;
        void* owner = pc->owner;
        IngestCallback cb = pc->callback;
        IngestResult result;
        if (owner != nullptr) {
            result.status = pc->status;
            result.loop = pc->loop;
            result.detail = {pc->detail, pc->detail_len};
            if (result.status == IngestStatus::accepted && !replicated) {
                char note[96];
                if (!logged && g_ingest_errors.allow(note, sizeof note))
                    ngx_log_error(NGX_LOG_ERR, log_, 0,
                                  "hookq: redis %s: WAIT counted %L of %i replicas within %M ms: "
                                  "answering 503 for writes not known to be replicated%s",
                                  addr_.display.c_str(), b->acked < 0 ? 0LL : b->acked,
                                  conf_->wait_replicas, conf_->wait_timeout, note);
                logged = true;
                result = IngestResult{IngestStatus::unreplicated};
            }
        }
        release(pc);
        if (owner != nullptr)
            cb(owner, result);
        pc = next;
    }
}

// In a cluster: MOVED (the slot has another master: nothing ran) sends the batch's commands to
// it, and the slot map is refreshed soon; ASK (the slot is migrating and these keys are already
// on the target) sends them there once, after ASKING. True when the batch was redirected (its
// commands are no longer in it).
bool RedisLink::redirected(Batch* b, std::string_view text) noexcept {
    bool ask = text.starts_with("ASK ");
    if (!ask && !text.starts_with("MOVED "))
        return false;
    // "MOVED 3999 127.0.0.1:6381"
    text.remove_prefix(ask ? 4 : 6);
    auto sp = text.find(' ');
    auto colon = text.rfind(':');
    if (sp == std::string_view::npos || colon == std::string_view::npos || colon < sp)
        return false;
    int slot = 0, port = 0;
    auto [p1, e1] = std::from_chars(text.data(), text.data() + sp, slot);
    auto [p2, e2] = std::from_chars(text.data() + colon + 1, text.data() + text.size(), port);
    if (e1 != std::errc() || e2 != std::errc() || slot < 0 || slot >= cluster::kSlots)
        return false;
    std::string_view host = text.substr(sp + 1, colon - sp - 1);
    PendingCommand* pc = b->head;
    b->head = nullptr;
    b->size = 0;
    RedisRouter::instance().redirect(pc, ask, slot, host, port, this);
    return true;
}

bool RedisLink::send_asking(Batch* b) noexcept {
    if (state_ != State::ready || ac_ == nullptr)
        return false;
    if (redisAsyncCommand(ac_, nullptr, nullptr, "ASKING") != REDIS_OK)
        return false;
    for (PendingCommand* pc = b->head; pc != nullptr; pc = pc->next) {
        pc->link = this;
        pc->sent_at = ngx_current_msec;
    }
    return send(b, false);
}

bool RedisLink::query_slots(void (*cb)(RedisLink* link, const void* reply)) noexcept {
    if (state_ != State::ready || ac_ == nullptr || slots_cb_ != nullptr)
        return false;
    if (redisAsyncCommand(ac_, on_slots_reply, nullptr, "CLUSTER SLOTS") != REDIS_OK)
        return false;
    slots_cb_ = cb;
    return true;
}

void RedisLink::on_slots_reply(redisAsyncContext* ac, void* reply, void*) noexcept {
    auto* link = static_cast<RedisLink*>(ac->data);
    auto cb = link->slots_cb_;
    link->slots_cb_ = nullptr;
    if (reply != nullptr)
        link->last_reply_at_ = ngx_current_msec;
    if (cb != nullptr && link->state_ != State::stopped)
        cb(link, reply);
}

void RedisLink::log_ingest_error(const IngestArgs& args, const IngestResult& result) noexcept {
    char note[96];
    if (!g_ingest_errors.allow(note, sizeof note))
        return;
    if (result.status == IngestStatus::wrong_type) {
        // KEYS[1] is the queue key, KEYS[3..6] the loop part's (see the handler).
        static constexpr const char* kLoopKeyTypes[] = {"string", "zset", "hash", "list"};
        bool loop_key = result.loop >= 3 && result.loop <= 6 && result.loop <= args.nkeys;
        std::string_view key = args.keys[loop_key ? result.loop - 1 : 0];
        ngx_log_error(NGX_LOG_ERR, log_, 0,
                      "hookq: redis %s: %s key \"%*s\" holds a %*s, not a %s: nothing was "
                      "written, requests get 503 until the key is fixed%s",
                      addr_.display.c_str(), loop_key ? "loop" : "queue", key.size(), key.data(),
                      result.detail.size(), result.detail.data(),
                      loop_key ? kLoopKeyTypes[result.loop - 3] : "list", note);
    } else {
        ngx_log_error(NGX_LOG_ERR, log_, 0, "hookq: redis %s: ingest failed: %*s%s",
                      addr_.display.c_str(), result.detail.size(), result.detail.data(), note);
    }
}

void RedisLink::timed_out(PendingCommand* pc) noexcept {
    ngx_msec_t sent_at = pc->sent_at;
    pc->owner = nullptr;  // the reply, if it ever comes, is dropped
    if (state_ == State::ready && static_cast<ngx_msec_int_t>(last_reply_at_ - sent_at) < 0) {
        ngx_log_error(NGX_LOG_ERR, log_, 0,
                      "hookq: redis %s: no reply within hookq_redis_timeout, reconnecting",
                      addr_.display.c_str());
        drop("timeout");
    }
}

}  // namespace hookq::edge
