#include "worker/ops/loops.h"

#include <algorithm>
#include <stdexcept>

#include "shared/redis_keys.h"
#include "worker/cli/common.h"

namespace hookq::ops {

namespace {

using ctl::must;
using ctl::must_query;
using Json = nlohmann::ordered_json;

// Held is filled at its left end, oldest at the right. Taking from the left and pushing on the
// queue's consuming (right) end leaves the oldest at the very end, delivered first. A batch per
// call keeps each script short: Redis runs nothing else while it runs.
constexpr std::string_view kRelease = R"lua(
local n = 0
while n < tonumber(ARGV[1]) do
  if not redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') then break end
  n = n + 1
end
return n
)lua";
constexpr int kReleaseBatch = 1000;

void check_queue(const std::string& queue, const std::vector<std::string>& queues) {
    if (queue.empty() || queue.size() > 200) {
        throw Error(Error::bad_request, "a queue name, as configured");
    }
    if (std::find(queues.begin(), queues.end(), queue) == queues.end()) {
        throw Error(Error::not_found, "no queue " + queue + " in the configuration");
    }
}

std::string text(const redisReply* r) {
    return r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
}

long long integer(const redisReply* r) {
    if (r == nullptr) {
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    try {
        return r->type == REDIS_REPLY_STRING ? std::stoll(std::string(r->str, r->len)) : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace

Json list_loops(RedisConn& redis, const std::vector<std::string>& queues, int top) {
    Json out = Json::array();
    for (const auto& q : queues) {
        long long held = integer(must(redis, {"LLEN", keys::held(q)}).get());
        auto z =
            must(redis, {"ZREVRANGE", keys::loops(q), "0", std::to_string(top - 1), "WITHSCORES"});
        if (held == 0 && z->elements == 0) {
            continue;
        }
        Json loops = Json::array();
        for (size_t i = 0; i + 1 < z->elements; i += 2) {
            std::string fp = text(z->element[i]);
            Json e;
            e["fingerprint"] = fp;
            e["key"] = text(must(redis, {"HGET", keys::loop_keys(q), fp}).get());
            e["count"] = integer(must(redis, {"GET", keys::loop_prefix(q) + fp}).get());
            e["last_count"] = integer(z->element[i + 1]);
            loops.push_back(std::move(e));
        }
        Json j;
        j["queue"] = q;
        j["held"] = held;
        j["loops"] = std::move(loops);
        out.push_back(std::move(j));
    }
    return out;
}

Json release_loops(RedisConn& redis, Pg& pg, const std::string& queue, const Actor& actor,
                   const std::vector<std::string>& queues) {
    check_queue(queue, queues);
    std::string held = keys::held(queue), target = keys::queue(queue);
    long long total = 0;
    // Each batch is audited with what it moved, committed once Redis has moved it: a release is
    // never done unaudited, nor audited when it did not happen.
    for (;;) {
        must_query(pg, "BEGIN");
        long long n = 0;
        try {
            Reply r = redis.eval(kRelease, {held, target}, {std::to_string(kReleaseBatch)});
            if (!r || is_error(r)) {
                throw std::runtime_error("Redis: cannot release the held envelopes of " + queue +
                                         ": " +
                                         (r ? std::string(r->str, r->len) : redis.last_error()));
            }
            n = r->integer;
            if (n == 0 && total > 0) {
                pg.exec("ROLLBACK");
                break;
            }
            audit(pg, actor, "loops.release", queue, {{"queue", queue}, {"released", n}});
            must_query(pg, "COMMIT");
        } catch (...) {
            pg.exec("ROLLBACK");
            throw;
        }
        total += n;
        if (n < kReleaseBatch) {
            break;
        }
    }
    Json j;
    j["queue"] = queue;
    j["released"] = total;
    return j;
}

Json clear_loops(RedisConn& redis, Pg& pg, const std::string& queue, const Actor& actor,
                 const std::vector<std::string>& queues) {
    check_queue(queue, queues);
    std::vector<std::string> names = ctl::scan_keys(redis, keys::loop_prefix(queue) + "*");
    long long entities = integer(must(redis, {"ZCARD", keys::loops(queue)}).get());
    must_query(pg, "BEGIN");
    try {
        audit(pg, actor, "loops.clear", queue,
              {{"queue", queue}, {"loops", entities}, {"counters", names.size()}});
        names.push_back(keys::loops(queue));
        names.push_back(keys::loop_keys(queue));
        std::vector<std::string_view> argv{"UNLINK"};
        argv.insert(argv.end(), names.begin(), names.end());
        must(redis, argv);
        must_query(pg, "COMMIT");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    Json j;
    j["queue"] = queue;
    j["cleared"] = entities;
    return j;
}

}  // namespace hookq::ops
