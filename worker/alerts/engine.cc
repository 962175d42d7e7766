#include "worker/alerts/engine.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/clock.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/ops/breakers.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"
#include "worker/store/sql.h"

namespace hookq::alerts {

namespace {

using ctl::cell;
using ctl::is_null;

constexpr size_t kMaxEvents = 10000;  // kept while PostgreSQL is away; the oldest go first

// GET if ours, else SET NX: one round trip that both renews and acquires.
constexpr std::string_view kLeaseScript = R"lua(
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return 1
end
return 0
)lua";

constexpr std::string_view kReleaseScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

std::optional<std::string> ts_or_null(int64_t ms) {
    if (ms <= 0) {
        return std::nullopt;
    }
    return std::to_string(static_cast<double>(ms) / 1000);
}

}  // namespace

std::map<std::string, double> parse_edge_failures(std::string_view text) {
    std::map<std::string, double> out;
    constexpr std::string_view kName = "hookq_edge_requests_total{";
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        pos = eol == std::string_view::npos ? text.size() : eol + 1;
        if (!line.starts_with(kName)) {
            continue;
        }
        size_t close = line.rfind('}');
        if (close == std::string_view::npos) {
            continue;
        }
        std::string_view labels = line.substr(kName.size(), close - kName.size());
        auto label = [&](std::string_view key) -> std::string {
            std::string needle = std::string(key) + "=\"";
            size_t at = labels.find(needle);
            if (at == std::string_view::npos) {
                return "";
            }
            at += needle.size();
            size_t end = labels.find('"', at);
            return end == std::string_view::npos ? "" : std::string(labels.substr(at, end - at));
        };
        std::string outcome = label("outcome");
        if (outcome != "missing_signature" && outcome != "malformed" &&
            outcome != "bad_signature" && outcome != "stale_timestamp") {
            continue;
        }
        double v = std::strtod(std::string(line.substr(close + 1)).c_str(), nullptr);
        out[label("source")] += v;
    }
    return out;
}

Engine::Engine(const Config& cfg)
    : cfg_(cfg), acfg_(cfg.alerts), redis_(cfg, "alerts"), pg_(cfg.postgres_dsn) {
    // Every round retries Redis; round() says once per outage that it is away.
    redis_.quiet();
    for (const auto& ch : acfg_.channels) {
        buckets_.emplace_back(ch.rate_per_s, ch.burst);
    }
    folded_.assign(acfg_.channels.size(), 0);
}

Engine::~Engine() {
    stop();
}

void Engine::start() {
    if (!acfg_.enabled) {
        return;
    }
    started_ms_ = static_cast<int64_t>(now_ms());
    notifier_ = std::make_unique<Notifier>(acfg_, [this](SendResult r) {
        {
            std::lock_guard lock(results_mu_);
            results_.push_back(std::move(r));
        }
        {
            std::lock_guard lock(mu_);
            wake_ = true;
        }
        cv_.notify_all();
    });
    notifier_->start();
    thread_ = std::thread([this] { run(); });
    log::info("alerting started", {{"interval_ms", acfg_.interval_ms},
                                   {"channels", acfg_.channels.size()},
                                   {"instance", acfg_.instance}});
}

void Engine::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
    if (notifier_) {
        notifier_->stop();
        apply_results();
        if (pg_ok_) {
            flush();
        }
        notifier_.reset();
    }
}

void Engine::run() {
    int64_t next = 0;
    std::unique_lock lock(mu_);
    while (!stopping_) {
        int64_t now = static_cast<int64_t>(now_ms());
        if (now < next && !wake_) {
            cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(next - now, 1000)));
            continue;
        }
        bool full = now >= next;
        wake_ = false;
        lock.unlock();
        try {
            if (full) {
                round(now);
                next = now + static_cast<int64_t>(acfg_.interval_ms);
            } else {
                // A channel answered: record it now rather than at the next round.
                apply_results();
                if (leader_ && pg_ok_) {
                    flush();
                }
            }
        } catch (const std::exception& e) {
            log::warn("alert evaluation failed", {{"error", e.what()}});
            next = now + static_cast<int64_t>(acfg_.interval_ms);
        }
        lock.lock();
    }
    lock.unlock();
    if (leader_ && redis_.connected()) {
        redis_.eval(kReleaseScript, {keys::alerts_lease()}, {cfg_.worker_id});
    }
    metrics::global().alerts_leader(false);
}

