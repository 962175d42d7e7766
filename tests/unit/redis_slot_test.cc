#include "shared/redis_slot.h"

#include <gtest/gtest.h>

namespace hookq::cluster {
namespace {

// Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
TEST(RedisSlot, KnownSlots) {
    EXPECT_EQ(crc16("123456789"), 0x31C3);
    EXPECT_EQ(key_slot("123456789"), 12739);
    EXPECT_EQ(key_slot("foo"), 12182);
    EXPECT_EQ(key_slot("bar"), 5061);
    EXPECT_EQ(key_slot(""), 0);
}

TEST(RedisSlot, HashTag) {
    EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
    EXPECT_EQ(key_slot("{user1000}.a"), key_slot("{user1000}.b"));
    EXPECT_EQ(key_slot("{user1000}.a"), key_slot("user1000"));
    // Only the first tag counts, and an empty one is no tag: the whole key is hashed.
    EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
    EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") & 16383);
    EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    EXPECT_EQ(key_slot("foo{bar"), crc16("foo{bar") & 16383);
}

// That every key of a queue shares its slot: redis_cluster_test.cc.

}  // namespace
}  // namespace hookq::cluster
