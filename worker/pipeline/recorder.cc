#include "worker/pipeline/recorder.h"

#include <algorithm>
#include <thread>
#include <unordered_set>

#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/pipeline/park.h"

namespace hookq {

namespace {
// Errors about the rows themselves rather than the server or the schema: class 21 (cardinality
// violation: an ON CONFLICT DO UPDATE given one key twice, which splitting the batch separates),
// 22 (data exception), 23 (integrity constraint violation), 54 (program limit exceeded: an index
// row too large, a value too long), and an error libpq raised on a live connection without asking
// the server (no SQLSTATE). Such a batch is split to find the rows; anything else is retried
// whole, and retried as it is, a batch that PostgreSQL refuses for its rows would never pass.
bool row_error(const std::string& sqlstate) {
    return sqlstate.empty() || sqlstate.starts_with("21") || sqlstate.starts_with("22") ||
           sqlstate.starts_with("23") || sqlstate.starts_with("54");
}

// The server is there but cannot take writes now (shutting down or starting up, out of
// connections or disk, a read-only standby after a failover): like an outage, a restart of the
// worker would not help, so waiting for it keeps the watchdog fed.
bool server_unavailable(const std::string& sqlstate) {
    return sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57") ||
           sqlstate == "25006";
}

// Deletes a replay's pending marker only while it is still the one set by the job that pushed this
// copy: a copy delivered twice (reaped, then finished by both workers) cannot clear the marker of
// a later job's push.
constexpr std::string_view kClearReplayPending =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

// Whether this ack ends what a replay job pushed: no outcome of the copy's route goes on (retry,
// parked, waiting). A bare envelope (a replay of a webhook no route had matched) has been routed
// afresh, which is all its replay asked for.
bool replay_decided(const Job& j) {
    if (!j.retry) {
        return true;
    }
    for (const auto& o : j.outcomes) {
        if (o.kind == OutcomeKind::retry || o.kind == OutcomeKind::parked ||
            o.kind == OutcomeKind::waiting) {
            return false;
        }
    }
    return true;
}
}  // namespace

void Recorder::backoff(uint64_t& ms) {
    ms = ms ? std::min<uint64_t>(ms * 2, 2000) : 50;
    uint64_t until = mono_ms() + ms;
    while (mono_ms() < until && !abandon_.load()) {
        // Waiting for a server that is away keeps the watchdog fed: a restart would not bring it
        // back. Retrying an error the server keeps giving does not: after the watchdog's limit
        // without a batch written, systemd should see a wedged recorder.
        if (!failing_) {
            s_.tick_record.store(mono_ms());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

bool Recorder::ensure_pg() {
    if (!pg_.ok()) {
        if (!pg_.connect()) {
            if (!pg_down_logged_) {
                log::error("postgresql unavailable: not acking until it is back",
                           {{"error", pg_.error()}});
                pg_down_logged_ = true;
            }
            return false;
        }
        // The ack trusts COMMIT: a server running with synchronous_commit=off could lose a
        // committed batch in a crash after we removed it from Redis. Durable for this session.
        if (!pg_.exec("SET synchronous_commit = on")) {
            log::warn("cannot set synchronous_commit", {{"error", pg_.error()}});
            pg_.close();
            return false;
        }
        if (pg_down_logged_) {
            log::info("postgresql connection restored");
        }
        pg_down_logged_ = false;
    }
    return pg_.ok();
}

Recorder::Write Recorder::write(const std::vector<const Job*>& jobs,
                                const std::vector<const Transition*>& trs) {
    auto stmts = build_batch(jobs, trs, s_.cfg.worker_id);
    if (stmts.empty()) {
        return Write::ok;
    }
    // Several statements when the parameter limit splits a table, one transaction all the same:
    // the batch is acked only once all of it is committed.
    bool ok = pg_.exec("BEGIN");
    for (size_t i = 0; ok && i < stmts.size(); ++i) {
        if (stmts[i].jobs.empty()) {
            ok = pg_.exec(stmts[i]);
            continue;
        }
        PgResult r = pg_.query(stmts[i]);
        ok = r != nullptr;
        if (!ok || static_cast<size_t>(PQntuples(r.get())) == stmts[i].jobs.size()) {
            continue;
        }
        std::unordered_set<std::string> found;
        for (int k = 0; k < PQntuples(r.get()); ++k) {
            found.emplace(PQgetvalue(r.get(), k, 0));
        }
        std::vector<const Job*> missing;
        for (const Job* j : stmts[i].jobs) {
            if (!found.count(j->env.request_id.str())) {
                missing.push_back(j);
            }
        }
        for (const auto& st : event_inserts(missing)) {
            ok = ok && pg_.exec(st);
        }
    }
    ok = ok && pg_.exec("COMMIT");
    if (ok) {
        return Write::ok;
    }
    error_ = pg_.error();
    sqlstate_ = pg_.sqlstate();
    if (pg_.ok()) {
        pg_.exec("ROLLBACK");
    }
    if (!pg_.ok()) {
        pg_.close();
        if (!pg_down_logged_) {
            log::error("postgresql connection lost: not acking until it is back",
                       {{"error", error_}});
            pg_down_logged_ = true;
        }
        return Write::lost;
    }
    return row_error(sqlstate_) ? Write::rows : Write::other;
}

void Recorder::poison(const Job& job) {
    // A single webhook PostgreSQL refuses: keep it safe in Redis (poison list) and go on.
    auto* j = const_cast<Job*>(&job);
    log::error("cannot record webhook; moving it to the poison list",
               {{"request_id", j->env.request_id.str()},
                {"source", sanitize_text(j->env.source.substr(0, 200))},
                {"error", error_},
                {"sqlstate", sqlstate_}});
    // A trace for the dashboard and `hookqctl dlq list`, in its own transaction: the refused
    // event row is not part of it. If even this is refused, the poison list and the log remain.
    Statement trace = poison_trace(*j, error_);
    if (!pg_.exec("BEGIN") || !pg_.exec(trace) || !pg_.exec("COMMIT")) {
        log::warn("cannot record the poison trace",
                  {{"request_id", j->env.request_id.str()}, {"error", pg_.error()}});
        if (pg_.ok()) {
            pg_.exec("ROLLBACK");
        }
    }
    park::add_waiting_places(s_, *j);
    j->decoded = false;
    j->poison_reason = "postgresql refused the row: " + error_;
    j->outcomes.clear();
}

bool Recorder::commit(std::vector<const Job*>& jobs, std::vector<const Transition*>& trs) {
    if (!ensure_pg()) {
        failing_ = false;
        return false;
    }
    // Jobs then transitions, as one list of items to bisect.
    size_t n = jobs.size() + trs.size();
    std::vector<char> done(n, 0);
    std::vector<std::pair<size_t, size_t>> todo{{0, n}};
    bool splitting = false;
    Write res = Write::ok;
    while (!todo.empty()) {
        auto [b, e] = todo.back();
        todo.pop_back();
        std::vector<const Job*> js;
        std::vector<const Transition*> ts;
        for (size_t i = b; i < e; ++i) {
            if (i < jobs.size()) {
                js.push_back(jobs[i]);
            } else {
                ts.push_back(trs[i - jobs.size()]);
            }
        }
        res = write(js, ts);
        if (res == Write::rows && e - b > 1) {
            // One bad row must not hold the whole batch hostage: halve until it stands alone;
            // every half that goes in is committed (and acked with the rest).
            if (!splitting) {
                log::warn("postgresql refused a batch; isolating the rows it refuses",
                          {{"error", error_}, {"sqlstate", sqlstate_}, {"items", e - b}});
                splitting = true;
            }
            size_t mid = b + (e - b) / 2;
            todo.emplace_back(mid, e);
            todo.emplace_back(b, mid);
            continue;
        }
        if (res == Write::rows) {
            if (b < jobs.size()) {
                poison(*jobs[b]);
            } else {
                log::error("cannot record breaker transition; dropping it",
                           {{"destination", trs[b - jobs.size()]->destination}, {"error", error_}});
            }
            res = Write::ok;
        }
        if (res != Write::ok) {
            break;
        }
        std::fill(done.begin() + static_cast<ptrdiff_t>(b),
                  done.begin() + static_cast<ptrdiff_t>(e), 1);
    }
    if (res == Write::ok) {
        failing_ = false;
        return true;
    }
    // Keep only what is not committed yet for the next try.
    std::vector<const Job*> jr;
    std::vector<const Transition*> tr;
    for (size_t i = 0; i < n; ++i) {
        if (!done[i]) {
            if (i < jobs.size()) {
                jr.push_back(jobs[i]);
            } else {
                tr.push_back(trs[i - jobs.size()]);
            }
        }
    }
    jobs.swap(jr);
    trs.swap(tr);
    failing_ = res == Write::other && !server_unavailable(sqlstate_);
    if (failing_) {
        log::error("recording batch failed; retrying",
                   {{"error", error_}, {"sqlstate", sqlstate_}});
    }
    return false;
}

// Acks what Redis takes of `jobs` (in order): those acked go to `done`, the rest stay in `jobs`.
// A job's commands are all on its queue's master, so on Redis Cluster a lost master leaves only
// its own queues' jobs behind; on one Redis a connection lost mid-pipeline leaves the jobs from
// the first reply lost. Only those are sent again: what did run is not run twice.
void Recorder::ack(std::vector<JobPtr>& jobs, std::vector<JobPtr>& done) {
    if (!redis_.ensure()) {
        note_ack_failure(redis_.last_error(), jobs);
        return;
    }
    const Config& c = s_.cfg;
    // For each job, the reply that says whether its element was still in inflight: the LREM count,
    // or the park script's 0/1.
    struct Check {
        size_t reply;
        bool poison = false;  // park::kPoison's reply: {LREM count, entities handed on}
    };
    std::vector<Check> checks;
    checks.reserve(jobs.size());
    size_t n = 0;
    for (const JobPtr& jp : jobs) {
        const Job& j = *jp;
        if (j.decoded && !j.replay.empty() && replay_decided(j)) {
            // Best effort, in the ack's pipeline (no round trip of its own): a failed clear is not
            // the ack's failure (the marker's TTL ends it), and clearing twice is harmless.
            const std::string& q = c.queues[j.queue];
            redis_.append({"EVAL", kClearReplayPending, "1",
                           keys::replay_pending(q, j.env.request_id.str(),
                                                j.retry ? std::string_view(j.retry->route) : "-"),
                           j.replay});
            ++n;
        }
        if (j.decoded && park::needs_records(j)) {
            // One script: out of inflight and into the retry or parked set in the same step, with
            // the envelope sent once.
            park::append_ack(redis_, s_, j);
            checks.push_back({n++});
            continue;
        }
        if (!j.decoded) {
            // Out of inflight and onto the poison list in one script, and only if it was still in
            // inflight. Refused while it holds or waits for entities, it hands them on and leaves
            // their lines in the same step, or every later update of them would wait for an
            // operator.
            park::append_poison(redis_, s_, j);
            checks.push_back({n++, true});
            continue;
        }
        redis_.append({"LREM", inflight_keys_[j.queue], "-1", j.raw});
        checks.push_back({n++});
    }
    std::vector<Reply> replies;
    redis_.read_replies(replies);
    std::vector<JobPtr> left;
    std::string error;
    for (size_t i = 0; i < jobs.size(); ++i) {
        const Reply* reply = checks[i].reply < replies.size() ? &replies[checks[i].reply] : nullptr;
        const redisReply* r = reply ? reply->get() : nullptr;
        if (!r || r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL) {
            if (r) {
                park::note_ack_error(*reply);
            }
            if (error.empty()) {
                error = r && r->str ? std::string(r->str, r->len) : redis_.last_error();
            }
            left.push_back(std::move(jobs[i]));
            continue;
        }
        if (checks[i].poison) {
            park::log_poison_hand_on(s_, *jobs[i], r);
            r = r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0] : nullptr;
        }
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            // The element had already left our inflight list: another worker reaped it (our
            // heartbeat lapsed) and it will be delivered again. At-least-once still holds, but an
            // operator should know a route may have seen this webhook twice.
            uint64_t total = metrics::global().ack_removed_nothing();
            const Job& j = *jobs[i];
            log::warn(
                "ack removed nothing: the webhook left inflight before its outcome was "
                "recorded and may be delivered again",
                {{"request_id",
                  j.env.request_id != Uuid{} ? j.env.request_id.str() : std::string("-")},
                 {"queue", c.queues[j.queue]},
                 {"total", total}});
        }
        done.push_back(std::move(jobs[i]));
    }
    jobs = std::move(left);
    if (!jobs.empty()) {
        note_ack_failure(error, jobs);
    }
}

// Said once per outage, not on every retry: which queues wait, and why.
void Recorder::note_ack_failure(const std::string& error, const std::vector<JobPtr>& waiting) {
    if (acks_failing_) {
        return;
    }
    acks_failing_ = true;
    // By index, not by substring: queue "a" is not already listed because "ab" is.
    std::vector<bool> listed(s_.cfg.queues.size());
    std::string queues;
    for (const JobPtr& j : waiting) {
        if (!listed[j->queue]) {
            listed[j->queue] = true;
            queues += (queues.empty() ? "" : ",") + s_.cfg.queues[j->queue];
        }
    }
    log::error("ack failed: recorded webhooks wait in inflight until Redis takes their ack",
               {{"error", error.empty() ? std::string("redis unavailable") : error},
                {"queues", queues},
                {"waiting", static_cast<int64_t>(waiting.size())}});
}

void Recorder::log_outcomes(const Job& j) {
    if (!j.decoded) {
        log::error("element moved to the poison list", {{"queue", s_.cfg.queues[j.queue]},
                                                        {"reason", j.poison_reason},
                                                        {"bytes", j.raw.size()}});
        return;
    }
    if (!log::enabled(spdlog::level::info)) {
        return;
    }
    std::string id = j.env.request_id.str();
    for (const auto& o : j.outcomes) {
        log::Fields f = {{"request_id", id},
                         {"source", j.env.source},
                         {"route", o.route},
                         {"attempt", o.attempt}};
        if (!j.event_type.empty()) {
            f["event_type"] = j.event_type;
        }
        switch (o.kind) {
            case OutcomeKind::delivered:
                f["latency_ms"] = (o.at_us - std::min(o.at_us, j.env.received_at_us)) / 1000;
                log::info("delivered", f);
                break;
            case OutcomeKind::retry:
                f["reason"] = o.reason;
                f["retry_in_ms"] = o.due_ms > o.at_us / 1000 ? o.due_ms - o.at_us / 1000 : 0;
                log::info("retry scheduled", f);
                break;
            case OutcomeKind::parked:
                f["reason"] = o.reason;
                f["until_ms"] = o.due_ms;
                log::info("parked", f);
                break;
            case OutcomeKind::dead:
                f["reason"] = o.reason;
                log::warn("dead-lettered", f);
                break;
            case OutcomeKind::split:
            case OutcomeKind::waiting:
            case OutcomeKind::coalesced:
                f["detail"] = o.reason;
                log::info(to_string(o.kind), f);
                break;
        }
        if (o.flag_route) {
            log::warn("route flagged: destination answered 410 Gone",
                      {{"request_id", id}, {"source", j.env.source}, {"route", o.route}});
        }
    }
    for (const OrderHold& h : j.holds) {
        if (!h.merged.empty()) {
            log::info("coalesced",
                      {{"request_id", id}, {"route", h.route}, {"merged", h.merged.size()}});
        }
    }
}

void Recorder::process(std::vector<RecordMsg>& batch) {
    std::vector<JobPtr> jobs;
    std::vector<Transition> trs;
    for (auto& m : batch) {
        if (auto* j = std::get_if<JobPtr>(&m)) {
            jobs.push_back(std::move(*j));
        } else {
            trs.push_back(std::move(std::get<Transition>(m)));
        }
    }
    batch.clear();
    std::vector<const Job*> jp;
    for (const auto& j : jobs) {
        jp.push_back(j.get());
    }
    std::vector<const Transition*> tp;
    for (const auto& t : trs) {
        tp.push_back(&t);
    }
    uint64_t delay = 0, t0 = now_us();
    while (!commit(jp, tp)) {
        if (abandon_.load()) {
            return;
        }
        backoff(delay);
    }
    metrics::global().recorded(now_us() - t0, jobs.size(), trs.size());
    // Committed: from here on only their acks are left. Those Redis does not take now wait in
    // unacked_ (their elements stay in inflight, heartbeated, holding their share of
    // max_inflight) while later batches go on: a lost master holds up only its own queues.
    for (auto& j : jobs) {
        unacked_.push_back(std::move(j));
    }
    settle();
}

// Acks what waits, earliest first (a queue's acks keep their order), and finishes what was acked.
void Recorder::settle() {
    if (unacked_.empty()) {
        return;
    }
    std::vector<JobPtr>& done = acked_;
    ack(unacked_, done);
    metrics::global().acks_pending(unacked_.size());
    if (unacked_.empty()) {
        next_ack_ms_ = 0;
        ack_delay_ms_ = 0;
        if (acks_failing_) {
            log::info("acks caught up: Redis took every waiting ack");
            acks_failing_ = false;
        }
    } else {
        ack_delay_ms_ = ack_delay_ms_ ? std::min<uint64_t>(ack_delay_ms_ * 2, 2000) : 50;
        next_ack_ms_ = mono_ms() + ack_delay_ms_;
    }
    for (const auto& j : done) {
        log_outcomes(*j);
    }
    metrics::global().acked(done);
    for (const auto& j : done) {
        for (const OrderHold& h : j->holds) {
            const Route* r = s_.router.by_name(h.route);
            for (size_t i = 0; r && park::final_for(*j, h) && i < h.merged.size(); ++i) {
                metrics::global().outcome(r->index, OutcomeKind::coalesced);
            }
        }
    }
    s_.release(static_cast<int64_t>(done.size()));
    done.clear();  // keeps its capacity: no allocation per batch
}

void Recorder::run() {
    const Config& c = s_.cfg;
    std::vector<RecordMsg> batch;
    RecordMsg m;
    for (;;) {
        s_.tick_record.store(mono_ms());
        if (!unacked_.empty() && mono_ms() >= next_ack_ms_) {
            settle();
        }
        auto wait = std::chrono::milliseconds(unacked_.empty() ? 100 : 20);
        if (!s_.to_record.pop(m, wait)) {
            if ((s_.to_record.closed_and_empty() && unacked_.empty()) || abandon_.load()) {
                return;
            }
            if (pg_.ok()) {
                // Idle: keep the connection honest without waiting for work. (Partitions and
                // retention are jobs/maintenance.h's, on their own connection.)
                ensure_pg();
            }
            continue;
        }
        batch.push_back(std::move(m));
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(c.record_flush_ms);
        while (batch.size() < c.record_batch &&
               s_.to_record.pop_many(batch, c.record_batch - batch.size(), deadline)) {
        }
        process(batch);
        if (abandon_.load()) {
            return;
        }
    }
}

}  // namespace hookq
