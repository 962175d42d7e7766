#include "worker/jobs/replay_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <vector>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/ops/dead_letters.h"
#include "worker/ops/replay.h"
#include "worker/pipeline/messages.h"

namespace hookq {

namespace {

using ctl::cell;
using ctl::is_null;
using ctl::must_query;

constexpr uint64_t kPollMs = 1000;
constexpr uint64_t kFlushMs = 250;
constexpr int kBatch = 200;
// How long a job's set of pushed (webhook, route) pairs is kept in Redis: a job cancelled and
// resumed within this time still sends nothing twice.
constexpr int kDedupTtlS = 7 * 24 * 3600;
// How long a pushed copy holds off other jobs at most (keys::replay_pending) when the ack of its
// final outcome never clears the marker: the copy was taken out of Redis by hand, or the worker
// that acked it predates the marker. A copy still undecided after this long (a route paused or a
// breaker open for a day) may be pushed once more by another job.
constexpr int kPendingTtlS = 24 * 3600;

// No double send across a crash. The job's cursor and counters live in PostgreSQL, the pushes in
// Redis, and no transaction spans both: a runner killed after a push and before its next progress
// write resumes from the older cursor and meets those webhooks again. So every push goes through
// this script, which adds "<request id>/<route>" to the job's set and pushes only if it was not
// there, in one atomic step on the queue's slot: a push either happened and is remembered, or
// neither. (Advancing the cursor in PostgreSQL before the push instead would lose the webhooks of
// a crash in between; after it, would send them twice.)
//
// No double send across jobs either: two jobs whose selections overlap (a double click, "all
// failed since 10:00" asked twice) would each push the same route of the same webhook. The same
// step sets keys::replay_pending for it, holding this job's id, and pushes only when no other
// job's marker is there; the worker's ack of the copy's final outcome (delivered, dead) deletes
// it, so a later replay of the same webhook is pushed again. The envelope carries the job's id
// (kReplayHeader) for that ack. All three keys share the queue's {Q} tag: one slot on a cluster.
// KEYS[1] the job's set, KEYS[2] queue, KEYS[3] pending marker; ARGV[1] "<request id>/<route>",
// ARGV[2] element, ARGV[3] set TTL, ARGV[4] job id, ARGV[5] marker TTL -> 1 pushed, 0 pushed by
// this job before, or the id of the job whose copy is pending.
constexpr std::string_view kPushOnce = R"lua(
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[4] then return holder end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
)lua";

// Where a webhook of `source` goes back: the queue named after its source when this worker
// consumes it or a route serves it (the edge's usual setup), else as `dlq retry` decides.
std::string queue_for(const Config& cfg, const std::string& source) {
    bool known = std::find(cfg.queues.begin(), cfg.queues.end(), source) != cfg.queues.end() ||
                 std::any_of(cfg.routes.begin(), cfg.routes.end(),
                             [&](const Route& r) { return r.source == source; });
    return known ? source : ops::requeue_queue(cfg, source);
}

const Route* route_named(const Config& cfg, const std::string& name) {
    for (const Route& r : cfg.routes) {
        if (r.name == name) {
            return &r;
        }
    }
    return nullptr;
}

}  // namespace

void ReplayRunner::start() {
    thread_ = std::thread([this] { run(); });
}

void ReplayRunner::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

bool ReplayRunner::stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
}

bool ReplayRunner::connected() {
    if (pg_.ok()) {
        return true;
    }
    if (!pg_.connect() || !pg_.exec("SET statement_timeout = '30s'")) {
        if (!down_logged_) {
            log::warn("replay: cannot connect to postgresql; retrying", {{"error", pg_.error()}});
            down_logged_ = true;
        }
        return false;
    }
    down_logged_ = false;
    return true;
}

void ReplayRunner::run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        lock.unlock();
        bool worked = false;
        JobState job;
        try {
            if (connected() && claim(job)) {
                worked = true;
                execute(job);
            }
        } catch (const ops::Error& e) {
            // The job itself is wrong (a selection this version cannot read): it fails, visibly.
            log::warn("replay: failed", {{"replay", job.id}, {"error", e.what()}});
            try {
                finish(job, "failed", e.what());
            } catch (const std::exception&) {
            }
        } catch (const std::exception& e) {
            log::warn("replay: runner error; retrying", {{"error", e.what()}});
            if (!pg_.ok()) {
                pg_.close();
            }
        }
        lock.lock();
        if (!worked) {
            cv_.wait_for(lock, std::chrono::milliseconds(kPollMs), [this] { return stopping_; });
        }
    }
}

