// The statistics rollups' histogram buckets (C++ and SQL sides), the percentile arithmetic read
// back from them, and the rollup rows the recorder's batch carries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "worker/ops/stats.h"
#include "worker/store/migrations.h"
#include "worker/store/sql.h"

namespace hookq {
namespace {

JobPtr job_for(Envelope e, std::string& storage) {
    storage = e.encode();
    auto j = std::make_shared<Job>();
    j->raw = storage;
    EXPECT_EQ(decode_envelope(j->raw, j->env), DecodeError::ok);
    j->decoded = true;
    return j;
}

Envelope sample(uint8_t n, const std::string& source) {
    Envelope e;
    e.request_id = *Uuid::parse("018f3c2a-7b1e-7000-8000-000000000001");
    e.request_id.bytes[15] = n;
    e.received_at_us = 1714564800000000;  // 2024-05-01 12:00:00 UTC
    e.source = source;
    e.method = "POST";
    e.body = "{}";
    return e;
}

TEST(OpsStats, BoundsAreTheMigrationsAndFourPerDoubling) {
    // The SQL hookq_stats_bucket() reads the same table: the migration's literal is parsed here.
    const Migration* m = nullptr;
    for (const auto& x : embedded_migrations()) {
        if (x.name.starts_with("0004_")) {
            m = &x;
        }
    }
    ASSERT_NE(m, nullptr);
    size_t at = m->sql.find("hookq_stats_bounds() RETURNS");
    ASSERT_NE(at, std::string::npos);
    size_t open = m->sql.find("'{", at), close = m->sql.find("}'", at);
    ASSERT_LT(open, close);
    std::vector<uint64_t> sql;
    std::string lit = m->sql.substr(open + 2, close - open - 2);
    for (size_t p = 0; p < lit.size();) {
        size_t q = lit.find(',', p);
        std::string item = lit.substr(p, q == std::string::npos ? std::string::npos : q - p);
        item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
        sql.push_back(std::stoull(item));
        p = q == std::string::npos ? lit.size() : q + 1;
    }
    ASSERT_EQ(sql.size(), std::size(kStatsBounds));
    for (size_t j = 0; j < sql.size(); ++j) {
        EXPECT_EQ(sql[j], kStatsBounds[j]) << j;
        EXPECT_EQ(kStatsBounds[j], static_cast<uint64_t>(std::llround(100 * std::exp2(j / 4.0))))
            << j;
    }
    // 0.1 ms to past two weeks, for end-to-end latencies of webhooks retried for days.
    EXPECT_EQ(kStatsBounds[0], 100u);
    EXPECT_GT(kStatsBounds[std::size(kStatsBounds) - 1], 14 * 86400 * 1000000ULL);
}

TEST(OpsStats, BucketIsTheNumberOfBoundsAtOrBelow) {
    // width_bucket(us, bounds) in SQL: the same rule, boundaries included.
    EXPECT_EQ(stats_bucket(0), 0u);
    EXPECT_EQ(stats_bucket(99), 0u);
    EXPECT_EQ(stats_bucket(100), 1u);
    EXPECT_EQ(stats_bucket(118), 1u);
    EXPECT_EQ(stats_bucket(119), 2u);
    EXPECT_EQ(stats_bucket(1000), 14u);  // 1 ms: 951 <= 1000 < 1131
    EXPECT_EQ(stats_bucket(UINT64_MAX), kStatsBuckets - 1);
    for (size_t j = 0; j < std::size(kStatsBounds); ++j) {
        EXPECT_EQ(stats_bucket(kStatsBounds[j]), j + 1);
        EXPECT_EQ(stats_bucket(kStatsBounds[j] - 1), j);
    }
}

TEST(OpsStats, PercentilesWithinTenPercentOfTheSamples) {
    std::mt19937_64 rng(42);
    // Attempt durations (a few ms, a tail of seconds) and end-to-end latencies (up to days).
    for (auto [mu, sigma] : {std::pair{1.5, 1.0}, {8.0, 3.0}}) {
        std::lognormal_distribution<double> dist(mu, sigma);
        std::vector<double> ms;
        ops::Histogram h(kStatsBuckets);
        for (int i = 0; i < 20000; ++i) {
            double v = std::max(0.1, std::min(dist(rng), 10.0 * 86400 * 1000));
            auto us = static_cast<uint64_t>(v * 1000);
            ms.push_back(static_cast<double>(us) / 1000.0);
            ++h[stats_bucket(us)];
        }
        std::sort(ms.begin(), ms.end());
        for (double p : {0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
            double exact = ms[static_cast<size_t>(std::ceil(p * ms.size())) - 1];
            auto got = ops::percentile_ms(h, p);
            ASSERT_TRUE(got);
            EXPECT_NEAR(*got / exact, 1.0, 0.091) << "p" << p << " exact " << exact;
        }
    }
}

TEST(OpsStats, PercentileEdges) {
    ops::Histogram h(kStatsBuckets);
    EXPECT_FALSE(ops::percentile_ms(h, 0.5));  // no samples: null in the JSON
    ++h[stats_bucket(5000)];                   // one sample of 5 ms
    for (double p : {0.01, 0.5, 1.0}) {
        EXPECT_NEAR(*ops::percentile_ms(h, p), 5.0, 0.45);
    }
    // 99 fast, 1 slow: p99 is still fast (nearest rank), the maximum is the slow one.
    ops::Histogram g(kStatsBuckets);
    g[stats_bucket(1000)] = 99;
    g[stats_bucket(2000000)] = 1;
    EXPECT_NEAR(*ops::percentile_ms(g, 0.99), 1.0, 0.1);
    EXPECT_NEAR(*ops::percentile_ms(g, 1.0), 2000.0, 180.0);
    EXPECT_DOUBLE_EQ(ops::bucket_value_ms(0), 0.05);
}

TEST(OpsStats, HistogramTextAddsElementWise) {
    ops::Histogram h(kStatsBuckets);
    EXPECT_TRUE(ops::add_histogram(h, "{}"));
    EXPECT_TRUE(ops::add_histogram(h, "{1,0,2}"));
    EXPECT_TRUE(ops::add_histogram(h, "{0,5}"));
    EXPECT_EQ(h[0], 1u);
    EXPECT_EQ(h[1], 5u);
    EXPECT_EQ(h[2], 2u);
    // Zeros at either end left out: the lower bound says where it starts.
    EXPECT_TRUE(ops::add_histogram(h, "[3:4]={7,8}"));
    EXPECT_EQ(h[1], 5u);
    EXPECT_EQ(h[2], 9u);
    EXPECT_EQ(h[3], 8u);
    EXPECT_TRUE(ops::add_histogram(h, "[137:137]={1}"));
    EXPECT_EQ(h[136], 1u);
    for (const char* bad : {"", "1,2", "{1,,2}", "{a}", "{1,2", "[0:1]={1,2}", "[137:138]={1,2}",
                            "[x:2]={1}", "[3:4]{1,2}"}) {
        EXPECT_FALSE(ops::add_histogram(h, bad)) << bad;
    }
    std::string too_long = "{";
    for (size_t i = 0; i <= kStatsBuckets; ++i) {
        too_long += i ? ",1" : "1";
    }
    EXPECT_FALSE(ops::add_histogram(h, too_long + "}"));
    EXPECT_EQ(h[0], 1u);  // a refused text adds nothing
}

TEST(OpsStats, QueryParametersAreChecked) {
    auto q = ops::parse_stats_query({});
    EXPECT_EQ(q.window, "1h");
    EXPECT_EQ(q.by, "route");
    q = ops::parse_stats_query({{"window", "7d"}, {"by", "source"}, {"source", "s"}});
    EXPECT_EQ(q.window, "7d");
    EXPECT_EQ(q.by, "source");
    EXPECT_EQ(q.source, "s");
    EXPECT_THROW(ops::parse_stats_query({{"window", "2h"}}), ops::Error);
    EXPECT_THROW(ops::parse_stats_query({{"by", "worker"}}), ops::Error);
    EXPECT_THROW(ops::parse_stats_query({{"limit", "3"}}), ops::Error);
}

TEST(OpsStats, TimeoutsFromTheTransportError) {
    AttemptRow a;
    a.error = "Operation timed out after 1000 milliseconds with 0 bytes received";
    EXPECT_TRUE(attempt_timed_out(a));
    a.error = "Timeout was reached";
    EXPECT_TRUE(attempt_timed_out(a));
    a.error = "Connection timed out after 5001 milliseconds";
    EXPECT_TRUE(attempt_timed_out(a));
    a.error = "Failed to connect to 127.0.0.1 port 9: Connection refused";
    EXPECT_FALSE(attempt_timed_out(a));
    a.http_status = 504;  // the destination answered, even if about a timeout of its own
    a.error = "gateway timed out";
    EXPECT_FALSE(attempt_timed_out(a));
}

TEST(OpsStats, BatchAddsIntoThisWorkersMinuteAndHourRows) {
    constexpr uint64_t t0 = 1714564800000000;  // 12:00:00
    std::string s1, s2;
    auto a = job_for(sample(1, "github"), s1);
    auto b = job_for(sample(2, "github"), s2);
    // 12:00:10, 12:00:40 and 12:01:05: two minute rows, one hour row.
    a->attempts.push_back({"app", "http://x/", 1, t0 + 10000000, 1000000, 0, OutcomeKind::retry,
                           "Operation timed out after 1000 milliseconds with 0 bytes received"});
    a->attempts.push_back(
        {"app", "http://x/", 2, t0 + 40000000, 5000, 200, OutcomeKind::delivered, ""});
    b->attempts.push_back(
        {"app", "http://x/", 1, t0 + 65000000, 2000, 500, OutcomeKind::dead, "HTTP 500"});
    auto st = build_batch({a.get(), b.get()}, {}, "w1");
    ASSERT_GE(st.size(), 2u);
    // Last in the batch, minute then hour.
    EXPECT_TRUE(st[st.size() - 2].sql.starts_with("INSERT INTO delivery_stats_minute"));
    EXPECT_TRUE(st.back().sql.starts_with("INSERT INTO delivery_stats_hour"));
    const Statement& m = st[st.size() - 2];
    const Statement& h = st.back();
    ASSERT_EQ(m.rows, 2u);
    ASSERT_EQ(m.params.size(), 13u);  // one binary array per column
    auto mc = [&](size_t c) { return array_elements(*m.params.at(c)); };
    ASSERT_EQ(h.rows, 1u);
    EXPECT_NE(m.sql.find("ON CONFLICT (bucket, source, route, worker_id) DO UPDATE"),
              std::string::npos);
    EXPECT_NE(m.sql.find("hookq_hist_add(t.duration_hist, EXCLUDED.duration_hist)"),
              std::string::npos);
    // bucket, source, route, worker, attempts, delivered, retried, dead, parked, timeouts, sum
    std::vector<std::string> first{"2024-05-01 12:00:00.000000+00",
                                   "github",
                                   "app",
                                   "w1",
                                   "2",
                                   "1",
                                   "1",
                                   "0",
                                   "0",
                                   "1",
                                   "1005000"};
    for (size_t i = 0; i < first.size(); ++i) {
        EXPECT_EQ(mc(i)[0], first[i]) << i;
    }
    // The delivered attempt ended 40.005 s after the webhook was received.
    ops::Histogram dur(kStatsBuckets), e2e(kStatsBuckets);
    ASSERT_TRUE(ops::add_histogram(dur, *mc(11)[0]));
    ASSERT_TRUE(ops::add_histogram(e2e, *mc(12)[0]));
    EXPECT_EQ(dur[stats_bucket(1000000)], 1u);
    EXPECT_EQ(dur[stats_bucket(5000)], 1u);
    EXPECT_EQ(e2e[stats_bucket(40005000)], 1u);
    // No zeros at either end: the 5 ms bucket first, the 1 s bucket last.
    std::string want = "[" + std::to_string(stats_bucket(5000) + 1) + ":" +
                       std::to_string(stats_bucket(1000000) + 1) + "]={1,";
    for (size_t k = stats_bucket(5000) + 1; k < stats_bucket(1000000); ++k) {
        want += "0,";
    }
    EXPECT_EQ(*mc(11)[0], want + "1}");
    EXPECT_EQ(mc(0)[1], "2024-05-01 12:01:00.000000+00");
    EXPECT_EQ(mc(7)[1], "1");    // dead
    EXPECT_EQ(mc(12)[1], "{}");  // nothing delivered in that minute
    std::vector<std::string> hour{"2024-05-01 12:00:00.000000+00",
                                  "github",
                                  "app",
                                  "w1",
                                  "3",
                                  "1",
                                  "1",
                                  "1",
                                  "0",
                                  "1",
                                  "1007000"};
    for (size_t i = 0; i < hour.size(); ++i) {
        EXPECT_EQ(array_elements(*h.params[i])[0], hour[i]) << i;
    }
    // No attempts (a claim that only parked behind an open breaker): counted as parked, in the
    // minute it was decided, with no attempt and empty histograms.
    std::string s3;
    auto c = job_for(sample(3, "github"), s3);
    c->outcomes.push_back(
        {"app", OutcomeKind::parked, 0, 1, 5, 1714564800000000 + 90000000, "breaker open", false});
    bool found = false;
    for (const auto& x : build_batch({c.get()}, {}, "w1")) {
        if (x.sql.find("INSERT INTO delivery_stats_minute") == std::string::npos) {
            continue;
        }
        found = true;
        ASSERT_GE(x.params.size(), 10u);
        EXPECT_EQ(array_elements(*x.params[0])[0], "2024-05-01 12:01:00.000000+00");
        EXPECT_EQ(array_elements(*x.params[2])[0], "app");
        EXPECT_EQ(array_elements(*x.params[4])[0], "0");  // attempts
        EXPECT_EQ(array_elements(*x.params[8])[0], "1");  // parked
    }
    EXPECT_TRUE(found);
}

TEST(OpsStats, RollupRowsSortedAndSplitPastTheByteLimit) {
    std::vector<std::string> storage(300);
    std::vector<JobPtr> jobs;
    std::vector<const Job*> jp;
    for (size_t i = 0; i < storage.size(); ++i) {
        auto j = job_for(sample(static_cast<uint8_t>(i), i % 2 ? "b" : "a"), storage[i]);
        // 300 distinct minutes, in reverse order.
        j->attempts.push_back({"r", "http://x/", 1, 1714564800000000 + (300 - i) * 60000000, 10,
                               200, OutcomeKind::delivered, ""});
        jobs.push_back(j);
        jp.push_back(j.get());
    }
    size_t rows = 0;
    std::string last;
    size_t stmts = 0;
    for (const auto& s : build_batch(jp, {}, "w1", 1300)) {
        if (!s.sql.starts_with("INSERT INTO delivery_stats_minute")) {
            continue;
        }
        ++stmts;
        auto bucket = array_elements(*s.params[0]), source = array_elements(*s.params[1]);
        ASSERT_EQ(bucket.size(), s.rows);
        for (size_t r = 0; r < s.rows; ++r) {
            std::string key = *bucket[r] + *source[r];
            EXPECT_LT(last, key);  // one order for every batch: ascending key
            last = key;
        }
        rows += s.rows;
    }
    EXPECT_EQ(rows, 300u);
    EXPECT_GT(stmts, 1u);
}

}  // namespace
}  // namespace hookq