bool Engine::hold_lease() {
    if (!redis_ok_) {
        // Nobody can take the lease while Redis is away: the leader carries on (and says that
        // Redis is down), the others stay quiet.
        return leader_;
    }
    std::string ms = std::to_string(acfg_.interval_ms * 3 + 5000);
    Reply r = redis_.eval(kLeaseScript, {keys::alerts_lease()}, {cfg_.worker_id, ms});
    if (!r || is_error(r)) {
        return leader_;
    }
    return r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

void Engine::lose_lease() {
    log::info("alerting lease lost", {{"worker", cfg_.worker_id}});
    alerts_.clear();
    // What waited in the grouper is not sent by this worker any more; its events are still
    // written.
    for (const Group& g : grouper_.due(INT64_MAX, 0)) {
        for (const GroupItem& item : g.items) {
            if (auto it = events_.find(item.event_seq); it != events_.end()) {
                it->second.outstanding--;
                it->second.notified["*"] = "lease lost";
                it->second.notified_dirty = true;
            }
        }
    }
    loaded_ = false;
    metrics::global().alerts_active({});
}

void Engine::round(int64_t now) {
    // The stores come first: whether Redis answers decides the lease, and both decide what can be
    // read and written. Only the lease holder evaluates, so that one worker speaks for the fleet.
    // Every rule is evaluated before anything is sent, so that the grouper can fold a rule's
    // alerts of the round into one message; the rows are written last, to carry what was queued
    // and answered this round.
    // 1. Reach Redis and PostgreSQL.
    check_stores();
    // 2. Hold, take or lose the lease. Not the leader: what the channels answered while it was
    //    is still written.
    if (!take_lease()) {
        apply_results();
        if (pg_ok_ && !events_.empty()) {
            flush();
        }
        return;
    }
    // 3. The alerts a previous leader left, and the silences in force.
    read_postgres_state();
    // 4. Evaluate every rule and advance its alerts: pending, firing, resolved.
    metrics::global().alerts_active(evaluate_rules(now));
    // 5. Due groups to the channels, less what is silenced, inhibited or over a rate limit.
    notify_due(now);
    // 6. What the channels answered.
    apply_results();
    // 7. The alerts and alert_events rows.
    if (pg_ok_) {
        flush();
    }
}

void Engine::check_stores() {
    redis_error_.clear();
    redis_ok_ = redis_.ensure();
    if (redis_ok_) {
        Reply r = redis_.command({"PING"});
        redis_ok_ = r && !is_error(r);
    }
    if (!redis_ok_) {
        redis_error_ = redis_.last_error().empty() ? "unreachable" : redis_.last_error();
        if (!redis_outage_) {
            // Also at start-up: the engine runs before the pipeline has reached Redis, and takes
            // the lease at the first round that reaches it.
            log::warn("alerting: redis unreachable",
                      {{"error", redis_error_}, {"leader", leader_}, {"retry", "every round"}});
        }
        redis_outage_ = true;
    } else if (redis_outage_) {
        log::info("alerting: redis reachable", {{"leader", leader_}});
        redis_outage_ = false;
    }
    pg_ok_ = pg_.ok() || pg_.connect();
    if (pg_ok_) {
        pg_ok_ = static_cast<bool>(pg_.query("SELECT 1"));
    }
    pg_error_ = pg_ok_ ? "" : "unreachable";
}

bool Engine::take_lease() {
    bool was = leader_;
    leader_ = hold_lease();
    metrics::global().alerts_leader(leader_);
    if (was && !leader_) {
        lose_lease();
    }
    if (leader_ && !was) {
        log::info("alerting lease taken", {{"worker", cfg_.worker_id}});
    }
    return leader_;
}

void Engine::read_postgres_state() {
    if (pg_ok_ && !loaded_) {
        load_state();
    }
    if (pg_ok_) {
        read_silences();
    }
}

Engine::ActiveCounts Engine::evaluate_rules(int64_t now) {
    ActiveCounts active;
    for (const auto& rule : alert_rule_names()) {
        const AlertRule& rc = acfg_.rules.at(rule);
        if (rc.enabled) {
            evaluate_rule(rule, rc, now, active);
        }
    }
    retire_unwatched(now);
    return active;
}

// An open alert whose rule is switched off (`enabled = false`, or a rule this version does not
// have, left by another one) is watched by nothing: it resolves as if its condition had cleared,
// rather than stay firing in the API, the gauges and the dashboard until the rule comes back. A
// known rule says so on its channels; an unknown one has no channels to say it on.
void Engine::retire_unwatched(int64_t now) {
    for (auto& [fp, a] : alerts_) {
        if (a.state != State::pending && a.state != State::firing) {
            continue;
        }
        auto rc = acfg_.rules.find(a.rule);
        if (rc != acfg_.rules.end() && rc->second.enabled) {
            continue;
        }
        Action act = step(a, nullptr, now, 0, 0);
        if (rc != acfg_.rules.end()) {
            transition(a.rule, fp, a, act, now);
        } else {
            log::info("alert of an unknown rule resolved", {{"rule", a.rule}, {"fingerprint", fp}});
            record_event(a, now);
        }
    }
}

void Engine::evaluate_rule(const std::string& rule, const AlertRule& rc, int64_t now,
                           ActiveCounts& active) {
    Observations obs;
    try {
        obs = evaluate(rule, now);
    } catch (const std::exception& e) {
        log::warn("alert rule could not be evaluated", {{"rule", rule}, {"error", e.what()}});
    }
    if (!obs) {
        // No data this round (its store is away): the alerts of this rule keep their state.
        for (const auto& [fp, a] : alerts_) {
            if (a.rule == rule) {
                count_active(a, active);
            }
        }
        return;
    }
    Observed seen = open_alerts(rule, rc, *obs);
    for (auto& [fp, a] : alerts_) {
        if (a.rule != rule) {
            continue;
        }
        if (seen.unknown.count(fp)) {
            count_active(a, active);
            continue;
        }
        auto it = seen.known.find(fp);
        const Observation* o = it == seen.known.end() ? nullptr : it->second;
        if (o && o->severity.empty()) {
            a.severity = rc.severity;
        }
        transition(rule, fp, a, step(a, o, now, rc.for_ms, acfg_.repeat_interval_ms), now);
        count_active(a, active);
    }
}

Engine::Observed Engine::open_alerts(const std::string& rule, const AlertRule& rc,
                                     const std::vector<Observation>& obs) {
    Observed out;
    for (const auto& o : obs) {
        std::string fp = fingerprint(rule, o.labels);
        if (o.unknown) {
            out.unknown.insert(std::move(fp));
            continue;
        }
        out.known[fp] = &o;
        if (!alerts_.count(fp) && o.active) {
            AlertState a;
            a.fingerprint = fp;
            a.rule = rule;
            a.labels = o.labels;
            a.severity = o.severity.empty() ? rc.severity : o.severity;
            alerts_[fp] = a;
        }
    }
    return out;
}

void Engine::transition(const std::string& rule, const std::string& fp, const AlertState& a,
                        Action act, int64_t now) {
    switch (act) {
        case Action::fire:
        case Action::repeat:
        case Action::resolve: {
            bool resolved = act == Action::resolve;
            log::warn(resolved ? "alert resolved" : "alert firing", {{"rule", rule},
                                                                     {"fingerprint", fp},
                                                                     {"severity", a.severity},
                                                                     {"value", a.value},
                                                                     {"threshold", a.threshold},
                                                                     {"summary", a.summary}});
            uint64_t seq = record_event(a, now);
            events_.at(seq).outstanding++;
            grouper_.add(rule, resolved, GroupItem{fp, seq}, now);
            break;
        }
        case Action::entered_pending:
        case Action::dropped_pending:
            // Written, not sent: a pending alert that clears never fired.
            record_event(a, now);
            break;
        case Action::none:
            break;
    }
}

void Engine::count_active(const AlertState& a, ActiveCounts& active) {
    if (a.state == State::pending || a.state == State::firing) {
        ++active[{a.rule, a.severity, state_name(a.state)}];
    }
}

uint64_t Engine::record_event(const AlertState& a, int64_t now) {
    if (events_.size() >= kMaxEvents) {
        events_.erase(events_.begin());
    }
    uint64_t seq = next_seq_++;
    EventRec& e = events_[seq];
    e.at_ms = now;
    e.fingerprint = a.fingerprint;
    e.rule = a.rule;
    e.severity = a.severity;
    e.state = state_name(a.state);
    e.labels = a.labels;
    e.value = a.value;
    e.threshold = a.threshold;
    return seq;
}

void Engine::notify_due(int64_t now) {
    bool redis_down = false, pg_down = false;
    for (const auto& [fp, a] : alerts_) {
        redis_down = redis_down || (a.rule == "redis_down" && a.state == State::firing);
        pg_down = pg_down || (a.rule == "postgres_down" && a.state == State::firing);
    }
    for (Group& g : grouper_.due(now, acfg_.group_wait_ms)) {
        const AlertRule& rc = acfg_.rules.at(g.rule);
        // Per channel, the alerts of the group that go out on it.
        std::map<size_t, std::pair<Message, std::vector<uint64_t>>> per_channel;
        for (const GroupItem& item : g.items) {
            auto eit = events_.find(item.event_seq);
            if (eit == events_.end()) {
                continue;
            }
            EventRec& ev = eit->second;
            ev.outstanding--;
            ev.notified_dirty = true;
            auto ait = alerts_.find(item.fingerprint);
            if (ait == alerts_.end()) {
                continue;
            }
            const AlertState& a = ait->second;
            const auto& names = rc.channels ? *rc.channels : acfg_.severity_channels.at(a.severity);
            bool muted = !silenced_by(silences_, a.rule, a.labels).empty() ||
                         inhibited(a.rule, redis_down, pg_down);
            if (names.empty()) {
                ev.notified["log"] = muted ? "silenced" : "sent";
            }
            for (size_t ci = 0; ci < acfg_.channels.size(); ++ci) {
                const std::string& cname = acfg_.channels[ci].name;
                if (std::find(names.begin(), names.end(), cname) == names.end()) {
                    continue;
                }
                if (muted) {
                    ev.notified[cname] = "silenced";
                    metrics::global().alert_sent(a.rule, cname, "silenced");
                    continue;
                }
                auto& [m, seqs] = per_channel[ci];
                AlertInfo info{a.fingerprint, a.rule,       a.labels,  a.severity, g.resolved,
                               ev.value,      ev.threshold, a.summary, 0};
                info.since_ms = g.resolved ? a.resolved_at_ms : a.firing_since_ms;
                m.rule = g.rule;
                m.resolved = g.resolved;
                if (m.severity.empty() || severity_rank(a.severity) < severity_rank(m.severity)) {
                    m.severity = a.severity;
                }
                m.alerts.push_back(std::move(info));
                seqs.push_back(item.event_seq);
            }
        }
        for (auto& [ci, mp] : per_channel) {
            // Not a structured binding: clang 14 cannot capture one in the lambda below.
            auto& m = mp.first;
            auto& seqs = mp.second;
            const std::string& cname = acfg_.channels[ci].name;
            auto mark = [&](const std::string& outcome) {
                for (uint64_t s : seqs) {
                    if (auto it = events_.find(s); it != events_.end()) {
                        it->second.notified[cname] = outcome;
                    }
                }
            };
            if (!buckets_[ci].take(now)) {
                folded_[ci] += m.alerts.size();
                mark("rate_limited");
                metrics::global().alert_sent(g.rule, cname, "rate_limited");
                continue;
            }
            m.folded = folded_[ci];
            size_t n = m.alerts.size();
            if (!notifier_->submit(ci, std::move(m), seqs)) {
                folded_[ci] += n;
                mark("error: queue full");
                metrics::global().alert_sent(g.rule, cname, "error");
                continue;
            }
            folded_[ci] = 0;
            mark("queued");
            for (uint64_t s : seqs) {
                if (auto it = events_.find(s); it != events_.end()) {
                    it->second.outstanding++;
                }
            }
        }
    }
}

void Engine::apply_results() {
    std::vector<SendResult> rs;
    {
        std::lock_guard lock(results_mu_);
        rs.swap(results_);
    }
    for (auto& r : rs) {
        for (uint64_t s : r.event_seqs) {
            auto it = events_.find(s);
            if (it == events_.end()) {
                continue;
            }
            it->second.notified[acfg_.channels[r.channel].name] = r.outcome;
            it->second.outstanding--;
            it->second.notified_dirty = true;
        }
    }
}

void Engine::load_state() {
    PgResult r =
        ctl::query(pg_,
                   "SELECT fingerprint, rule, labels::text, severity, state, coalesce(value, 0), "
                   "coalesce(threshold, 0), summary, "
                   "coalesce(extract(epoch FROM pending_since) * 1000, 0)::bigint, "
                   "coalesce(extract(epoch FROM firing_since) * 1000, 0)::bigint, "
                   "coalesce(extract(epoch FROM resolved_at) * 1000, 0)::bigint, "
                   "coalesce(extract(epoch FROM last_notified_at) * 1000, 0)::bigint "
                   "FROM alerts WHERE state IN ('pending', 'firing')",
                   {});
    if (!r) {
        return;
    }
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        std::string fp = cell(r, i, 0);
        if (alerts_.count(fp)) {
            continue;  // evaluated while PostgreSQL was away: what this worker saw is newer
        }
        AlertState a;
        a.fingerprint = fp;
        a.rule = cell(r, i, 1);
        auto labels = nlohmann::json::parse(cell(r, i, 2), nullptr, false);
        if (labels.is_object()) {
            for (auto& [k, v] : labels.items()) {
                a.labels[k] = v.is_string() ? v.get<std::string>() : v.dump();
            }
        }
        a.severity = cell(r, i, 3);
        a.state = parse_state(cell(r, i, 4)).value_or(State::inactive);
        a.value = std::stod(cell(r, i, 5));
        a.threshold = std::stod(cell(r, i, 6));
        a.summary = cell(r, i, 7);
        a.pending_since_ms = std::stoll(cell(r, i, 8));
        a.firing_since_ms = std::stoll(cell(r, i, 9));
        a.resolved_at_ms = std::stoll(cell(r, i, 10));
        a.last_notified_ms = std::stoll(cell(r, i, 11));
        alerts_[fp] = std::move(a);
    }
    loaded_ = true;
}