bool ReplayRunner::claim(JobState& job) {
    // SKIP LOCKED: two runners polling at once take different jobs (or one of them none).
    auto r = must_query(
        pg_,
        "UPDATE replay_jobs SET state = 'running', lease_owner = $1, lease_expires = now() + "
        "make_interval(secs => $2), started_at = coalesce(started_at, now()), updated_at = now() "
        "WHERE id = (SELECT id FROM replay_jobs WHERE state IN ('pending', 'running') AND "
        "(lease_expires IS NULL OR lease_expires < now() OR lease_owner = $1) ORDER BY id "
        "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, selection::text, routes_mode, rate_per_s, "
        "\"limit\", sent, skipped, failed, "
        "(extract(epoch FROM cursor_received_at) * 1000000)::bigint, cursor_id::text, "
        "started_at < now(), skipped_pending",
        {cfg_.worker_id, std::to_string(kLeaseSeconds)});
    if (PQntuples(r.get()) == 0) {
        return false;
    }
    job.id = cell(r, 0, 0);
    job.selection = nlohmann::json::parse(cell(r, 0, 1));
    job.routes_mode = cell(r, 0, 2);
    job.rate = std::max(0.001, std::stod(cell(r, 0, 3)));
    if (!is_null(r, 0, 4)) {
        job.limit = std::stoll(cell(r, 0, 4));
    }
    job.sent = std::stoll(cell(r, 0, 5));
    job.skipped = std::stoll(cell(r, 0, 6));
    job.failed = std::stoll(cell(r, 0, 7));
    job.skipped_pending = std::stoll(cell(r, 0, 11));
    if (!is_null(r, 0, 8)) {
        job.cursor_us = std::stoll(cell(r, 0, 8));
        job.cursor_id = cell(r, 0, 9);
    }
    // Run before (its runner died, or it was cancelled and resumed): pushes made after its last
    // progress write are met again just after the cursor, within what a flush period can hold.
    if (cell(r, 0, 10) == "t") {
        job.recover_left = std::max<int64_t>(kBatch, static_cast<int64_t>(job.rate) + 1);
    }
    job.last_flush_ms = mono_ms();
    job.tokens = 1;
    job.tokens_at_ms = mono_ms();
    log::info("replay: running",
              {{"replay", job.id}, {"sent", job.sent}, {"resumed", job.cursor_us.has_value()}});
    return true;
}

ReplayRunner::Go ReplayRunner::flush(JobState& job) {
    if (!job.requeued_ids.empty()) {
        // So that status, the dead-letter gauges and alerts stop counting what the replay has
        // sent again; a copy that dies again is dead-lettered afresh (requeued_at cleared).
        must_query(pg_,
                   "UPDATE dead_letters d SET requeued_at = now() FROM unnest($1::uuid[], "
                   "$2::text[]) AS v (event_id, route) WHERE d.event_id = v.event_id AND "
                   "d.route = v.route AND d.requeued_at IS NULL",
                   {ops::pg_text_array(job.requeued_ids), ops::pg_text_array(job.requeued_routes)});
        job.requeued_ids.clear();
        job.requeued_routes.clear();
    }
    auto r = must_query(
        pg_,
        "UPDATE replay_jobs SET sent = $2::bigint, skipped = $3::bigint, failed = $4::bigint, "
        "skipped_pending = $9::bigint, cursor_received_at = CASE WHEN $5::bigint IS NULL THEN "
        "cursor_received_at ELSE "
        "'epoch'::timestamptz + $5::bigint * interval '1 microsecond' END, "
        "cursor_id = coalesce($6::uuid, cursor_id), "
        "lease_expires = now() + make_interval(secs => $8), updated_at = now() "
        "WHERE id = $1::bigint AND lease_owner = $7 AND state = 'running' RETURNING 1",
        {job.id, std::to_string(job.sent), std::to_string(job.skipped), std::to_string(job.failed),
         job.cursor_us ? std::optional<std::string>(std::to_string(*job.cursor_us)) : std::nullopt,
         job.cursor_id.empty() ? std::nullopt : std::optional<std::string>(job.cursor_id),
         cfg_.worker_id, std::to_string(kLeaseSeconds), std::to_string(job.skipped_pending)});
    job.last_flush_ms = mono_ms();
    if (PQntuples(r.get()) == 0) {
        log::info("replay: stopped (cancelled, or taken over)", {{"replay", job.id}});
        return Go::stop;
    }
    return stopping() ? Go::stop : Go::on;
}

