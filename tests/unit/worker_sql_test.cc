#include <gtest/gtest.h>

#include <map>

#include "worker/pipeline/router.h"
#include "worker/store/sql.h"

namespace hookq {
namespace {

JobPtr job_for(const Envelope& e, std::string& storage) {
    storage = e.encode();
    auto j = std::make_shared<Job>();
    j->raw = storage;
    EXPECT_EQ(decode_envelope(j->raw, j->env), DecodeError::ok);
    j->decoded = true;
    return j;
}

Envelope sample() {
    Envelope e;
    e.request_id = *Uuid::parse("018f3c2a-7b1e-7000-8000-000000000001");
    e.received_at_us = 1714564800123456;  // 2024-05-01 12:00:00.123456 UTC
    e.source = "github";
    e.dedup_key = "d1";
    e.method = "POST";
    e.target = "/hooks/github";
    e.remote_addr = "203.0.113.7";
    e.headers = {{"X-GitHub-Event", "push"}, {"Accept", "a"}, {"accept", "b"}};
    e.body = std::string("{\"x\":1}\0\xff", 9);
    return e;
}

TEST(WorkerSql, SanitizeText) {
    EXPECT_EQ(sanitize_text("plain"), "plain");
    EXPECT_EQ(sanitize_text(std::string("a\0b", 3)), "ab");
    EXPECT_EQ(sanitize_text("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(sanitize_text("bad\xff!"), "bad\xEF\xBF\xBD!");
    EXPECT_EQ(sanitize_text("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
    EXPECT_EQ(sanitize_text("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(WorkerSql, TimestampExactToTheMicrosecond) {
    EXPECT_EQ(format_timestamp_us(1714564800123456), "2024-05-01 12:00:00.123456+00");
    EXPECT_EQ(format_timestamp_us(0), "1970-01-01 00:00:00.000000+00");
}

TEST(WorkerSql, HeadersJsonJoinsRepeats) {
    std::string s;
    auto j = job_for(sample(), s);
    EXPECT_EQ(headers_json(j->env), R"({"X-GitHub-Event":"push","Accept":"a","accept":"b"})");
}

size_t count_placeholders(const std::string& sql) {
    size_t n = 0;
    for (size_t i = 0; i + 1 < sql.size(); ++i) {
        n += sql[i] == '$' && sql[i + 1] >= '0' && sql[i + 1] <= '9' &&
             (i == 0 || sql[i - 1] < '0' || sql[i - 1] > '9');
    }
    return n;
}

const Statement* find_stmt(const std::vector<Statement>& st, std::string_view prefix) {
    for (const auto& s : st) {
        if (s.sql.starts_with(prefix)) {
            return &s;
        }
    }
    return nullptr;
}

// Column c of a statement: its binary array's elements, as text.
std::vector<std::optional<std::string>> col(const Statement& s, size_t c) {
    EXPECT_LT(c, s.params.size());
    EXPECT_EQ(s.formats.at(c), 1);
    return array_elements(s.params.at(c).value());
}

TEST(WorkerSql, BinaryArrayLayout) {
    // array_recv's format, byte for byte: dimensions, has-nulls flag, element type oid, length,
    // lower bound, then (length, value) per element, -1 for NULL; big-endian throughout.
    Transition t{"d", "closed", "open", 946684800000001, ""};  // 2000-01-01 00:00:00.000001 UTC
    auto st = build_batch({}, {&t}, "w");
    ASSERT_EQ(st.size(), 1u);
    using namespace std::string_literals;
    EXPECT_EQ(*st[0].params[0],
              "\0\0\0\1\0\0\0\0\0\0\x04\xa0\0\0\0\1\0\0\0\1\0\0\0\x08\0\0\0\0\0\0\0\1"s);
    EXPECT_EQ(*st[0].params[5], "\0\0\0\1\0\0\0\1\0\0\0\x19\0\0\0\1\0\0\0\1\xff\xff\xff\xff"s);
    EXPECT_EQ(col(st[0], 0)[0], "2000-01-01 00:00:00.000001+00");
    EXPECT_EQ(col(st[0], 5)[0], std::nullopt);
}

TEST(WorkerSql, BatchUpsertsEventsOncePerId) {
    std::string s1, s2;
    auto a = job_for(sample(), s1);
    auto b = job_for(sample(), s2);  // the same webhook twice (redelivery)
    a->outcomes.push_back({"r", OutcomeKind::retry, 1, 2, 5, 10, "HTTP 500", false});
    a->attempts.push_back({"r", "http://x/", 1, 10, 1500, 500, OutcomeKind::retry, ""});
    b->outcomes.push_back({"r", OutcomeKind::delivered, 2, 0, 0, 1714564801000000, "", false});
    b->attempts.push_back({"r", "http://x/", 2, 20, 900, 200, OutcomeKind::delivered, ""});
    auto st = build_batch({a.get(), b.get()}, {}, "w1");
    ASSERT_EQ(st.size(), 6u);  // + the minute and hour statistics rollups, last
    for (const auto& x : st) {
        EXPECT_TRUE(x.prepare) << x.sql;
    }
    EXPECT_EQ(st[0].rows, 1u);
    EXPECT_NE(st[0].sql.find("ON CONFLICT (received_at, id) DO UPDATE"), std::string::npos);
    EXPECT_EQ(st[0].params.size(), 14u);
    EXPECT_EQ(col(st[0], 0),
              (std::vector<std::optional<std::string>>{"018f3c2a-7b1e-7000-8000-000000000001"}));
    EXPECT_EQ(col(st[0], 1)[0], "2024-05-01 12:00:00.123456+00");
    EXPECT_EQ(col(st[0], 8)[0], R"({"X-GitHub-Event":"push","Accept":"a","accept":"b"})");
    EXPECT_EQ(col(st[0], 9)[0], std::string("{\"x\":1}\0\xff", 9));
    EXPECT_EQ(col(st[0], 10)[0], "delivered");
    EXPECT_EQ(col(st[0], 11)[0], "2");
    EXPECT_EQ(col(st[0], 12)[0], "2024-05-01 12:00:01.000000+00");
    EXPECT_NE(st[1].sql.find("INSERT INTO webhook_routes"), std::string::npos);
    EXPECT_EQ(st[1].rows, 1u);
    EXPECT_EQ(col(st[1], 3)[0], "delivered");
    EXPECT_NE(st[2].sql.find("UPDATE webhook_events"), std::string::npos);
    EXPECT_EQ(col(st[2], 0)[0], "2024-05-01 12:00:00.123456+00");
    EXPECT_EQ(col(st[2], 1)[0], "018f3c2a-7b1e-7000-8000-000000000001");
    EXPECT_EQ(st[3].rows, 2u);
    EXPECT_EQ(st[3].params.size(), 10u);
    EXPECT_EQ(count_placeholders(st[3].sql), 10u);
    EXPECT_EQ(col(st[3], 6), (std::vector<std::optional<std::string>>{"500", "200"}));
    EXPECT_EQ(col(st[3], 5), (std::vector<std::optional<std::string>>{"1.5", "0.9"}));
}

TEST(WorkerSql, OneStatementTextPerTableWhateverTheRowCount) {
    // 500 webhooks x 14 attempts: 7,000 attempt rows. One statement per table, with the same text
    // and parameter count as for one row (prepared once per connection); past max_bytes a table
    // goes on in more statements of that same text.
    auto make = [](size_t n, std::vector<std::string>& storage, std::vector<JobPtr>& jobs) {
        storage.resize(n);
        std::vector<const Job*> jp;
        for (size_t i = 0; i < n; ++i) {
            Envelope e = sample();
            e.request_id.bytes[15] = static_cast<uint8_t>(i);
            e.request_id.bytes[14] = static_cast<uint8_t>(i >> 8);
            auto j = job_for(e, storage[i]);
            for (uint32_t a = 1; a <= 14; ++a) {
                j->attempts.push_back({"r", "http://x/", a, a, 1000, 500, OutcomeKind::retry, "x"});
            }
            j->outcomes.push_back({"r", OutcomeKind::dead, 14, 0, 0, 10, "HTTP 500", false});
            jobs.push_back(j);
            jp.push_back(j.get());
        }
        return jp;
    };
    std::vector<std::string> s1, s500;
    std::vector<JobPtr> j1, j500;
    std::map<std::string, std::string> text_of_one;
    for (const auto& s : build_batch(make(1, s1, j1), {}, "w1")) {
        text_of_one[s.sql.substr(0, s.sql.find('('))] = s.sql;
    }
    auto jp = make(500, s500, j500);
    std::map<std::string, size_t> rows, stmts;
    for (size_t limit : {kMaxStatementBytes, size_t{4096}}) {
        rows.clear();
        stmts.clear();
        for (const auto& s : build_batch(jp, {}, "w1", limit)) {
            std::string table = s.sql.substr(0, s.sql.find('('));
            EXPECT_EQ(s.sql, text_of_one[table]);
            EXPECT_EQ(s.params.size(), s.formats.size());
            EXPECT_EQ(count_placeholders(s.sql), s.params.size());
            for (size_t c = 0; c < s.params.size(); ++c) {
                EXPECT_EQ(col(s, c).size(), s.rows) << table << c;
            }
            rows[table] += s.rows;
            ++stmts[table];
        }
        EXPECT_EQ(rows["INSERT INTO delivery_attempts "], 7000u) << limit;
        EXPECT_EQ(rows["INSERT INTO webhook_events "], 500u) << limit;
        EXPECT_EQ(rows["INSERT INTO webhook_routes "], 500u) << limit;
        EXPECT_EQ(rows["INSERT INTO dead_letters "], 500u) << limit;
        if (limit == kMaxStatementBytes) {
            for (const auto& [table, n] : stmts) {
                EXPECT_EQ(n, 1u) << table;
            }
        } else {
            EXPECT_GT(stmts["INSERT INTO delivery_attempts "], 1u);
        }
    }
}

TEST(WorkerSql, RetryClaimNeverRewritesBodyOrHeaders) {
    std::string s;
    auto j = job_for(sample(), s);
    j->retry = RetryRecord{"r", 2, 5, s};
    j->outcomes.push_back({"r", OutcomeKind::retry, 2, 3, 5, 10, "HTTP 503", false});
    j->attempts.push_back({"r", "http://x/", 2, 10, 1500, 503, OutcomeKind::retry, ""});
    auto st = build_batch({j.get()}, {}, "w1");
    const Statement* ev = find_stmt(st, "UPDATE webhook_events AS e SET status = v.status");
    ASSERT_NE(ev, nullptr);
    EXPECT_EQ(find_stmt(st, "INSERT INTO webhook_events"), nullptr);
    for (const auto& x : st) {
        EXPECT_EQ(x.sql.find("body"), std::string::npos) << x.sql;
        EXPECT_EQ(x.sql.find("headers"), std::string::npos) << x.sql;
        for (const auto& p : x.params) {
            EXPECT_EQ(p->find(std::string(j->env.body)), std::string::npos);
        }
    }
    EXPECT_EQ(ev->params.size(), 7u);
    // The recorder inserts the rows this UPDATE does not find (it returns the ids it found).
    EXPECT_NE(ev->sql.find("RETURNING e.id"), std::string::npos);
    ASSERT_EQ(ev->jobs.size(), 1u);
    EXPECT_EQ(ev->jobs[0], j.get());
    auto full = event_inserts(ev->jobs);
    ASSERT_EQ(full.size(), 1u);
    EXPECT_EQ(col(full[0], 9)[0], std::string(j->env.body));
    // And the first claim's upsert of an existing row leaves them alone too.
    std::string s2;
    auto first = job_for(sample(), s2);
    first->outcomes.push_back({"r", OutcomeKind::retry, 1, 2, 5, 10, "HTTP 500", false});
    auto st2 = build_batch({first.get()}, {}, "w1");
    const Statement* ins = find_stmt(st2, "INSERT INTO webhook_events");
    ASSERT_NE(ins, nullptr);
    std::string set = ins->sql.substr(ins->sql.find("DO UPDATE SET"));
    EXPECT_EQ(set.find("body"), std::string::npos);
    EXPECT_EQ(set.find("headers"), std::string::npos);
}

TEST(WorkerSql, ParkedAgainWritesNothing) {
    std::string s;
    auto j = job_for(sample(), s);
    j->retry = RetryRecord{"r", 2, 5, s};
    j->outcomes.push_back({"r", OutcomeKind::parked, 1, 2, 5, 10, "breaker open", false});
    EXPECT_TRUE(build_batch({j.get()}, {}, "w1").empty());
    // The first claim that parks is written: the webhook has no row yet.
    std::string s2;
    auto first = job_for(sample(), s2);
    first->outcomes.push_back({"r", OutcomeKind::parked, 0, 1, 5, 10, "breaker open", false});
    EXPECT_FALSE(build_batch({first.get()}, {}, "w1").empty());
}

TEST(WorkerSql, StatusDerivedFromEveryRoute) {
    std::string s;
    auto j = job_for(sample(), s);
    j->outcomes.push_back({"a", OutcomeKind::retry, 1, 2, 5, 10, "HTTP 500", false});
    j->outcomes.push_back({"b", OutcomeKind::delivered, 1, 0, 0, 10, "", false});
    auto st = build_batch({j.get()}, {}, "w1");
    const Statement* routes = find_stmt(st, "INSERT INTO webhook_routes");
    ASSERT_NE(routes, nullptr);
    EXPECT_EQ(routes->rows, 2u);
    EXPECT_EQ(col(*routes, 3), (std::vector<std::optional<std::string>>{"retrying", "delivered"}));
    // The derivation runs after the route rows, in the same batch.
    size_t ri = static_cast<size_t>(routes - st.data());
    const Statement* derive = find_stmt(st, "UPDATE webhook_events AS e SET status = d.status");
    ASSERT_NE(derive, nullptr);
    EXPECT_GT(static_cast<size_t>(derive - st.data()), ri);
    EXPECT_NE(derive->sql.find("bool_and(status IN ('delivered', 'split', 'coalesced'))"),
              std::string::npos);
}

TEST(WorkerSql, CoalescedRowOnceWhenTheHolderIsTwiceInTheBatch) {
    // The original and a reaped copy of one holder, both let on again by ordering's enter step
    // with the same merged list, finishing in one batch: ON CONFLICT DO UPDATE may not touch the
    // merged update's row twice in one statement.
    std::string s1, s2;
    auto a = job_for(sample(), s1);
    auto b = job_for(sample(), s2);
    for (Job* j : {a.get(), b.get()}) {
        j->outcomes.push_back({"r", OutcomeKind::delivered, 1, 0, 0, 10, "", false});
        j->holds.push_back(
            {"r", "e1", {{"018f3c2a-7b1e-7000-8000-000000000002", 1714564800000001}}});
    }
    auto st = build_batch({a.get(), b.get()}, {}, "w1");
    const Statement* coalesced = nullptr;
    for (const auto& x : st) {
        if (x.sql.find("THEN 'delivered' ELSE EXCLUDED.status") != std::string::npos) {
            coalesced = &x;
        }
    }
    ASSERT_NE(coalesced, nullptr);
    EXPECT_EQ(coalesced->rows, 1u);
    EXPECT_EQ(col(*coalesced, 0),
              (std::vector<std::optional<std::string>>{"018f3c2a-7b1e-7000-8000-000000000002"}));
    EXPECT_EQ(col(*coalesced, 5), (std::vector<std::optional<std::string>>{
                                      "merged into 018f3c2a-7b1e-7000-8000-000000000001"}));
}

TEST(WorkerSql, PoisonTraceIsShortAndNamesNoRoute) {
    std::string s;
    Envelope e = sample();
    std::string long_source(5000, 'x');
    e.source = long_source;
    auto j = job_for(e, s);
    Statement t = poison_trace(*j, "value too long");
    EXPECT_EQ(t.params[2]->size(), 200u);
    EXPECT_EQ(t.params[3], std::string(kPoisonRoute));
    EXPECT_EQ(t.params[4], "poison: value too long");
}

TEST(WorkerSql, DeadLettersFlagsAndTransitions) {
    std::string s;
    auto a = job_for(sample(), s);
    a->outcomes.push_back({"r", OutcomeKind::dead, 1, 0, 0, 10, "HTTP 410", true});
    Transition t{"http://x:80", "closed", "open", 10, "5 failures"};
    auto st = build_batch({a.get()}, {&t}, "w1");
    ASSERT_EQ(st.size(), 6u);
    EXPECT_EQ(event_status(*a), "dead");
    EXPECT_NE(st[3].sql.find("INSERT INTO dead_letters"), std::string::npos);
    EXPECT_NE(st[4].sql.find("INSERT INTO route_flags"), std::string::npos);
    EXPECT_NE(st[5].sql.find("INSERT INTO breaker_transitions"), std::string::npos);
    EXPECT_EQ(col(st[5], 2)[0], "closed");
}

TEST(WorkerRouter, JsonField) {
    EXPECT_EQ(json_field(R"({"type":"invoice.paid"})", "type"), "invoice.paid");
    EXPECT_EQ(json_field(R"({"data":{"object":{"id":7}}})", "data.object.id"), "7");
    EXPECT_EQ(json_field(R"({"events":[{"x":1},{"action":"CREATE"}]})", "events[].action"),
              "CREATE");
    EXPECT_EQ(json_field("not json", "type"), "");
    EXPECT_EQ(json_field(R"({"type":{"nested":1}})", "type"), "");
}

TEST(WorkerRouter, MatchBySourceAndEvent) {
    Config c;
    c.routes.resize(3);
    c.routes[0].name = "push";
    c.routes[0].source = "github";
    c.routes[0].events = {"push"};
    c.routes[1].name = "all";
    c.routes[1].source = "github";
    c.routes[2].name = "stripe";
    c.routes[2].source = "stripe";
    Router r(c);
    EXPECT_EQ(r.match("github", "push").size(), 2u);
    EXPECT_EQ(r.match("github", "issues").size(), 1u);
    EXPECT_EQ(r.match("gitlab", "push").size(), 0u);
    EXPECT_EQ(r.by_name("stripe"), &c.routes[2]);
    EXPECT_EQ(r.by_name("nope"), nullptr);
}

}  // namespace
}  // namespace hookq
