// The alerting engine's pure logic, tested on its own: fingerprints, the pending -> firing ->
// resolved state machine with `for` and repeat_interval, silences, grouping and the per-channel
// token bucket. No Redis, no PostgreSQL, no clock of its own (every call is given `now_ms`).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "worker/config.h"

namespace hookq::alerts {

using Labels = std::map<std::string, std::string>;  // sorted by key, as the fingerprint wants

// "failure_ratio{route=orders}", "redis_down{}": the key of the alerts table.
std::string fingerprint(const std::string& rule, const Labels& labels);

// The docs/runbooks.md anchor a rule's messages link to.
std::string runbook_anchor(const std::string& rule);

// One evaluation of one rule for one label set: `active` when the condition holds.
struct Observation {
    Labels labels;
    double value = 0;
    double threshold = 0;
    bool active = false;
    std::string severity;  // empty: the rule's (dead letters of payment sources raise it)
    std::string summary;   // one line, for messages and the alerts row
    // Nothing could be read for these labels this round (their queue's Redis master did not
    // answer): the alert keeps its state, as a whole rule does when its store is away.
    bool unknown = false;
};

enum class State { inactive, pending, firing, resolved };
// P0 -> 0 ... P3 -> 3 (lower is more severe); anything else after them.
int severity_rank(const std::string& s);
const char* state_name(State s);
std::optional<State> parse_state(const std::string& s);

struct AlertState {
    std::string fingerprint;
    std::string rule;
    Labels labels;
    std::string severity;
    State state = State::inactive;
    double value = 0;
    double threshold = 0;
    std::string summary;
    int64_t pending_since_ms = 0;
    int64_t firing_since_ms = 0;
    int64_t resolved_at_ms = 0;
    int64_t last_notified_ms = 0;
    bool dirty = false;  // to be written to the alerts table
};

// What a step asks the engine to do.
enum class Action { none, entered_pending, fire, repeat, resolve, dropped_pending };

// Advances one alert. `obs` null or inactive: the condition no longer holds. `for_ms` 0 fires at
// once. A pending alert whose condition clears is resolved without a message (it never fired).
Action step(AlertState& a, const Observation* obs, int64_t now_ms, uint64_t for_ms,
            uint64_t repeat_ms);

// A row of alert_silences, active now.
struct Silence {
    int64_t id = 0;
    std::map<std::string, std::string> matchers;  // "rule" -> the rule name, else a label
};
// CONTRACT2: every matcher key equals ("rule" the rule name, any other key labels[key]); an
// empty matcher set matches everything.
bool silence_matches(const Silence& s, const std::string& rule, const Labels& labels);
std::vector<int64_t> silenced_by(const std::vector<Silence>& silences, const std::string& rule,
                                 const Labels& labels);

// While a dependency is down its symptoms are muted: per-route failures and queue growth follow
// from Redis or PostgreSQL being unreachable and would only drown the cause.
bool inhibited(const std::string& rule, bool redis_down_firing, bool postgres_down_firing);

// Per channel: `rate` messages a second, bursts up to `burst`. Starts full.
class TokenBucket {
  public:
    TokenBucket(double rate_per_s, double burst)
        : rate_(rate_per_s), burst_(burst), tokens_(burst) {}
    bool take(int64_t now_ms);

  private:
    double rate_, burst_, tokens_;
    int64_t last_ms_ = -1;
};

// Notifications of one rule and kind (firing or resolved) within group_wait go out as one message
// listing every label set.
struct GroupItem {
    std::string fingerprint;
    uint64_t event_seq = 0;  // the engine's in-memory alert_events record
};
struct Group {
    std::string rule;
    bool resolved = false;
    int64_t first_ms = 0;
    std::vector<GroupItem> items;
};
class Grouper {
  public:
    void add(const std::string& rule, bool resolved, GroupItem item, int64_t now_ms);
    // The groups whose wait is over (all of them with group_wait 0), removed from the grouper.
    std::vector<Group> due(int64_t now_ms, uint64_t group_wait_ms);
    bool empty() const { return groups_.empty(); }

  private:
    std::map<std::pair<std::string, bool>, Group> groups_;
};

}  // namespace hookq::alerts
