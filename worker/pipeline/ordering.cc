#include "worker/pipeline/ordering.h"

#include "shared/crypto.h"
#include "shared/redis_keys.h"

namespace hookq::ordering {

namespace scripts {
// A free entity's merged list is empty unless its last holder went to the poison list with no one
// waiting (park::kPoison): the next holder stands for those updates, newer state as it is.
// A waiting entry is appended once: a claim acked as waiting but redelivered (the worker died in
// between) finds itself in the list already.
const std::string_view kEnter = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then redis.call('SET', KEYS[1], ARGV[1]) end
if not holder or holder == ARGV[1] then
  local merged = redis.call('LRANGE', KEYS[3], 0, -1)
  table.insert(merged, 1, 1)
  return merged
end
for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if string.sub(e, 1, 36) == ARGV[1] then return {0, holder} end
end
redis.call('RPUSH', KEYS[2], ARGV[2])
return {0, holder}
)lua";
}  // namespace scripts

std::string entity(std::string_view value) {
    return crypto::sha256_hex(value).substr(0, 32);
}

std::string waiting_entry(std::string_view id, uint64_t received_us, std::string_view record) {
    std::string e;
    e.reserve(id.size() + 22 + record.size());
    e.append(id);
    e += '|';
    e += std::to_string(received_us);
    e += '|';
    e.append(record);
    return e;
}

Entered enter(RedisConn& redis, std::string_view queue, std::string_view route,
              std::string_view entity, std::string_view id, const std::string& entry,
              std::vector<MergedUpdate>& merged, std::string& holder) {
    std::string k = keys::order(queue, route, entity);
    Reply r = redis.eval(scripts::kEnter, {k, k + ":w", k + ":m"}, {id, entry});
    if (is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        return Entered::error;
    }
    if (r->element[0]->integer == 0) {
        if (r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING) {
            holder.assign(r->element[1]->str, r->element[1]->len);
        }
        return Entered::wait;
    }
    for (size_t i = 1; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }
        std::string_view s(e->str, e->len);  // "<id>|<received_at_us>"
        size_t bar = s.find('|');
        MergedUpdate m;
        m.id = std::string(s.substr(0, bar));
        if (bar != std::string_view::npos) {
            m.received_us = std::strtoull(std::string(s.substr(bar + 1)).c_str(), nullptr, 10);
        }
        merged.push_back(std::move(m));
    }
    return Entered::go;
}

}  // namespace hookq::ordering
