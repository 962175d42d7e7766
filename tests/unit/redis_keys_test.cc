#include "shared/redis_keys.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hookq {
namespace {

// The hash tag Redis Cluster uses: the text between the first '{' and the next '}', if non-empty.
std::string hash_tag(const std::string& key) {
    const auto open = key.find('{');
    if (open == std::string::npos) {
        return key;
    }
    const auto close = key.find('}', open + 1);
    if (close == std::string::npos || close == open + 1) {
        return key;
    }
    return key.substr(open + 1, close - open - 1);
}

TEST(RedisKeys, Names) {
    EXPECT_EQ(keys::queue("github"), "hookq:{github}:queue");
    EXPECT_EQ(keys::retry("github"), "hookq:{github}:retry");
    EXPECT_EQ(keys::dedup_prefix("github"), "hookq:{github}:dedup:");
    EXPECT_EQ(keys::inflight("github", "w1"), "hookq:{github}:inflight:w1");
    EXPECT_EQ(keys::inflight_pattern("github"), "hookq:{github}:inflight:*");
    EXPECT_EQ(keys::worker_heartbeat("w1"), "hookq:worker:w1");
    EXPECT_EQ(keys::breaker("https://app.internal:8443"),
              "hookq:breaker:https://app.internal:8443");
}

TEST(RedisKeys, EveryKeyOfAQueueSharesOneHashTag) {
    for (std::string q : {"github", "stripe", "a", "orders-eu.v2"}) {
        // A dedup key may contain braces itself; only the first {...} counts, and it is the
        // queue's.
        const std::vector<std::string> all = {
            keys::queue(q),
            keys::retry(q),
            keys::dedup_prefix(q) + "evt_123",
            keys::dedup_prefix(q) + "{evil}",
            keys::inflight(q, "host-1:4242"),
            keys::inflight(q, "{w}"),
        };
        for (const auto& k : all) {
            EXPECT_EQ(hash_tag(k), q) << k;
            EXPECT_EQ(k.rfind("hookq:{" + q + "}:", 0), 0u) << k;
        }
    }
}

TEST(RedisKeys, QueuesDoNotShareKeys) {
    EXPECT_NE(keys::queue("a"), keys::queue("b"));
    EXPECT_NE(keys::queue("a"), keys::retry("a"));
    // A worker's inflight list must not be matched by another queue's pattern.
    const std::string pat = keys::inflight_pattern("a");
    const std::string other = keys::inflight("ab", "w");
    EXPECT_NE(other.rfind(pat.substr(0, pat.size() - 1), 0), 0u);
}

TEST(RedisKeys, DedupKeyCap) {
    EXPECT_GE(keys::kMaxDedupKeyLength, 64u);  // a hex SHA-256 must fit under the cap
}

TEST(RedisKeysIngestScript, TouchesOnlyItsKeys) {
    const std::string_view s = scripts::kIngest;
    // Cluster safety: every key the script touches is passed in KEYS, never built inside Lua.
    EXPECT_NE(s.find("KEYS[1]"), std::string_view::npos);
    EXPECT_NE(s.find("KEYS[2]"), std::string_view::npos);
    // The loop part's keys (hookq_loop_limit): counter, loops, loop_keys, held; nothing past them.
    for (std::string_view k : {"KEYS[3]", "KEYS[4]", "KEYS[5]", "KEYS[6]", "#KEYS >= 6"}) {
        EXPECT_NE(s.find(k), std::string_view::npos) << k;
    }
    EXPECT_EQ(s.find("KEYS[7]"), std::string_view::npos);
    EXPECT_EQ(s.find("hookq:"), std::string_view::npos);
    EXPECT_EQ(s.find(".."), std::string_view::npos);  // no string concatenation of key names
    for (std::string_view arg : {"ARGV[1]", "ARGV[2]", "ARGV[3]", "ARGV[4]"}) {
        EXPECT_NE(s.find(arg), std::string_view::npos) << arg;
    }
}

TEST(RedisKeysIngestScript, OrderAndReplies) {
    const std::string_view s = scripts::kIngest;
    const auto llen = s.find("'LLEN'");
    const auto set = s.find("'SET'");
    const auto lpush = s.find("'LPUSH'");
    ASSERT_NE(llen, std::string_view::npos);
    ASSERT_NE(set, std::string_view::npos);
    ASSERT_NE(lpush, std::string_view::npos);
    // Depth check before the dedup key is written, so a refused request leaves no trace.
    EXPECT_LT(llen, set);
    EXPECT_LT(set, lpush);
    EXPECT_NE(s.find("'NX'"), std::string_view::npos);
    EXPECT_NE(s.find("'EX'"), std::string_view::npos);
    EXPECT_NE(s.find("return {-1}"), std::string_view::npos);
    EXPECT_NE(s.find("return {0,"), std::string_view::npos);
    EXPECT_NE(s.find("return {1,"), std::string_view::npos);
    // Scripts replicated by effects must not depend on time or randomness.
    for (std::string_view bad : {"TIME", "math.random", "RANDOMKEY", "SRANDMEMBER"}) {
        EXPECT_EQ(s.find(bad), std::string_view::npos) << bad;
    }
}

TEST(RedisKeysIngestScript, BatchRunsTheSameTextPerEnvelope) {
    const std::string_view batch = scripts::kIngestBatch;
    // The batch script embeds kIngest verbatim, called under pcall for envelopes with the loop
    // part; its inline path for the rest is held to kIngest's replies and writes by
    // tests/integration/test_ingest_batch_equivalence.py. It builds no key names either.
    EXPECT_NE(batch.find(scripts::kIngest), std::string_view::npos);
    EXPECT_EQ(batch.find("local function ingest(KEYS, ARGV, redis)"), 0u);
    EXPECT_NE(batch.find("pcall(ingest, keys, args, batched)"), std::string_view::npos);
    EXPECT_EQ(batch.find("hookq:"), std::string_view::npos);
    EXPECT_EQ(batch.find(" .. "), std::string_view::npos);
    EXPECT_EQ(batch.find('\0'), std::string_view::npos);
    EXPECT_TRUE(batch.ends_with("return out\n"));
}

}  // namespace
}  // namespace hookq
