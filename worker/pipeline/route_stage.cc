#include "worker/pipeline/route_stage.h"

#include "shared/redis_keys.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/ops/pauses.h"
#include "worker/pipeline/dispatcher.h"
#include "worker/pipeline/fanout.h"
#include "worker/pipeline/ordering.h"
#include "worker/pipeline/park.h"
#include "worker/pipeline/router.h"

namespace hookq {

namespace {
// How long a paused delivery waits before it is looked at again if no resume brings it back.
constexpr uint64_t kPausedRecheckMs = 3600 * 1000;
// How long a delivery whose entity's turn could not be asked for (Redis trouble) waits.
constexpr uint64_t kOrderRecheckMs = 1000;

void find_own_headers(Job& j) {
    for (const HeaderField& h : j.env.headers) {
        if (h.name.empty() || h.name[0] != ':') {
            continue;
        }
        if (h.name == ":hookq-unverified") {
            j.unverified = h.value;
        } else if (h.name == fanout::kParentHeader) {
            j.parent = h.value;
        } else if (h.name == fanout::kPartHeader) {
            j.part = h.value;
        } else if (h.name == kReplayHeader) {
            j.replay = h.value;
        }
    }
}
}  // namespace

bool RouteStage::split(Job& j, const Route& r) {
    auto bodies = fanout::split_bodies(j.env.body, r.split);
    if (!bodies) {
        log::debug("not split: no array of events at the route's 'split' path",
                   {{"request_id", j.env.request_id.str()}, {"route", r.name}, {"path", r.split}});
        return false;
    }
    RouteOutcome o{r.name,
                   OutcomeKind::split,
                   0,
                   0,
                   0,
                   now_us(),
                   "split into " + std::to_string(bodies->size()) + " events",
                   false};
    o.children.reserve(bodies->size());
    for (size_t i = 0; i < bodies->size(); ++i) {
        o.children.push_back(fanout::child_record(j.env, r.name, i, bodies->size(),
                                                  std::move((*bodies)[i]), j.first_attempt_us));
    }
    j.outcomes.push_back(std::move(o));
    metrics::global().outcome(r.index, OutcomeKind::split);
    return true;
}

ordering::Entered RouteStage::enter_order(Job& j, const Route& r, uint32_t attempt) {
    std::string value = json_field(j.env.body, r.order_key);
    if (value.empty()) {
        return ordering::Entered::go;  // no entity named: nothing to keep in order
    }
    std::string entity = ordering::entity(value);
    std::string id = j.env.request_id.str();
    RetryRecord header;  // the waiting entry is what a retry record of this delivery would be
    header.route = r.name;
    header.attempt = attempt;
    header.first_attempt_us = j.first_attempt_us;
    std::string record = header.encode();
    record.append(j.envelope_bytes());
    std::vector<MergedUpdate> merged;
    std::string holder;
    auto res =
        ordering::enter(redis_, s_.cfg.queues[j.queue], r.name, entity, id,
                        ordering::waiting_entry(id, j.env.received_at_us, record), merged, holder);
    if (res == ordering::Entered::go) {
        j.holds.push_back(OrderHold{r.name, std::move(entity), std::move(merged)});
    } else if (res == ordering::Entered::wait) {
        j.outcomes.push_back({r.name, OutcomeKind::waiting, attempt - 1, 0, 0, now_us(),
                              "waiting behind " + holder, false});
        metrics::global().outcome(r.index, OutcomeKind::waiting);
    } else {
        // Sending it now could overtake an update of the same entity: wait for Redis instead.
        uint64_t now = s_.clock.now_ms();
        j.outcomes.push_back({r.name, OutcomeKind::parked, attempt - 1, attempt,
                              now + kOrderRecheckMs, now_us(), "entity ordering unavailable",
                              false});
        j.outcomes.back().decided_ms = now;
        j.outcomes.back().park_dest = "order:" + r.name;
        metrics::global().outcome(r.index, OutcomeKind::parked);
    }
    return res;
}

void RouteStage::run() {
    std::vector<RouteMsg> msgs;
    for (;;) {
        s_.tick_route.store(mono_ms());
        refresh_pauses();
        if (!lease_ends_.empty()) {
            check_leases();
        }
        // A batch at a time (up to 256, then the checks above run again).
        if (!s_.to_route.pop_many(
                msgs, 256, std::chrono::steady_clock::now() + std::chrono::milliseconds(100))) {
            if (s_.to_route.closed_and_empty()) {
                return;
            }
            continue;
        }
        for (const RouteMsg& msg : msgs) {
            std::visit([this](const auto& m) { handle(m); }, msg);
        }
        msgs.clear();
        if (!to_dispatch_.empty()) {
            dispatcher_.submit(std::move(to_dispatch_));  // one wake-up of its loop per batch
            to_dispatch_.clear();
        }
    }
}

void RouteStage::transition(const std::string& dest, std::string_view t, std::string_view reason) {
    size_t gt = t.find('>');
    if (gt == std::string_view::npos) {
        return;
    }
    Transition tr;
    tr.destination = dest;
    tr.from = std::string(t.substr(0, gt));
    tr.to = std::string(t.substr(gt + 1));
    tr.at_us = now_us();
    tr.reason = std::string(reason);
    metrics::global().transition(dest, tr.from, tr.to);
    log::warn("breaker transition",
              {{"destination", dest}, {"from", tr.from}, {"to", tr.to}, {"reason", tr.reason}});
    s_.to_record.push(std::move(tr));
}

void RouteStage::release_parked(const std::string& dest, std::string_view why) {
    long long n = park::release_all(redis_, s_.cfg.queues, dest, s_.clock.now_ms());
    if (n > 0) {
        log::info("parked deliveries back in the queue",
                  {{"destination", dest}, {"count", n}, {"reason", why}});
    } else if (n < 0) {
        // They come back anyway when their score passes (move_due).
        log::warn("cannot move parked deliveries back yet",
                  {{"destination", dest}, {"error", redis_.last_error()}});
    }
}

void RouteStage::refresh_pauses() {
    uint64_t mono = mono_ms();
    if (mono < pauses_next_mono_) {
        return;
    }
    pauses_next_mono_ = mono + 1000;
    uint64_t at = s_.clock.now_ms();
    Reply r = redis_.command({"HGETALL", keys::paused()});
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY) {
        // Keep the last copy: Redis trouble neither pauses nor resumes anything. Without one (the
        // worker started while the master holding hookq:paused is lost), delivering everything
        // would override whatever an operator paused: the audit log knows.
        if (pauses_at_ == 0) {
            pauses_from_audit(at);
        }
        return;
    }
    if (pauses_by_audit_) {
        log::info("pauses read from Redis again", {});
        pauses_by_audit_ = false;
    }
    pauses_.clear();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply* f = r->element[i];
        if (f->type == REDIS_REPLY_STRING) {
            pauses_.emplace(std::string(f->str, f->len), true);
        }
    }
    pauses_at_ = at;
}

