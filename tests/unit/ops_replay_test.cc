// Replay's pure parts: the request body (shared by the API and hookqctl) and the SQL a stored
// selection turns into.
#include <functional>

#include <gtest/gtest.h>

#include "shared/redis_keys.h"
#include "shared/redis_slot.h"
#include "worker/ops/replay.h"

namespace hookq::ops {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1796040000000000;  // us
constexpr const char* kId = "01936f4e-8a2b-7c3d-9e4f-0123456789ab";

std::string bad_request(const json& body) {
    try {
        parse_replay_request(body, kNow);
    } catch (const Error& e) {
        return e.kind == Error::bad_request ? e.what() : "";
    }
    return "";
}

TEST(ReplayRequest, Defaults) {
    ReplayRequest r = parse_replay_request({{"source", "github"}}, kNow);
    EXPECT_EQ(r.selection.source, "github");
    EXPECT_FALSE(r.dry_run);
    EXPECT_FALSE(r.confirm);
    EXPECT_FALSE(r.all_routes);  // only the routes that did not succeed
    EXPECT_FALSE(r.limit);
    EXPECT_DOUBLE_EQ(r.rate, 50);
    EXPECT_FALSE(r.selection.to_us);  // bounded at creation, not here
}

TEST(ReplayRequest, SinceResolvesAgainstNow) {
    ReplayRequest r = parse_replay_request({{"since", "1h"}, {"status", "dead"}}, kNow);
    ASSERT_TRUE(r.selection.from_us);
    EXPECT_EQ(*r.selection.from_us, kNow - 3600LL * 1000000);
    EXPECT_EQ(r.selection.since, "1h");
}

TEST(ReplayRequest, SinceLongerAgoThanTheEpochIsEverything) {
    // 300000 years in microseconds overflows int64: once undefined, now the start of time.
    for (const char* since : {"300000y", "100y", "9300000000000000ms"}) {
        ReplayRequest r = parse_replay_request({{"since", since}, {"status", "dead"}}, kNow);
        ASSERT_TRUE(r.selection.from_us) << since;
        EXPECT_EQ(*r.selection.from_us, 0) << since;
    }
}

TEST(ReplayRequest, EveryField) {
    ReplayRequest r =
        parse_replay_request({{"request_ids", {"01936F4E-8A2B-7C3D-9E4F-0123456789AB"}},
                              {"route", "orders"},
                              {"status", "failed"},
                              {"event_type", "push"},
                              {"from", "2026-11-01"},
                              {"to", "2026-11-30T12:00:00Z"},
                              {"dry_run", true},
                              {"confirm", true},
                              {"limit", 10},
                              {"rate", 2.5},
                              {"routes", "all"}},
                             kNow);
    ASSERT_EQ(r.selection.request_ids.size(), 1u);
    EXPECT_EQ(r.selection.request_ids[0], kId);  // canonical text
    EXPECT_EQ(r.selection.route, "orders");
    EXPECT_EQ(r.selection.status, "failed");
    EXPECT_TRUE(r.dry_run && r.confirm && r.all_routes);
    EXPECT_EQ(*r.limit, 10);
    EXPECT_DOUBLE_EQ(r.rate, 2.5);
    EXPECT_LT(*r.selection.from_us, *r.selection.to_us);
}

TEST(ReplayRequest, BadInputNamesTheField) {
    EXPECT_NE(bad_request(json::object()).find("empty selection"), std::string::npos);
    EXPECT_NE(bad_request(json::array()).find("JSON object"), std::string::npos);
    EXPECT_NE(bad_request({{"status", "lost"}}).find("status"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"rate", 0}}).find("rate"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"rate", 1e9}}).find("rate"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"limit", 0}}).find("limit"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"limit", 1.5}}).find("limit"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"routes", "some"}}).find("routes"), std::string::npos);
    EXPECT_NE(bad_request({{"request_ids", {"x"}}}).find("request_ids"), std::string::npos);
    EXPECT_NE(bad_request({{"request_ids", "x"}}).find("request_ids"), std::string::npos);
    EXPECT_NE(bad_request({{"since", "soon"}}).find("since"), std::string::npos);
    EXPECT_NE(bad_request({{"since", "1h"}, {"from", "2026-11-01"}}).find("since"),
              std::string::npos);
    EXPECT_NE(bad_request({{"from", "2026-11-30"}, {"to", "2026-11-01"}}).find("before"),
              std::string::npos);
    EXPECT_NE(bad_request({{"source", ""}}).find("source"), std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"dry_run", "yes"}}).find("dry_run"),
              std::string::npos);
    EXPECT_NE(bad_request({{"source", "a"}, {"colour", 1}}).find("unknown field 'colour'"),
              std::string::npos);
    json ids = json::array();
    for (size_t i = 0; i <= kReplayMaxIds; ++i) {
        ids.push_back(kId);
    }
    EXPECT_NE(bad_request({{"request_ids", ids}}).find("at most"), std::string::npos);
}