void Engine::read_silences() {
    PgResult r = ctl::query(pg_,
                            "SELECT id, matchers::text FROM alert_silences WHERE expired_at IS "
                            "NULL AND starts_at <= now() AND now() < ends_at",
                            {});
    if (!r) {
        return;  // keep the last list
    }
    std::vector<Silence> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Silence s;
        s.id = std::stoll(cell(r, i, 0));
        auto m = nlohmann::json::parse(cell(r, i, 1), nullptr, false);
        if (!m.is_object()) {
            continue;
        }
        for (auto& [k, v] : m.items()) {
            s.matchers[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
        out.push_back(std::move(s));
    }
    silences_ = std::move(out);
}

void Engine::flush() {
    for (auto& [fp, a] : alerts_) {
        if (!a.dirty) {
            continue;
        }
        nlohmann::json labels = a.labels;
        std::vector<std::optional<std::string>> p = {
            a.fingerprint,
            a.rule,
            labels.dump(),
            a.severity,
            std::string(state_name(a.state)),
            std::to_string(a.value),
            std::to_string(a.threshold),
            a.summary,
            acfg_.runbook_url + "#" + runbook_anchor(a.rule),
            ts_or_null(a.pending_since_ms),
            ts_or_null(a.firing_since_ms),
            ts_or_null(a.resolved_at_ms),
            ts_or_null(a.state == State::pending ? 0 : a.last_notified_ms)};
        PgResult r = ctl::query(
            pg_,
            "INSERT INTO alerts (fingerprint, rule, labels, severity, state, value, threshold, "
            "summary, runbook, pending_since, firing_since, resolved_at, last_notified_at, "
            "updated_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, to_timestamp($10), "
            "to_timestamp($11), to_timestamp($12), to_timestamp($13), now()) "
            "ON CONFLICT (fingerprint) DO UPDATE SET rule = EXCLUDED.rule, labels = "
            "EXCLUDED.labels, severity = EXCLUDED.severity, state = EXCLUDED.state, value = "
            "EXCLUDED.value, threshold = EXCLUDED.threshold, summary = EXCLUDED.summary, runbook "
            "= EXCLUDED.runbook, pending_since = EXCLUDED.pending_since, firing_since = "
            "EXCLUDED.firing_since, resolved_at = EXCLUDED.resolved_at, last_notified_at = "
            "EXCLUDED.last_notified_at, updated_at = now()",
            p);
        if (!r) {
            pg_ok_ = false;
            return;
        }
        a.dirty = false;
    }
    // Resolved alerts need not stay in memory: the row says it all.
    std::erase_if(alerts_, [](const auto& kv) {
        return kv.second.state == State::resolved && !kv.second.dirty;
    });
    for (auto it = events_.begin(); it != events_.end();) {
        EventRec& e = it->second;
        if (e.db_id == 0) {
            nlohmann::json labels = e.labels;
            PgResult r = ctl::query(
                pg_,
                "INSERT INTO alert_events (at, fingerprint, rule, labels, severity, state, value, "
                "threshold, notified) VALUES (to_timestamp($1), $2, $3, $4::jsonb, $5, $6, $7, "
                "$8, $9::jsonb) RETURNING id",
                {std::to_string(static_cast<double>(e.at_ms) / 1000), e.fingerprint, e.rule,
                 labels.dump(), e.severity, e.state, std::to_string(e.value),
                 std::to_string(e.threshold), e.notified.dump()});
            if (!r) {
                pg_ok_ = false;
                return;
            }
            e.db_id = std::stoll(cell(r, 0, 0));
            e.notified_dirty = false;
        } else if (e.notified_dirty) {
            PgResult r =
                ctl::query(pg_, "UPDATE alert_events SET notified = $2::jsonb WHERE id = $1",
                           {std::to_string(e.db_id), e.notified.dump()});
            if (!r) {
                pg_ok_ = false;
                return;
            }
            e.notified_dirty = false;
        }
        if (e.outstanding <= 0 && !e.notified_dirty) {
            it = events_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace hookq::alerts