void RouteStage::pauses_from_audit(uint64_t at) {
    const std::string why = redis_.last_error();
    try {
        Pg pg(s_.cfg.postgres_dsn);
        if (!pg.connect()) {
            throw std::runtime_error("PostgreSQL: " + pg.error());
        }
        std::unordered_map<std::string, bool> pauses;
        for (auto& field : ops::paused_by_audit(pg)) {
            pauses.emplace(std::move(field), true);
        }
        pauses_ = std::move(pauses);
    } catch (const std::exception& e) {
        if (!pauses_unknown_logged_) {
            pauses_unknown_logged_ = true;
            log::warn(
                "cannot read the pauses from Redis or from the audit log: none is in force "
                "here until one answers",
                {{"redis_error", why}, {"error", e.what()}});
        }
        return;
    }
    // True as of now: a pause or resume is audited only once Redis has it.
    pauses_by_audit_ = true;
    pauses_at_ = at;
    log::warn("cannot read the pauses from Redis: taken from the audit log until it answers",
              {{"error", why}, {"paused", static_cast<int64_t>(pauses_.size())}});
}

bool RouteStage::paused(const Route& r) const {
    return !pauses_.empty() &&
           (pauses_.count("route:" + r.name) != 0 || pauses_.count("source:" + r.source) != 0);
}

// A probe's lease ended without this worker hearing of its result (its owner may have died): bring
// back one parked delivery to be the next probe, rather than leaving them all an open period away.
void RouteStage::check_leases() {
    uint64_t now = s_.clock.now_ms();
    for (auto it = lease_ends_.begin(); it != lease_ends_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        if (park::release_one(redis_, s_.cfg.queues, it->first)) {
            log::debug("probe lease lapsed: one parked delivery back as the next probe",
                       {{"destination", it->first}});
        }
        it = lease_ends_.erase(it);
    }
}

