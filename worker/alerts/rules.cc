#include "worker/alerts/rules.h"

#include <algorithm>

namespace hookq::alerts {

std::string fingerprint(const std::string& rule, const Labels& labels) {
    std::string fp = rule + "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) {
            fp += ',';
        }
        first = false;
        fp += k + "=" + v;
    }
    return fp + "}";
}

std::string runbook_anchor(const std::string& rule) {
    static const std::map<std::string, std::string> anchors = {
        {"failure_ratio", "payment-webhooks-failing"},
        {"dead_letters", "dead-letters-growing"},
        {"queue_depth", "queue-backlog"},
        {"queue_age", "queue-backlog"},
        {"retry_overdue", "queue-backlog"},
        {"breaker_open", "destination-down-breaker-open"},
        {"signature_failures", "signature-failures"},
        {"source_silent", "provider-gone-silent"},
        {"slow_p95", "slow-deliveries"},
        {"slow_delivery", "slow-deliveries"},
        {"fallback_used", "destination-down-breaker-open"},
        {"redis_down", "redis-down"},
        {"postgres_down", "postgresql-down"},
        {"health_check", "destination-down-breaker-open"},
        {"loop_detected", "webhook-loop"},
        {"queue_unreachable", "acks-waiting-for-redis"},
        {"redis_memory", "redis-memory"},
    };
    auto it = anchors.find(rule);
    return it == anchors.end() ? "" : it->second;
}

const char* state_name(State s) {
    switch (s) {
        case State::pending:
            return "pending";
        case State::firing:
            return "firing";
        case State::resolved:
            return "resolved";
        default:
            return "inactive";
    }
}

std::optional<State> parse_state(const std::string& s) {
    for (State st : {State::pending, State::firing, State::resolved}) {
        if (s == state_name(st)) {
            return st;
        }
    }
    return std::nullopt;
}

Action step(AlertState& a, const Observation* obs, int64_t now_ms, uint64_t for_ms,
            uint64_t repeat_ms) {
    bool active = obs && obs->active;
    if (obs) {
        // A pending or firing row follows the value; a resolved one keeps its last.
        if (a.value != obs->value || a.threshold != obs->threshold || a.summary != obs->summary) {
            a.dirty = a.dirty || active;
        }
        if (active) {
            a.value = obs->value;
            a.threshold = obs->threshold;
            a.summary = obs->summary;
            if (!obs->severity.empty()) {
                a.severity = obs->severity;
            }
        }
    }
    auto fire = [&] {
        a.state = State::firing;
        a.firing_since_ms = now_ms;
        a.last_notified_ms = now_ms;
        a.dirty = true;
        return Action::fire;
    };
    switch (a.state) {
        case State::inactive:
        case State::resolved:
            if (!active) {
                return Action::none;
            }
            a.state = State::pending;
            a.pending_since_ms = now_ms;
            a.firing_since_ms = 0;
            a.resolved_at_ms = 0;
            a.dirty = true;
            if (for_ms == 0) {
                return fire();
            }
            return Action::entered_pending;
        case State::pending:
            if (!active) {
                a.state = State::resolved;
                a.resolved_at_ms = now_ms;
                a.dirty = true;
                return Action::dropped_pending;
            }
            if (now_ms - a.pending_since_ms >= static_cast<int64_t>(for_ms)) {
                return fire();
            }
            return Action::none;
        case State::firing:
            if (!active) {
                // The recovery message says where the value is now ("breaker closed").
                if (obs) {
                    a.value = obs->value;
                    a.summary = obs->summary;
                }
                a.state = State::resolved;
                a.resolved_at_ms = now_ms;
                a.last_notified_ms = now_ms;
                a.dirty = true;
                return Action::resolve;
            }
            if (repeat_ms > 0 && now_ms - a.last_notified_ms >= static_cast<int64_t>(repeat_ms)) {
                a.last_notified_ms = now_ms;
                a.dirty = true;
                return Action::repeat;
            }
            return Action::none;
    }
    return Action::none;
}

bool silence_matches(const Silence& s, const std::string& rule, const Labels& labels) {
    for (const auto& [k, v] : s.matchers) {
        if (k == "rule") {
            if (v != rule) {
                return false;
            }
            continue;
        }
        auto it = labels.find(k);
        if (it == labels.end() || it->second != v) {
            return false;
        }
    }
    return true;
}

std::vector<int64_t> silenced_by(const std::vector<Silence>& silences, const std::string& rule,
                                 const Labels& labels) {
    std::vector<int64_t> ids;
    for (const auto& s : silences) {
        if (silence_matches(s, rule, labels)) {
            ids.push_back(s.id);
        }
    }
    return ids;
}

bool inhibited(const std::string& rule, bool redis_down_firing, bool postgres_down_firing) {
    if (!redis_down_firing && !postgres_down_firing) {
        return false;
    }
    if (rule == "queue_unreachable") {
        return redis_down_firing;  // every queue is, and redis_down says so once
    }
    return rule == "failure_ratio" || rule == "queue_depth" || rule == "queue_age" ||
           rule == "retry_overdue";
}

bool TokenBucket::take(int64_t now_ms) {
    if (last_ms_ >= 0 && now_ms > last_ms_) {
        tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000);
    }
    last_ms_ = std::max(last_ms_, now_ms);
    if (tokens_ >= 1) {
        tokens_ -= 1;
        return true;
    }
    return false;
}

void Grouper::add(const std::string& rule, bool resolved, GroupItem item, int64_t now_ms) {
    Group& g = groups_[{rule, resolved}];
    if (g.items.empty()) {
        g.rule = rule;
        g.resolved = resolved;
        g.first_ms = now_ms;
    }
    g.items.push_back(std::move(item));
}

std::vector<Group> Grouper::due(int64_t now_ms, uint64_t group_wait_ms) {
    std::vector<Group> out;
    for (auto it = groups_.begin(); it != groups_.end();) {
        if (now_ms - it->second.first_ms >= static_cast<int64_t>(group_wait_ms)) {
            out.push_back(std::move(it->second));
            it = groups_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

int severity_rank(const std::string& s) {
    return s.size() == 2 ? s[1] - '0' : 9;
}

}  // namespace hookq::alerts
