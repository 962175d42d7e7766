#include <gtest/gtest.h>

#include "shared/redis_keys.h"
#include "worker/config.h"
#include "worker/store/redis_cluster.h"

namespace hookq::cluster {
namespace {

// The slot function itself is tested in redis_slot_test.cc.
TEST(RedisCluster, EveryKeyOfAQueueSharesItsSlot) {
    int s = key_slot(keys::queue("github"));
    EXPECT_EQ(s, key_slot("github"));
    for (const std::string& k :
         {keys::retry("github"), keys::dedup_prefix("github") + "abc",
          keys::inflight("github", "w1"), keys::claiming("github", "w1"),
          keys::claim_seq("github", "w1"), keys::queue_heartbeat("github", "w1"),
          keys::workers("github"), keys::poison("github"), keys::parked("github", "d:443"),
          keys::parked_released("github", "d:443"), keys::parked_destinations("github"),
          keys::held("github"), keys::loops("github"), keys::sweep_lease("github"),
          keys::order("github", "r", "e")}) {
        EXPECT_EQ(key_slot(k), s) << k;
    }
}

TEST(RedisCluster, PatternSlot) {
    EXPECT_EQ(pattern_slot(keys::inflight_pattern("github")), key_slot("github"));
    EXPECT_EQ(pattern_slot(keys::loop_prefix("q1") + "*"), key_slot("q1"));
    // The claim stage's sweep pattern matches every queue: every master must be scanned.
    EXPECT_EQ(pattern_slot("hookq:{*}:[ic][nl]*"), -1);
    EXPECT_EQ(pattern_slot("hookq:*"), -1);
    EXPECT_EQ(pattern_slot("*{q}*"), -1);
    EXPECT_EQ(pattern_slot("hookq:{}:x"), -1);
}

TEST(RedisCluster, KeyIndex) {
    using V = std::vector<std::string_view>;
    EXPECT_EQ(key_index(V{"EVALSHA", "abc", "2", "k1", "k2", "a"}), 3u);
    EXPECT_EQ(key_index(V{"eval", "return 1", "0", "a"}), 0u);
    EXPECT_EQ(key_index(V{"BLMOVE", "src", "dst", "RIGHT", "LEFT", "0.5"}), 1u);
    EXPECT_EQ(key_index(V{"LREM", "k", "-1", "v"}), 1u);
    EXPECT_EQ(key_index(V{"PING"}), 0u);
    EXPECT_EQ(key_index(V{"TIME"}), 0u);
    EXPECT_EQ(key_index(V{"SCAN", "0", "MATCH", "x"}), 0u);
    EXPECT_EQ(key_index(V{"SCRIPT", "LOAD", "return 1"}), 0u);
    EXPECT_EQ(key_index(V{"MULTI"}), 0u);
    EXPECT_EQ(key_index(V{"MEMORY", "USAGE", "k"}), 2u);
}

TEST(RedisCluster, ParseRedirect) {
    auto m = parse_redirect("MOVED 3999 127.0.0.1:6381");
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->ask);
    EXPECT_EQ(m->slot, 3999);
    EXPECT_EQ(m->host, "127.0.0.1");
    EXPECT_EQ(m->port, 6381);
    auto a = parse_redirect("ASK 16383 [::1]:7002");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->ask);
    EXPECT_EQ(a->slot, 16383);
    EXPECT_EQ(a->host, "::1");
    EXPECT_EQ(a->port, 7002);
    auto named = parse_redirect("MOVED 1 redis-2.internal:6379");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->host, "redis-2.internal");
    for (const char* bad :
         {"MOVED", "MOVED 3999", "MOVED x 1.2.3.4:1", "MOVED 16384 h:1",
          "MOVED 1 h:", "MOVED 1 h:0", "MOVED 1 h:70000", "MOVED 1 nocolon", "ASK -1 h:1",
          "ERR MOVED 1 h:1", "TRYAGAIN Multiple keys", "CLUSTERDOWN The cluster is down"}) {
        EXPECT_FALSE(parse_redirect(bad)) << bad;
    }
}

const char* kBase = R"(
[postgres]
dsn = "dbname=hookq"

[[routes]]
name = "gh"
source = "github"
url = "http://app.internal/hooks/github"
)";

std::string error_of(const std::string& text) {
    try {
        load_config_string(text, "w.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(RedisClusterConfig, Seeds) {
    Config c = load_config_string(
        "[redis]\ncluster = [\"127.0.0.1:7000\", \"[::1]:7001\"]\n" + std::string(kBase), "w.toml");
    ASSERT_EQ(c.redis_cluster.size(), 2u);
    EXPECT_EQ(c.redis_cluster[0], (std::pair<std::string, int>{"127.0.0.1", 7000}));
    EXPECT_EQ(c.redis_cluster[1], (std::pair<std::string, int>{"::1", 7001}));
    EXPECT_TRUE(load_config_string(kBase, "w.toml").redis_cluster.empty());
}

TEST(RedisClusterConfig, Errors) {
    EXPECT_EQ(error_of("[redis]\naddress = \"127.0.0.1:6379\"\ncluster = [\"127.0.0.1:7000\"]\n" +
                       std::string(kBase)),
              "w.toml:3:11: [redis] 'cluster' and 'address' are mutually exclusive: 'address' is "
              "one Redis, 'cluster' the seed nodes of a Redis Cluster");
    EXPECT_EQ(error_of("[redis]\ncluster = [\"127.0.0.1:7000\"]\ndb = 2\n" + std::string(kBase)),
              "w.toml:3:6: [redis] 'db' must be 0 with 'cluster': Redis Cluster has database 0 "
              "only");
    EXPECT_EQ(error_of("[redis]\ncluster = []\n" + std::string(kBase)),
              "w.toml:2:11: [redis] 'cluster' must list at least one seed node (host:port)");
    EXPECT_EQ(error_of("[redis]\ncluster = [\"unix:/run/redis.sock\"]\n" + std::string(kBase)),
              "w.toml:2:11: [redis] 'cluster': 'unix:/run/redis.sock' must be host:port (port "
              "1-65535); a cluster is reached over TCP only");
    EXPECT_EQ(error_of("[redis]\ncluster = \"127.0.0.1:7000\"\n" + std::string(kBase)),
              "w.toml:2:11: 'cluster' must be an array of strings");
}

}  // namespace
}  // namespace hookq::cluster