AcquireResult RouteStage::gate(const std::string& dest, uint64_t now, uint64_t probe_id) {
    AcquireResult res;
    uint64_t until = 0, checked = 0;
    switch (cache_.check(dest, now, until, &checked)) {
        case BreakerCache::Local::allow:
            return res;
        case BreakerCache::Local::park:
            res.action = AcquireResult::park;
            res.state = BreakerState::open;
            res.until_ms = until;
            res.decided_ms = checked;
            return res;
        case BreakerCache::Local::ask_redis:
            break;
    }
    // Probe lease: long enough for the slowest delivery to this destination, then it lapses by
    // itself (the probe's report releases it sooner).
    auto lease = leases_.find(dest);
    uint64_t lease_ms = lease != leases_.end() ? lease->second : 10000 + kProbeLeaseMarginMs;
    Reply r = redis_.eval(
        breaker_scripts::kAcquire, {keys::breaker(dest)},
        {std::to_string(now), std::to_string(lease_ms), probe_token(s_.cfg.worker_id, probe_id)});
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY) {
        // Fail open: Redis trouble must not stop deliveries (the claim stage will notice too).
        return res;
    }
    std::vector<std::string> parts;
    for (size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        parts.emplace_back(e->type == REDIS_REPLY_INTEGER
                               ? std::to_string(e->integer)
                               : std::string(e->str ? e->str : "", e->len));
    }
    res = parse_acquire(parts);
    res.decided_ms = now;
    BreakerState before = cache_.state(dest);
    cache_.update(dest, res.state, res.state == BreakerState::open ? res.until_ms : 0, now);
    if (!res.transition.empty()) {
        transition(dest, res.transition, "open period elapsed");
    }
    if (res.state == BreakerState::closed && before != BreakerState::closed) {
        // Closed by someone else (another worker's probe, or hookqctl breaker reset).
        release_parked(dest, "breaker closed");
    }
    return res;
}

void RouteStage::handle(const JobPtr& job) {
    Job& j = *job;
    std::string_view raw = j.raw;
    if (raw.starts_with("HQR1")) {
        j.retry = RetryRecord::decode(raw);
        if (!j.retry) {
            j.poison_reason = "undecodable retry record";
        }
    }
    if (j.poison_reason.empty()) {
        DecodeError err = decode_envelope(j.envelope_bytes(), j.env);
        if (err != DecodeError::ok) {
            j.poison_reason = "undecodable envelope: " + std::string(to_string(err));
        } else {
            j.decoded = true;
        }
    }
    if (!j.decoded) {
        s_.to_record.push(job);
        return;
    }
    find_own_headers(j);

    j.event_type = s_.router.event_type(j.env);
    uint64_t now = s_.clock.now_ms();
    uint32_t attempt = 1;
    std::vector<const Route*> routes;
    if (j.retry) {
        attempt = std::max<uint32_t>(1, j.retry->attempt);
        j.first_attempt_us = j.retry->first_attempt_us;
        if (const Route* r = s_.router.by_name(j.retry->route)) {
            routes.push_back(r);
        } else {
            j.outcomes.push_back({j.retry->route, OutcomeKind::dead, attempt - 1, 0, 0, now_us(),
                                  "route no longer configured", false});
            metrics::global().unrouted_dead();
        }
    } else {
        j.first_attempt_us = now_us();
        routes = s_.router.match(j.env.source, j.event_type, j.env.body);
        if (routes.empty()) {
            std::string why = "no route for source '" + std::string(j.env.source) + "'";
            if (!j.event_type.empty()) {
                why += " and event type '" + j.event_type + "'";
            }
            j.outcomes.push_back({"-", OutcomeKind::dead, 0, 0, 0, now_us(), why, false});
            metrics::global().unrouted_dead();
        }
    }

    std::vector<Delivery> deliveries;
    for (const Route* r : routes) {
        // A batch splits once, on its first claim: its events are then claims of their own.
        if (!r->split.empty() && j.parent.empty() && split(j, *r)) {
            continue;
        }
        // An entity's turn comes before any breaker or pause: the holder keeps it while parked.
        if (!r->order_key.empty() && enter_order(j, *r, attempt) != ordering::Entered::go) {
            continue;
        }
        if (paused(*r)) {
            // Parked under its own pseudo-destination, keeping its attempt number: a pause is the
            // operator's, not a failure. A resume sends them all back; one still paused when its
            // score passes (move_due) is parked again here. No breaker is asked or probed.
            uint64_t due = now + kPausedRecheckMs;
            j.outcomes.push_back({r->name, OutcomeKind::parked, attempt - 1, attempt, due, now_us(),
                                  "paused", false});
            j.outcomes.back().decided_ms = pauses_at_;
            j.outcomes.back().park_dest = keys::paused_destination(r->name);
            metrics::global().outcome(r->index, OutcomeKind::parked);
            continue;
        }
        AcquireResult g = gate(r->destination, now, probe_seq_ + 1);
        if (g.action == AcquireResult::park) {
            // Parked deliveries keep their attempt number: an open breaker is the destination's
            // state, not this webhook's failure. While open they are needed when it may
            // half-open; while half-open (a probe is out) not before an open period from now,
            // unless it closes (all come back) or a probe succeeds (the next one comes back).
            // A little jitter spreads the return.
            uint64_t due = std::max(g.until_ms, now + 50);
            if (g.state == BreakerState::half_open) {
                due = now + s_.cfg.breaker.open_ms;
                if (g.until_ms > now) {
                    lease_ends_[r->destination] = g.until_ms;
                }
            }
            due += std::uniform_int_distribution<uint64_t>(0, 250)(rng_);
            j.outcomes.push_back({r->name, OutcomeKind::parked, attempt - 1, attempt, due, now_us(),
                                  "breaker " + std::string(to_string(g.state)), false});
            j.outcomes.back().decided_ms = g.decided_ms;
            metrics::global().outcome(r->index, OutcomeKind::parked);
            continue;
        }
        uint64_t probe = g.action == AcquireResult::probe ? ++probe_seq_ : 0;
        deliveries.push_back(Delivery{job, r, attempt, probe, false});
    }
    j.pending = static_cast<int>(deliveries.size());
    if (deliveries.empty()) {
        s_.to_record.push(job);
        return;
    }
    for (Delivery& d : deliveries) {
        to_dispatch_.push_back(std::move(d));
    }
}

