#include "worker/alerts/engine.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"
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

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

std::string interval_sql(uint64_t ms) {
    return std::to_string(ms) + " milliseconds";
}

int severity_rank(const std::string& s) {
    return s.size() == 2 ? s[1] - '0' : 9;
}

std::optional<std::string> ts_or_null(int64_t ms) {
    if (ms <= 0) {
        return std::nullopt;
    }
    return std::to_string(static_cast<double>(ms) / 1000);
}

size_t collect(char* p, size_t size, size_t n, void* out) {
    auto* s = static_cast<std::string*>(out);
    if (s->size() > (8u << 20)) {
        return 0;  // an edge's status page is kilobytes; stop anything unbounded
    }
    s->append(p, size * n);
    return size * n;
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
    started_ms_ = wall_ms();
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
        int64_t now = wall_ms();
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
    redis_error_.clear();
    redis_ok_ = redis_.ensure();
    if (redis_ok_) {
        Reply r = redis_.command({"PING"});
        redis_ok_ = r && !is_error(r);
    }
    if (!redis_ok_) {
        redis_error_ = redis_.last_error().empty() ? "unreachable" : redis_.last_error();
    }
    pg_ok_ = pg_.ok() || pg_.connect();
    if (pg_ok_) {
        pg_ok_ = static_cast<bool>(pg_.query("SELECT 1"));
    }
    pg_error_ = pg_ok_ ? "" : "unreachable";

    bool was = leader_;
    leader_ = hold_lease();
    metrics::global().alerts_leader(leader_);
    if (was && !leader_) {
        lose_lease();
    }
    if (!leader_) {
        apply_results();
        if (pg_ok_ && !events_.empty()) {
            flush();
        }
        return;
    }
    if (!was) {
        log::info("alerting lease taken", {{"worker", cfg_.worker_id}});
    }
    if (pg_ok_ && !loaded_) {
        load_state();
    }
    if (pg_ok_) {
        read_silences();
    }

    std::map<std::array<std::string, 3>, uint64_t> active;
    for (const auto& rule : alert_rule_names()) {
        const AlertRule& rc = acfg_.rules.at(rule);
        if (!rc.enabled) {
            continue;
        }
        Observations obs;
        try {
            obs = evaluate(rule, now);
        } catch (const std::exception& e) {
            log::warn("alert rule could not be evaluated", {{"rule", rule}, {"error", e.what()}});
        }
        if (!obs) {
            // No data this round (its store is away): the alerts of this rule keep their state.
            for (auto& [fp, a] : alerts_) {
                if (a.rule == rule && (a.state == State::pending || a.state == State::firing)) {
                    ++active[{a.rule, a.severity, state_name(a.state)}];
                }
            }
            continue;
        }
        std::map<std::string, const Observation*> seen;
        for (const auto& o : *obs) {
            std::string fp = fingerprint(rule, o.labels);
            seen[fp] = &o;
            if (!alerts_.count(fp) && o.active) {
                AlertState a;
                a.fingerprint = fp;
                a.rule = rule;
                a.labels = o.labels;
                a.severity = o.severity.empty() ? rc.severity : o.severity;
                alerts_[fp] = a;
            }
        }
        for (auto& [fp, a] : alerts_) {
            if (a.rule != rule) {
                continue;
            }
            auto it = seen.find(fp);
            const Observation* o = it == seen.end() ? nullptr : it->second;
            if (o && o->severity.empty()) {
                a.severity = rc.severity;
            }
            Action act = step(a, o, now, rc.for_ms, acfg_.repeat_interval_ms);
            switch (act) {
                case Action::fire:
                case Action::repeat:
                case Action::resolve: {
                    bool resolved = act == Action::resolve;
                    log::warn(resolved ? "alert resolved" : "alert firing",
                              {{"rule", rule},
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
                    record_event(a, now);
                    break;
                case Action::none:
                    break;
            }
            if (a.state == State::pending || a.state == State::firing) {
                ++active[{a.rule, a.severity, state_name(a.state)}];
            }
        }
    }
    metrics::global().alerts_active(std::move(active));
    notify_due(now);
    apply_results();
    if (pg_ok_) {
        flush();
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
            auto& [m, seqs] = mp;
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

Engine::Observations Engine::evaluate(const std::string& rule, int64_t now) {
    const AlertRule& rc = acfg_.rules.at(rule);
    if (rule == "redis_down" || rule == "postgres_down") {
        bool down = rule == "redis_down" ? !redis_ok_ : !pg_ok_;
        Observation o;
        o.active = down;
        o.value = down ? 1 : 0;
        o.threshold = rc.threshold;
        o.summary = std::string(rule == "redis_down" ? "Redis" : "PostgreSQL") +
                    (down ? " unreachable from the alerting engine" : " reachable");
        return std::vector<Observation>{o};
    }
    static const std::set<std::string> pg_rules = {"failure_ratio", "slow_p95",
                                                   "slow_delivery", "dead_letters",
                                                   "source_silent", "fallback_used"};
    if (pg_rules.count(rule)) {
        if (!pg_ok_) {
            return std::nullopt;
        }
        if (rule == "dead_letters") {
            return dead_letters();
        }
        if (rule == "source_silent") {
            return source_silent(now);
        }
        if (rule == "fallback_used") {
            return fallback_used();
        }
        return delivery_stats(rule);
    }
    if (rule == "signature_failures") {
        return signature_failures(now);
    }
    if (!redis_ok_) {
        return std::nullopt;
    }
    if (rule == "breaker_open") {
        return breakers();
    }
    if (rule == "health_check") {
        return health_checks();
    }
    return queues(rule);
}

// failure_ratio, slow_p95 and slow_delivery, per route, from the minute rollups the recorder keeps
// (migrations/0004): never from delivery_attempts.
Engine::Observations Engine::delivery_stats(const std::string& rule) {
    const AlertRule& rc = acfg_.rules.at(rule);
    PgResult r =
        ctl::query(pg_,
                   "SELECT route, sum(delivered)::text, sum(retried + dead)::text, "
                   "coalesce(hookq_hist_sum(duration_hist), '{}')::text FROM delivery_stats_minute "
                   "WHERE bucket >= date_trunc('minute', now() - $1::interval) GROUP BY route",
                   {interval_sql(rc.window_ms)});
    if (!r) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Observation o;
        o.labels = {{"route", cell(r, i, 0)}};
        double ok = std::stod(cell(r, i, 1));
        double failed = std::stod(cell(r, i, 2));
        double total = ok + failed;
        o.threshold = rc.threshold;
        if (rule == "failure_ratio") {
            o.value = total > 0 ? failed / total : 0;
            bool enough = total >= rc.min_count && total > 0;
            o.active = enough && o.value >= rc.threshold;
            o.summary = fmt(failed) + " of " + fmt(total) + " attempts failed in the last " +
                        fmt(static_cast<double>(rc.window_ms) / 1000) + " s";
            if (rc.warn_threshold > 0) {
                // The warning level is its own alert: crossing into critical resolves it and
                // fires the critical one, so an escalation is announced.
                Observation w = o;
                w.labels["level"] = "warning";
                w.threshold = rc.warn_threshold;
                w.severity = rc.warn_severity;
                w.active = enough && o.value >= rc.warn_threshold && o.value < rc.threshold;
                out.push_back(std::move(w));
            }
        } else {
            ops::Histogram h(kStatsBuckets, 0);
            ops::add_histogram(h, cell(r, i, 3));
            uint64_t n = 0;
            for (uint64_t c : h) {
                n += c;
            }
            if (rule == "slow_p95") {
                auto p95 = ops::percentile_ms(h, 0.95);
                o.value = p95 ? *p95 / 1000 : 0;
                o.active = p95 && static_cast<double>(n) >= std::max(1.0, rc.min_count) &&
                           o.value >= rc.threshold;
                o.summary = "p95 attempt duration " + fmt(o.value) + " s over " +
                            std::to_string(n) + " attempts";
            } else {
                // Attempts whose bucket lies wholly above the threshold.
                uint64_t thr_us = static_cast<uint64_t>(rc.threshold * 1e6);
                uint64_t slow = 0;
                for (size_t k = 1; k < h.size(); ++k) {
                    if (kStatsBounds[k - 1] >= thr_us) {
                        slow += h[k];
                    }
                }
                o.value = static_cast<double>(slow);
                o.active = slow >= 1;
                o.summary =
                    std::to_string(slow) + " attempts took over " + fmt(rc.threshold) + " s";
            }
        }
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::dead_letters() {
    const AlertRule& rc = acfg_.rules.at("dead_letters");
    PgResult r = ctl::query(pg_,
                            "SELECT route, source, count(*)::text FROM dead_letters WHERE "
                            "failed_at >= now() - $1::interval GROUP BY route, source",
                            {interval_sql(rc.window_ms)});
    if (!r) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Observation o;
        std::string source = cell(r, i, 1);
        o.labels = {{"route", cell(r, i, 0)}, {"source", source}};
        o.value = std::stod(cell(r, i, 2));
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        const auto& pay = acfg_.payment_sources;
        if (std::find(pay.begin(), pay.end(), source) != pay.end() &&
            severity_rank(rc.severity) > 1) {
            o.severity = "P1";
        }
        o.summary = fmt(o.value) + " dead letters in the last " +
                    fmt(static_cast<double>(rc.window_ms) / 60000) + " min";
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::source_silent(int64_t now) {
    std::vector<Observation> out;
    for (const auto& [source, after_ms] : acfg_.silent_after) {
        PgResult r = ctl::query(pg_,
                                "SELECT (extract(epoch FROM max(received_at)) * 1000)::bigint "
                                "FROM webhook_events WHERE source = $1 AND received_at > now() - "
                                "interval '90 days'",
                                {source});
        if (!r) {
            return std::nullopt;
        }
        // Never heard from since this worker started: silent since then.
        int64_t last = is_null(r, 0, 0) ? started_ms_ : std::stoll(cell(r, 0, 0));
        Observation o;
        o.labels = {{"source", source}};
        o.value = static_cast<double>(std::max<int64_t>(0, now - last)) / 1000;
        o.threshold = static_cast<double>(after_ms) / 1000;
        o.active = o.value >= o.threshold;
        o.summary = "no webhook from " + source + " for " + fmt(o.value) + " s";
        out.push_back(std::move(o));
    }
    return out;
}

// Attempts recorded against a route's fallback_url: the recorder writes the URL it used, so the
// signal costs the delivery path nothing.
Engine::Observations Engine::fallback_used() {
    const AlertRule& rc = acfg_.rules.at("fallback_used");
    std::vector<Observation> out;
    for (const auto& route : cfg_.routes) {
        if (route.fallback_url.empty()) {
            continue;
        }
        PgResult r = ctl::query(pg_,
                                "SELECT count(*)::text FROM delivery_attempts WHERE started_at >= "
                                "now() - $1::interval AND route = $2 AND split_part(url, '?', 1) "
                                "= split_part($3, '?', 1)",
                                {interval_sql(rc.window_ms), route.name, route.fallback_url});
        if (!r) {
            return std::nullopt;
        }
        Observation o;
        o.labels = {{"route", route.name}};
        o.value = std::stod(cell(r, 0, 0));
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        o.summary = fmt(o.value) + " deliveries went to the fallback URL";
        out.push_back(std::move(o));
    }
    return out;
}

// queue_depth, queue_age and retry_overdue, per queue, against Redis's clock.
Engine::Observations Engine::queues(const std::string& rule) {
    const AlertRule& rc = acfg_.rules.at(rule);
    uint64_t now_ms = ctl::redis_now_ms(redis_);
    std::vector<Observation> out;
    for (const auto& q : cfg_.queues) {
        Observation o;
        o.labels = {{"queue", q}};
        o.threshold = rc.threshold;
        if (rule == "queue_depth") {
            Reply r = ctl::must(redis_, {"LLEN", keys::queue(q)});
            o.value = static_cast<double>(r->integer);
            o.summary = fmt(o.value) + " webhooks waiting";
        } else if (rule == "queue_age") {
            o.value = std::max(0.0, ops::tail_age_s(redis_, keys::queue(q), now_ms));
            o.summary = "the oldest waiting webhook arrived " + fmt(o.value) + " s ago";
        } else if (rule == "loop_detected") {
            // The edge lists an entity here once it repeats past hookq_loop_limit; it stays
            // until `hookqctl loops clear`, so the alert holds until someone has looked.
            Reply r = ctl::must(redis_, {"ZCARD", keys::loops(q)});
            Reply held = ctl::must(redis_, {"LLEN", keys::held(q)});
            o.value = static_cast<double>(r->integer);
            o.summary = fmt(o.value) + " entities repeating past hookq_loop_limit, " +
                        fmt(static_cast<double>(held->integer)) + " webhooks held (hookqctl loops)";
        } else {
            // Past due by more than the window: retries merely scheduled are not a backlog.
            std::string before = std::to_string(now_ms - std::min(now_ms, rc.window_ms));
            Reply r = ctl::must(redis_, {"ZCOUNT", keys::retry(q), "-inf", before});
            o.value = static_cast<double>(r->integer);
            o.summary = fmt(o.value) + " retries overdue by more than " +
                        fmt(static_cast<double>(rc.window_ms) / 1000) + " s";
        }
        o.active = rule == "queue_depth" ? o.value > rc.threshold : o.value >= rc.threshold;
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::breakers() {
    auto list = ops::list_breakers(redis_, ops::known_destinations(cfg_));
    std::vector<Observation> out;
    for (const auto& b : list) {
        Observation o;
        std::string state = b.value("state", "closed");
        o.labels = {{"destination", b.value("destination", "")}};
        o.active = state == "open" || state == "half_open";
        o.value = o.active ? 1 : 0;
        o.threshold = 1;
        o.summary = o.active ? "circuit breaker " + state + ": deliveries are parked"
                             : "circuit breaker closed: deliveries flow again";
        out.push_back(std::move(o));
    }
    return out;
}

// The destination health checks' state (CONTRACT2: the hash hookq:hc:{<route>}).
Engine::Observations Engine::health_checks() {
    const AlertRule& rc = acfg_.rules.at("health_check");
    std::vector<Observation> out;
    for (const auto& route : cfg_.routes) {
        Reply r =
            ctl::must(redis_, {"HGET", keys::health_check(route.name), "consecutive_failures"});
        if (r->type != REDIS_REPLY_STRING) {
            continue;  // no health check on this route
        }
        Observation o;
        o.labels = {{"route", route.name}};
        o.value = std::strtod(std::string(r->str, r->len).c_str(), nullptr);
        o.threshold = rc.threshold;
        o.active = o.value >= rc.threshold;
        o.summary = fmt(o.value) + " consecutive failed health checks";
        out.push_back(std::move(o));
    }
    return out;
}

Engine::Observations Engine::signature_failures(int64_t now) {
    const AlertRule& rc = acfg_.rules.at("signature_failures");
    if (acfg_.edge_metrics.empty()) {
        return std::vector<Observation>{};
    }
    std::map<std::string, double> increase;
    bool any = false;
    for (const auto& url : acfg_.edge_metrics) {
        std::string body;
        CURL* c = curl_easy_init();
        if (!c) {
            continue;
        }
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        CURLcode rc_curl = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        if (rc_curl != CURLE_OK || status != 200) {
            log::warn("alerting: cannot read the edge's counters",
                      {{"error", rc_curl != CURLE_OK ? curl_easy_strerror(rc_curl)
                                                     : "HTTP " + std::to_string(status)}});
            continue;
        }
        any = true;
        auto& samples = edge_samples_[url];
        samples.push_back(Sample{now, parse_edge_failures(body)});
        // Keep one sample at or before the window's start: the baseline.
        while (samples.size() > 2 && samples[1].ms <= now - static_cast<int64_t>(rc.window_ms)) {
            samples.pop_front();
        }
        const Sample& base = samples.front();
        for (const auto& [source, v] : samples.back().failures) {
            auto it = base.failures.find(source);
            double before = it == base.failures.end() ? 0 : it->second;
            increase[source] += v >= before ? v - before : v;  // a reload resets the counters
        }
    }
    if (!any) {
        return std::nullopt;
    }
    std::vector<Observation> out;
    for (const auto& [source, n] : increase) {
        Observation o;
        o.labels = {{"source", source}};
        o.value = n;
        o.threshold = rc.threshold;
        o.active = n >= rc.threshold;
        o.summary = fmt(n) + " requests refused for their signature";
        out.push_back(std::move(o));
    }
    return out;
}

}  // namespace hookq::alerts