TEST(ReplaySql, StatusIsTheRoutesWithARoute) {
    std::vector<std::optional<std::string>> p;
    json sel = {{"source", "github"}, {"route", "app"}, {"status", "dead"}, {"to_us", 5}};
    std::string w = replay_where(sel, p);
    EXPECT_NE(w.find("e.source = $1"), std::string::npos) << w;
    EXPECT_NE(w.find("r.status IN ('dead')"), std::string::npos) << w;
    EXPECT_EQ(w.find("e.status"), std::string::npos) << w;
    EXPECT_NE(w.find("e.received_at <"), std::string::npos) << w;
    // Parameters only: nothing of the selection is spliced into the SQL.
    EXPECT_EQ(w.find("github"), std::string::npos);
    EXPECT_EQ(w.find("'app'"), std::string::npos);

    std::vector<std::optional<std::string>> q;
    std::string without = replay_where(sel, q, false);
    EXPECT_EQ(without.find("r.status IN"), std::string::npos) << without;
}

TEST(ReplaySql, RoutesModes) {
    std::vector<std::optional<std::string>> p;
    EXPECT_EQ(replay_route_cond(json::object(), "failed", p), "r.status = 'dead'");
    EXPECT_EQ(replay_route_cond(json::object(), "all", p), "true");
    EXPECT_EQ(replay_route_cond({{"route", "x"}}, "all", p), "true AND r.route = $1");
    EXPECT_EQ(replay_status_cond({{"status", "failed"}}, p),
              "e.status IN ('dead', 'retrying', 'parked')");
    EXPECT_EQ(replay_status_cond(json::object(), p), "true");
}

// What makes a create the same replay as one still running (refused with 409).
TEST(ReplayFingerprint, SameSelectionAsAsked) {
    auto fp = [](const json& body, int64_t now = kNow, const Scope& scope = {}) {
        return replay_fingerprint(parse_replay_request(body, now), scope);
    };
    const json dead = {{"source", "github"}, {"status", "dead"}, {"since", "1h"}};
    // "since 1h" asked a minute later is the same selection; pace and limit do not count.
    EXPECT_EQ(fp(dead), fp(dead, kNow + 60 * 1000000LL));
    json paced = dead;
    paced["rate"] = 5;
    paced["limit"] = 10;
    paced["confirm"] = true;
    EXPECT_EQ(fp(dead), fp(paced));
    // Ids in another order, or repeated, are the same ids.
    std::string b = "01936f4e-8a2b-7c3d-9e4f-0123456789ac";
    EXPECT_EQ(fp({{"request_ids", {kId, b}}}), fp({{"request_ids", {b, kId, b}}}));

    // Anything that selects other webhooks, or other routes of them, is another replay.
    json other = dead;
    other["since"] = "2h";
    EXPECT_NE(fp(dead), fp(other));
    other = dead;
    other["status"] = "failed";
    EXPECT_NE(fp(dead), fp(other));
    other = dead;
    other["routes"] = "all";
    EXPECT_NE(fp(dead), fp(other));
    other = dead;
    other.erase("source");
    EXPECT_NE(fp(dead), fp(other));
    EXPECT_NE(fp({{"request_ids", {kId}}}), fp({{"request_ids", {kId, b}}}));
    // Explicit bounds are part of it; "from" as a time is not "since".
    EXPECT_NE(fp({{"source", "x"}, {"from", "2026-11-01"}}),
              fp({{"source", "x"}, {"from", "2026-11-02"}}));
    EXPECT_NE(fp({{"source", "x"}, {"to", "2026-11-01"}}), fp({{"source", "x"}}));
    // A source-limited token's job is not a full token's.
    Scope stripe;
    stripe.sources = std::vector<std::string>{"stripe"};
    EXPECT_NE(fp({{"source", "stripe"}}), fp({{"source", "stripe"}}, kNow, stripe));
}

// The runner's push script touches the job's set, the queue and the pending marker together, and
// the worker's ack clears the marker in the queue's pipeline: on Redis Cluster all in one slot.
TEST(ReplayKeys, PendingMarkerSharesTheQueuesSlot) {
    for (const char* q : {"github", "stripe", "a{b}c"}) {
        const int slot = cluster::key_slot(keys::queue(q));
        EXPECT_EQ(cluster::key_slot(keys::replay_pending(q, kId, "app")), slot) << q;
        EXPECT_EQ(cluster::key_slot(keys::replay_pending(q, kId, "-")), slot) << q;
        EXPECT_EQ(cluster::key_slot(std::string("hookq:{") + q + "}:replay:17"), slot) << q;
    }
    EXPECT_EQ(keys::replay_pending("github", kId, "app"),
              std::string("hookq:{github}:replay_pending:") + kId + "/app");
}

}  // namespace
}  // namespace hookq::ops
