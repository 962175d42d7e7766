#include "worker/recorder.h"

#include <thread>

#include "worker/log.h"
#include "worker/park.h"

namespace hookq {

namespace {
// Errors that are about the rows themselves rather than the server or the schema: class 22
// (data exception) and 23 (integrity constraint violation). Anything else is retried as a whole.
bool row_error(const std::string& sqlstate) {
    return sqlstate.starts_with("22") || sqlstate.starts_with("23");
}
}  // namespace

void Recorder::backoff(uint64_t& ms) {
    ms = ms ? std::min<uint64_t>(ms * 2, 2000) : 50;
    uint64_t until = mono_ms() + ms;
    while (mono_ms() < until && !abandon_.load()) {
        s_.tick_record.store(mono_ms());
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
        next_partition_check_ms_ = 0;
    }
    uint64_t now = mono_ms();
    if (now >= next_partition_check_ms_) {
        // Partitions ahead of time; failure here is only a warning thanks to the DEFAULT partition.
        if (!pg_.exec("SELECT hookq_ensure_partitions(2)")) {
            log::warn("cannot ensure partitions", {{"error", pg_.error()}});
        }
        next_partition_check_ms_ = now + 3600 * 1000;
    }
    return pg_.ok();
}

bool Recorder::commit(const std::vector<const Job*>& jobs,
                      const std::vector<const Transition*>& trs) {
    if (!ensure_pg()) {
        return false;
    }
    auto stmts = build_batch(jobs, trs, s_.cfg.worker_id);
    if (stmts.empty()) {
        return true;
    }
    bool ok = pg_.exec("BEGIN");
    for (size_t i = 0; ok && i < stmts.size(); ++i) {
        ok = pg_.exec(stmts[i]);
    }
    ok = ok && pg_.exec("COMMIT");
    if (ok) {
        return true;
    }
    std::string err = pg_.error();
    std::string state = pg_.sqlstate();
    if (pg_.ok()) {
        pg_.exec("ROLLBACK");
    }
    if (!pg_.ok()) {
        pg_.close();
        if (!pg_down_logged_) {
            log::error("postgresql connection lost: not acking until it is back", {{"error", err}});
            pg_down_logged_ = true;
        }
        return false;
    }
    if (row_error(state) && jobs.size() + trs.size() > 1) {
        // One bad row must not hold the whole batch hostage: record them one at a time.
        for (const Job* j : jobs) {
            if (!commit({j}, {})) {
                return false;
            }
        }
        for (const Transition* t : trs) {
            if (!commit({}, {t})) {
                return false;
            }
        }
        return true;
    }
    if (row_error(state) && jobs.size() == 1) {
        // A single webhook PostgreSQL refuses: keep it safe in Redis (poison list) and go on.
        auto* j = const_cast<Job*>(jobs[0]);
        log::error(
            "cannot record webhook; moving it to the poison list",
            {{"request_id", j->env.request_id.str()}, {"source", j->env.source}, {"error", err}});
        j->decoded = false;
        j->poison_reason = "postgresql refused the row: " + err;
        j->outcomes.clear();
        return true;
    }
    log::error("recording batch failed; retrying", {{"error", err}, {"sqlstate", state}});
    return false;
}

bool Recorder::ack(const std::vector<JobPtr>& jobs) {
    if (!redis_.ensure()) {
        return false;
    }
    const Config& c = s_.cfg;
    std::vector<std::string> records;
    for (const JobPtr& jp : jobs) {
        const Job& j = *jp;
        if (park::has_parked(j)) {
            park::append_ack(redis_, s_, j);  // one script: inflight -> parked set(s), atomically
            continue;
        }
        const std::string& q = c.queues[j.queue];
        std::string inflight = keys::inflight(q, c.worker_id);
        bool multi = !j.decoded;
        for (const auto& o : j.outcomes) {
            multi = multi || o.kind == OutcomeKind::retry || o.kind == OutcomeKind::parked;
        }
        // A retry record and the removal from inflight go in one MULTI (all keys share the
        // queue's hash tag, so this also holds on Redis Cluster); a plain ack is one LREM.
        if (multi) {
            redis_.append({"MULTI"});
        }
        if (!j.decoded) {
            redis_.append({"LPUSH", keys::poison(q), j.raw});
        }
        for (const auto& o : j.outcomes) {
            if (o.kind != OutcomeKind::retry && o.kind != OutcomeKind::parked) {
                continue;
            }
            RetryRecord rec;
            rec.route = o.route;
            rec.attempt = o.next_attempt;
            rec.first_attempt_us = j.first_attempt_us;
            rec.envelope = std::string(j.envelope_bytes());
            records.push_back(rec.encode());
            std::string score = std::to_string(o.due_ms);
            redis_.append({"ZADD", keys::retry(q), score, records.back()});
        }
        redis_.append({"LREM", inflight, "-1", j.raw});
        if (multi) {
            redis_.append({"EXEC"});
        }
    }
    std::vector<Reply> replies;
    if (!redis_.read_replies(replies)) {
        return false;
    }
    for (const Reply& r : replies) {
        if (!r || r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL) {
            park::note_ack_error(r);
            log::error("ack failed; retrying",
                       {{"error", r && r->str ? std::string(r->str, r->len) : "nil reply"}});
            return false;
        }
    }
    return true;
}

void Recorder::log_outcomes(const Job& j) {
    if (!j.decoded) {
        log::error("undecodable element moved to the poison list",
                   {{"queue", s_.cfg.queues[j.queue]},
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
        }
        if (o.flag_route) {
            log::warn("route flagged: destination answered 410 Gone",
                      {{"request_id", id}, {"source", j.env.source}, {"route", o.route}});
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
    uint64_t delay = 0;
    while (!commit(jp, tp)) {
        if (abandon_.load()) {
            return;
        }
        backoff(delay);
    }
    delay = 0;
    while (!jobs.empty() && !ack(jobs)) {
        if (abandon_.load()) {
            return;
        }
        backoff(delay);
    }
    for (const auto& j : jobs) {
        log_outcomes(*j);
    }
    s_.release(static_cast<int64_t>(jobs.size()));
}

void Recorder::run() {
    const Config& c = s_.cfg;
    std::vector<RecordMsg> batch;
    RecordMsg m;
    for (;;) {
        s_.tick_record.store(mono_ms());
        if (!s_.to_record.pop(m, std::chrono::milliseconds(100))) {
            if (s_.to_record.closed_and_empty() || abandon_.load()) {
                return;
            }
            if (pg_.ok() || mono_ms() >= next_partition_check_ms_) {
                // Idle: keep the connection honest (and partitions ahead) without waiting for work.
                ensure_pg();
            }
            continue;
        }
        batch.push_back(std::move(m));
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(c.record_flush_ms);
        while (batch.size() < c.record_batch && s_.to_record.pop_until(m, deadline)) {
            batch.push_back(std::move(m));
        }
        process(batch);
        if (abandon_.load()) {
            return;
        }
    }
}

}  // namespace hookq