ReplayRunner::Go ReplayRunner::flush_if_due(JobState& job) {
    if (mono_ms() - job.last_flush_ms >= kFlushMs) {
        return flush(job);
    }
    return stopping() ? Go::stop : Go::on;
}

ReplayRunner::Go ReplayRunner::pause(JobState& job, uint64_t ms) {
    uint64_t until = mono_ms() + ms;
    for (;;) {
        if (flush_if_due(job) == Go::stop) {
            return Go::stop;
        }
        uint64_t now = mono_ms();
        if (now >= until) {
            return Go::on;
        }
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(std::min<uint64_t>(until - now, kFlushMs)),
                     [this] { return stopping_; });
    }
}

// A token bucket holding at most a twentieth of a second's worth (one at least): the rate holds
// over any stretch longer than that, without a burst after a pause.
ReplayRunner::Go ReplayRunner::wait_token(JobState& job) {
    const double cap = std::max(1.0, job.rate / 20);
    for (;;) {
        uint64_t now = mono_ms();
        job.tokens = std::min(
            cap, job.tokens + static_cast<double>(now - job.tokens_at_ms) * job.rate / 1000);
        job.tokens_at_ms = now;
        if (job.tokens >= 1) {
            job.tokens -= 1;
            return Go::on;
        }
        auto ms = static_cast<uint64_t>((1 - job.tokens) * 1000 / job.rate) + 1;
        if (pause(job, ms) == Go::stop) {
            return Go::stop;
        }
    }
}

// Waits while the destination's breaker is open (or half-open with its probe out): what would be
// pushed now would only be parked, and the destination is known to be down.
ReplayRunner::Go ReplayRunner::wait_breaker(JobState& job, const std::string& destination) {
    bool logged = false;
    for (;;) {
        auto h = redis_.command(
            {"HMGET", keys::breaker(destination), "state", "open_until", "probe_until"});
        if (!h || h->type != REDIS_REPLY_ARRAY || h->elements < 3) {
            return Go::on;  // Redis trouble shows at the push, which retries
        }
        auto field = [&](size_t i) {
            const redisReply* e = h->element[i];
            return e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
        };
        std::string state = field(0);
        uint64_t until = 0;
        if (state == "open") {
            until = std::strtoull(field(1).c_str(), nullptr, 10);
        } else if (state == "half_open") {
            until = std::strtoull(field(2).c_str(), nullptr, 10);
        } else {
            return Go::on;
        }
        // The breaker's deadlines are in Redis's clock.
        uint64_t now = ctl::redis_now_ms(redis_);
        if (until <= now) {
            return Go::on;
        }
        if (!logged) {
            log::info("replay: waiting for an open breaker",
                      {{"replay", job.id}, {"destination", destination}});
            logged = true;
        }
        if (pause(job, std::min<uint64_t>(until - now + 10, 1000)) == Go::stop) {
            return Go::stop;
        }
    }
}

void ReplayRunner::finish(JobState& job, const std::string& state, const std::string& error) {
    auto r =
        must_query(pg_,
                   "UPDATE replay_jobs SET state = $2, sent = $3::bigint, skipped = $4::bigint, "
                   "failed = $5::bigint, skipped_pending = $8::bigint, error = $6, "
                   "finished_at = now(), updated_at = now(), lease_owner = NULL, "
                   "lease_expires = NULL WHERE id = $1::bigint AND lease_owner = $7 AND "
                   "state = 'running' RETURNING 1",
                   {job.id, state, std::to_string(job.sent), std::to_string(job.skipped),
                    std::to_string(job.failed),
                    error.empty() ? std::nullopt : std::optional<std::string>(error),
                    cfg_.worker_id, std::to_string(job.skipped_pending)});
    if (PQntuples(r.get()) == 0) {
        // Cancelled, or another runner took the job over: the record of pushes may be its now.
        log::info("replay: stopped (cancelled, or taken over)", {{"replay", job.id}});
        return;
    }
    if (state == "done") {
        // Done is final (nothing resumes it): its record of pushes is no longer needed.
        for (const auto& key : job.dedup_sets) {
            redis_.command({"DEL", key});
        }
    }
    log::info("replay: finished", {{"replay", job.id},
                                   {"state", state},
                                   {"sent", job.sent},
                                   {"skipped", job.skipped},
                                   {"skipped_pending", job.skipped_pending},
                                   {"failed", job.failed}});
}

void ReplayRunner::release(JobState& job) {
    // Lets another runner (or a resume) take the job at once rather than after the lease.
    ctl::query(pg_,
               "UPDATE replay_jobs SET lease_expires = NULL WHERE id = $1::bigint AND "
               "lease_owner = $2",
               {job.id, cfg_.worker_id});
}

