#include "worker/pipeline/breaker.h"

#include <algorithm>
#include <charconv>

namespace hookq {

std::string_view to_string(BreakerState s) noexcept {
    switch (s) {
        case BreakerState::closed:
            return "closed";
        case BreakerState::open:
            return "open";
        case BreakerState::half_open:
            return "half_open";
    }
    return "closed";
}

BreakerState breaker_state_from(std::string_view s) noexcept {
    if (s == "open") {
        return BreakerState::open;
    }
    if (s == "half_open") {
        return BreakerState::half_open;
    }
    return BreakerState::closed;
}

namespace breaker_scripts {

// The probe lease is owned (probe_owner: the token of the delivery holding it) and lasts as long as
// the slowest delivery to this destination may take plus a margin, so a worker that dies mid-probe
// blocks the destination for about one timeout, not longer. A report from its owner ends it at
// once.
const std::string_view kAcquire = R"lua(
local now = tonumber(ARGV[1])
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'closed' then return {'allow', 'closed', 0, ''} end
local trans = ''
if st == 'open' then
  local untl = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < untl then return {'park', 'open', untl, ''} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'successes', '0', 'probe_until', '0',
             'probe_owner', '')
  trans = 'open>half_open'
end
local pu = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if pu > now then return {'park', 'half_open', pu, trans} end
redis.call('HSET', KEYS[1], 'probe_until', string.format('%d', now + tonumber(ARGV[2])),
           'probe_owner', ARGV[3])
return {'probe', 'half_open', 0, trans}
)lua";

// Failures are kept as the timestamps of the last `threshold` failures inside the hash itself, so
// the rolling window needs no second key (and stays in one Cluster slot).
const std::string_view kReport = R"lua(
local now = tonumber(ARGV[1])
local ok = ARGV[2] == '1'
local probe = ARGV[3] == '1'
local threshold = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local open_ms = tonumber(ARGV[6])
local close_after = tonumber(ARGV[7])
local token = ARGV[8]
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function open(from)
  local untl = string.format('%d', now + open_ms)
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', untl, 'fails', '',
             'successes', '0', 'probe_until', '0', 'probe_owner', '', 'changed_at', ARGV[1])
  return {'open', from .. '>open', untl, 'accepted'}
end
if st == 'closed' then
  if ok then return {'closed', '', '0', ''} end
  local fails = {}
  local s = redis.call('HGET', KEYS[1], 'fails')
  if s then
    for t in string.gmatch(s, '%d+') do
      if now - tonumber(t) < window then fails[#fails + 1] = t end
    end
  end
  fails[#fails + 1] = ARGV[1]
  while #fails > threshold do table.remove(fails, 1) end
  if #fails >= threshold then return open('closed') end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'fails', table.concat(fails, ' '))
  return {'closed', '', '0', ''}
elseif st == 'half_open' then
  if not probe then return {st, '', '0', ''} end
  -- Only the lease's owner speaks for the probe: a report that arrives after its lease lapsed and
  -- another probe took over (or after the breaker moved on) is stale and changes nothing.
  if redis.call('HGET', KEYS[1], 'probe_owner') ~= token then return {st, '', '0', 'stale'} end
  if not ok then return open('half_open') end
  local n = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  -- Released at once: the next probe need not wait for the lease to lapse.
  redis.call('HSET', KEYS[1], 'probe_until', '0', 'probe_owner', '')
  if n >= close_after then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'fails', '', 'successes', '0',
               'changed_at', ARGV[1])
    return {'closed', 'half_open>closed', '0', 'accepted'}
  end
  return {st, '', '0', 'accepted'}
end
return {st, '', redis.call('HGET', KEYS[1], 'open_until') or '0', probe and 'stale' or ''}
)lua";

}  // namespace breaker_scripts

namespace {
uint64_t to_u64(const std::string& s) {
    uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}
}  // namespace

std::unordered_map<std::string, uint64_t> probe_leases(const std::vector<Route>& routes,
                                                       uint64_t margin_ms) {
    std::unordered_map<std::string, uint64_t> out;
    for (const Route& r : routes) {
        uint64_t& lease = out[r.destination];
        lease = std::max(lease, r.timeout_ms + margin_ms);
    }
    return out;
}

std::string probe_token(std::string_view worker_id, uint64_t probe_id) {
    return std::string(worker_id) + ":" + std::to_string(probe_id);
}

AcquireResult parse_acquire(const std::vector<std::string>& reply) {
    AcquireResult r;
    if (reply.size() < 4) {
        return r;
    }
    if (reply[0] == "park") {
        r.action = AcquireResult::park;
    } else if (reply[0] == "probe") {
        r.action = AcquireResult::probe;
    }
    r.state = breaker_state_from(reply[1]);
    r.until_ms = to_u64(reply[2]);
    r.transition = reply[3];
    return r;
}

BreakerCache::Local BreakerCache::check(const std::string& dest, uint64_t now_ms,
                                        uint64_t& until_ms, uint64_t* checked_ms) const {
    auto it = entries_.find(dest);
    if (it == entries_.end()) {
        return Local::ask_redis;
    }
    const Entry& e = it->second;
    if (e.state == BreakerState::open && now_ms < e.until_ms && now_ms < e.checked_ms + open_ms_) {
        until_ms = e.until_ms;
        if (checked_ms) {
            *checked_ms = e.checked_ms;
        }
        return Local::park;
    }
    if (e.state == BreakerState::closed && now_ms < e.checked_ms + ttl_ms_) {
        return Local::allow;
    }
    return Local::ask_redis;
}

void BreakerCache::update(const std::string& dest, BreakerState s, uint64_t until_ms,
                          uint64_t now_ms) {
    entries_[dest] = Entry{s, until_ms, now_ms};
}

BreakerState BreakerCache::state(const std::string& dest) const {
    auto it = entries_.find(dest);
    return it == entries_.end() ? BreakerState::closed : it->second.state;
}

bool BreakerCache::report_needed(const std::string& dest, bool ok, bool probe) const {
    if (probe || !ok) {
        return true;
    }
    auto it = entries_.find(dest);
    return it != entries_.end() && it->second.state != BreakerState::closed;
}

}  // namespace hookq