void RouteStage::handle(const BreakerReport& rep) {
    if (!cache_.report_needed(rep.destination, rep.ok, rep.probe != 0)) {
        return;
    }
    const BreakerConfig& b = s_.cfg.breaker;
    uint64_t now = s_.clock.now_ms();
    Reply r = redis_.eval(breaker_scripts::kReport, {keys::breaker(rep.destination)},
                          {std::to_string(now), rep.ok ? "1" : "0", rep.probe ? "1" : "0",
                           std::to_string(b.failure_threshold), std::to_string(b.window_ms),
                           std::to_string(b.open_ms), std::to_string(b.close_after),
                           rep.probe ? probe_token(s_.cfg.worker_id, rep.probe) : ""});
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements < 4) {
        return;
    }
    auto str = [&](size_t i) {
        const redisReply* e = r->element[i];
        return e->type == REDIS_REPLY_INTEGER ? std::to_string(e->integer)
                                              : std::string(e->str ? e->str : "", e->len);
    };
    if (str(3) == "stale") {
        log::info("late probe result ignored: its lease had passed to another probe",
                  {{"destination", rep.destination}, {"ok", rep.ok}});
    }
    BreakerState st = breaker_state_from(str(0));
    uint64_t until = std::strtoull(str(2).c_str(), nullptr, 10);
    cache_.update(rep.destination, st, until, now);
    std::string t = str(1);
    if (str(3) == "accepted" && rep.ok) {
        // The lease is free again: the next probe should not wait for a parked delivery's score.
        lease_ends_.erase(rep.destination);
        if (st == BreakerState::half_open) {
            park::release_one(redis_, s_.cfg.queues, rep.destination);
        }
    }
    if (!t.empty()) {
        std::string reason;
        if (t == "closed>open") {
            reason = std::to_string(b.failure_threshold) + " failures within the window";
        } else if (t == "half_open>open") {
            reason = "probe failed";
        } else if (t == "half_open>closed") {
            reason = std::to_string(b.close_after) + " consecutive probe successes";
        }
        transition(rep.destination, t, reason);
        if (st == BreakerState::closed) {
            release_parked(rep.destination, reason);
        }
    }
}

}  // namespace hookq