struct ReplayRunner::PageQuery {
    std::vector<std::optional<std::string>> params;  // those the three parts below refer to
    std::string where;  // on webhook_events e, without the selection's status condition
    std::string status_expr;
    std::string route_filter;  // on webhook_routes r, when the selection names a route
};

struct ReplayRunner::Webhook {
    Envelope env;
    std::string queue;  // empty when none can take it
    std::string set;    // the job's set of pushes through that queue (kPushOnce)
};

ReplayRunner::PageQuery ReplayRunner::page_query(const nlohmann::json& selection) {
    PageQuery q;
    q.where = ops::replay_where(selection, q.params, false);
    q.status_expr = ops::replay_status_cond(selection, q.params);
    if (selection.contains("route") && selection["route"].is_string()) {
        q.params.emplace_back(selection["route"].get<std::string>());
        q.route_filter = " AND r.route = $" + std::to_string(q.params.size());
    }
    return q;
}

int64_t ReplayRunner::page_size(const JobState& job) {
    int64_t done = job.sent + job.skipped + job.failed;
    int64_t n = kBatch;
    if (job.limit) {
        n = std::min<int64_t>(n, *job.limit - done);
    }
    return n;
}

PgResult ReplayRunner::fetch_page(const JobState& job, const PageQuery& q, int64_t n) {
    auto params = q.params;
    std::string w = q.where;
    auto cond = [&](const std::string& c) { w += (w.empty() ? " WHERE " : " AND ") + c; };
    // While recovering, webhooks whose status no longer matches are read too: one this job
    // pushed before a crash may have been delivered since, and is counted, not lost.
    if (job.recover_left <= 0) {
        cond("(" + q.status_expr + ")");
    }
    if (job.cursor_us) {
        params.emplace_back(std::to_string(*job.cursor_us));
        std::string ts = "('epoch'::timestamptz + $" + std::to_string(params.size()) +
                         "::bigint * interval '1 microsecond')";
        params.emplace_back(job.cursor_id);
        // Keyset: after the last webhook handled, in the order of the primary key, so rows
        // recorded meanwhile neither shift nor repeat what is left.
        cond("e.received_at >= " + ts + " AND (e.received_at, e.id) > (" + ts + ", $" +
             std::to_string(params.size()) + "::uuid)");
    }
    params.emplace_back(std::to_string(n));
    return must_query(
        pg_,
        "SELECT e.id, (extract(epoch FROM e.received_at) * 1000000)::bigint, e.source, "
        "e.dedup_key, e.method, e.path, coalesce(e.remote_addr, ''), e.headers::text, "
        "encode(e.body, 'hex'), (SELECT coalesce(json_agg(json_build_array(r.route, r.status) "
        "ORDER BY r.route), '[]') FROM webhook_routes r WHERE r.received_at = e.received_at "
        "AND r.event_id = e.id" +
            q.route_filter + ")::text, (" + q.status_expr + ") FROM webhook_events e" + w +
            " ORDER BY e.received_at, e.id LIMIT $" + std::to_string(params.size()) + "::int",
        params);
}

ReplayRunner::RowOutcome ReplayRunner::replay_row(JobState& job, const PgResult& r, int row) {
    RowOutcome out;
    out.matches = cell(r, row, 10) == "t";
    const bool recovering = job.recover_left > 0;
    auto routes = nlohmann::json::parse(cell(r, row, 9));
    if (routes.empty()) {
        return out;
    }
    Webhook w{ops::envelope_from_row(r, row, 0), {}, {}};
    // A copy recorded from an earlier replay (its event row gone meanwhile) may carry another
    // job's id: this job's own is the one its ack must see.
    std::erase_if(w.env.headers, [](const auto& h) { return h.first == kReplayHeader; });
    w.env.headers.emplace_back(std::string(kReplayHeader), job.id);
    try {
        w.queue = queue_for(cfg_, w.env.source);
    } catch (const ops::Error&) {
        w.queue.clear();
    }
    w.set = "hookq:{" + w.queue + "}:replay:" + job.id;
    for (const auto& rj : routes) {
        const std::string route = rj[0].get<std::string>();
        const std::string status = rj[1].get<std::string>();
        const std::string member = w.env.request_id.str() + "/" + route;
        // "failed": only a dead route. Delivered ones have the webhook; a retrying or parked one
        // has its copy waiting in Redis, and one more would arrive twice.
        bool eligible = out.matches && (job.routes_mode == "all" || status == "dead");
        if (!eligible) {
            if (recovering && !w.queue.empty()) {
                auto in = redis_.command({"SISMEMBER", w.set, member});
                if (in && in->type == REDIS_REPLY_INTEGER && in->integer == 1) {
                    // This job's push before a crash, delivered (or on its way) since: its dead
                    // letter was requeued, though the crash kept that from being written.
                    ++out.pushed;
                    job.requeued(w.env.request_id.str(), route);
                }
            }
            continue;
        }
        const Route* cr = route == "-" ? nullptr : route_named(cfg_, route);
        if (w.queue.empty() || (route != "-" && !cr)) {
            ++out.failed;  // no queue to put it on, or the route is gone
            continue;
        }
        if ((cr && wait_breaker(job, cr->destination) == Go::stop) || wait_token(job) == Go::stop ||
            push_copy(job, w, route, member, out) == Go::stop) {
            out.stop = true;
            return out;
        }
    }
    return out;
}

ReplayRunner::Go ReplayRunner::push_copy(JobState& job, const Webhook& w, const std::string& route,
                                         const std::string& member, RowOutcome& out) {
    std::string element = ops::requeue_element(w.env, route);
    job.dedup_sets.insert(w.set);
    const std::string marker = keys::replay_pending(w.queue, w.env.request_id.str(), route);
    static const std::string dedup_ttl = std::to_string(kDedupTtlS);
    static const std::string pending_ttl = std::to_string(kPendingTtlS);
    for (;;) {
        Reply p = redis_.eval(kPushOnce, {w.set, keys::queue(w.queue), marker},
                              {member, element, dedup_ttl, job.id, pending_ttl});
        if (p && p->type == REDIS_REPLY_INTEGER) {
            // 0: pushed before a crash, its progress not written: counted now.
            ++out.pushed;
            job.requeued(w.env.request_id.str(), route);
            return Go::on;
        }
        if (p && p->type == REDIS_REPLY_STRING) {
            ++out.pending;
            if (job.skipped_pending == 0 && out.pending == 1) {
                log::info("replay: skipping webhooks another replay has pending",
                          {{"replay", job.id},
                           {"request_id", w.env.request_id.str()},
                           {"route", route},
                           {"pending_in", std::string(p->str, p->len)}});
            }
            return Go::on;
        }
        log::warn("replay: cannot push; retrying",
                  {{"replay", job.id}, {"error", redis_.last_error()}});
        if (pause(job, 1000) == Go::stop) {
            return Go::stop;
        }
    }
}

void ReplayRunner::count_row(JobState& job, const RowOutcome& out) {
    auto& m = metrics::global();
    if (out.pushed > 0) {
        ++job.sent;
        m.replay_event(metrics::ReplayResult::enqueued);
    } else if (!out.matches) {
        // Not part of the selection (read only while recovering).
    } else if (out.failed > 0) {
        ++job.failed;
        m.replay_event(metrics::ReplayResult::failed);
    } else if (out.pending > 0) {
        // Already on its way through another job's push, not yet decided: sending it now would
        // deliver it twice. Skipped, and said why.
        ++job.skipped;
        ++job.skipped_pending;
        m.replay_event(metrics::ReplayResult::skipped);
    } else {
        ++job.skipped;  // nothing to send: its routes succeeded (or are still pending)
        m.replay_event(metrics::ReplayResult::skipped);
    }
}

void ReplayRunner::execute(JobState& job) {
    const PageQuery q = page_query(job.selection);
    for (;;) {
        const int64_t n = page_size(job);
        if (n <= 0) {
            finish(job, "done", "");
            return;
        }
        PgResult r = fetch_page(job, q, n);
        int rows = PQntuples(r.get());
        if (rows == 0) {
            if (job.recover_left > 0) {
                job.recover_left = 0;
                continue;
            }
            if (flush(job) == Go::stop) {
                return release(job);
            }
            finish(job, "done", "");
            return;
        }
        for (int i = 0; i < rows; ++i) {
            const RowOutcome out = replay_row(job, r, i);
            if (out.stop) {
                return release(job);
            }
            job.cursor_us = std::stoll(cell(r, i, 1));
            job.cursor_id = cell(r, i, 0);
            if (job.recover_left > 0) {
                --job.recover_left;
            }
            count_row(job, out);
            if (flush_if_due(job) == Go::stop) {
                return release(job);
            }
        }
        if (flush(job) == Go::stop) {
            return release(job);
        }
    }
}

}  // namespace hookq
