#include "worker/cli/poison.h"

#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "shared/crypto.h"
#include "shared/envelope.h"
#include "shared/redis_keys.h"
#include "worker/cli/common.h"
#include "worker/store/sql.h"

namespace hookq::ctl {

namespace {

// The element goes back only if it is still there: two operators retrying it requeue it once, and
// a retry racing a delete does not resurrect it. RPUSH: the consuming end (workers RPOP).
constexpr std::string_view kRetry = R"lua(
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
)lua";

struct Element {
    std::string queue;
    std::string raw;
    std::string id;
};

// What can be said of an element without printing a secret: no header values, no body, and the
// path without its query string (some providers put a token there).
nlohmann::ordered_json describe(const Element& e) {
    nlohmann::ordered_json j;
    j["id"] = e.id;
    j["queue"] = e.queue;
    j["bytes"] = e.raw.size();
    std::string_view env_bytes = e.raw;
    std::optional<RetryRecord> rec;
    if (e.raw.starts_with("HQR1")) {
        rec = RetryRecord::decode(e.raw);
        if (rec) {
            env_bytes = rec->envelope;
        }
    }
    EnvelopeView env;
    if ((e.raw.starts_with("HQR1") && !rec) || decode_envelope(env_bytes, env) != DecodeError::ok) {
        j["kind"] = "undecodable";
        static const char* hex = "0123456789abcdef";
        std::string prefix;
        for (size_t i = 0; i < std::min<size_t>(e.raw.size(), 32); ++i) {
            auto c = static_cast<unsigned char>(e.raw[i]);
            prefix += hex[c >> 4];
            prefix += hex[c & 15];
        }
        j["hex_prefix"] = prefix;
        return j;
    }
    j["kind"] = rec ? "retry record" : "envelope";
    j["request_id"] = env.request_id.str();
    j["source"] = sanitize_text(env.source);
    j["received_at"] = format_timestamp_us(env.received_at_us);
    if (rec) {
        j["route"] = sanitize_text(rec->route);
        j["attempt"] = rec->attempt;
    }
    j["method"] = sanitize_text(env.method);
    j["path"] = sanitize_text(env.target.substr(0, env.target.find('?')));
    auto names = nlohmann::json::array();
    for (const auto& h : env.headers) {
        names.push_back(sanitize_text(h.name));
    }
    j["header_names"] = names;
    j["body_bytes"] = env.body.size();
    return j;
}

std::vector<Element> load(RedisConn& redis, const std::string& queue, int limit) {
    std::vector<Element> out;
    auto r = must(redis, {"LRANGE", keys::poison(queue), "0", std::to_string(limit - 1)});
    for (size_t i = 0; i < r->elements; ++i) {
        Element e;
        e.queue = queue;
        e.raw.assign(r->element[i]->str, r->element[i]->len);
        e.id = poison_id(e.raw);
        out.push_back(std::move(e));
    }
    return out;
}

bool matches(const Element& e, const std::string& id) {
    if (e.id == id) {
        return true;
    }
    auto d = describe(e);
    return d.contains("request_id") && d["request_id"] == id;
}

void check_id(const std::string& id) {
    bool hex16 = id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex16 && !Uuid::parse(id)) {
        throw std::runtime_error(
            "poison ids are 16 hex digits or a request id (see `hookqctl "
            "poison list`), not \"" +
            id + "\"");
    }
}

std::optional<Element> find(RedisConn& redis, const std::vector<std::string>& queues,
                            const std::string& id) {
    for (const auto& q : queues) {
        for (auto& e : load(redis, q, 0)) {
            if (matches(e, id)) {
                return std::move(e);
            }
        }
    }
    return std::nullopt;
}

void print_results(const nlohmann::json& results, bool json) {
    if (json) {
        std::printf("%s\n", results.dump(2).c_str());
        return;
    }
    for (const auto& r : results) {
        std::string line = r["id"].get<std::string>() + ": " + r["result"].get<std::string>();
        if (r.contains("queue")) {
            line += " (queue " + r["queue"].get<std::string>() + ")";
        }
        std::printf("%s\n", line.c_str());
    }
}

// Retry and delete: audited in PostgreSQL, the Redis change made inside the transaction and
// committed right after, as `dlq retry` does.
int change(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
           const std::vector<std::string>& ids, bool json, bool retry) {
    for (const auto& id : ids) {
        check_id(id);
    }
    auto results = nlohmann::json::array();
    int failed = 0;
    for (const auto& id : ids) {
        auto e = find(redis, queues, id);
        if (!e) {
            results.push_back({{"id", id}, {"result", "not found"}});
            ++failed;
            continue;
        }
        auto d = describe(*e);
        nlohmann::json details{{"queue", e->queue}, {"bytes", e->raw.size()}, {"kind", d["kind"]}};
        for (const char* k : {"request_id", "source", "route"}) {
            if (d.contains(k)) {
                details[k] = d[k];
            }
        }
        must_query(pg, "BEGIN");
        try {
            audit(pg, retry ? "poison.retry" : "poison.delete", e->id, details);
            if (d.contains("request_id")) {
                // The trace the recorder left for a refused row is settled either way.
                must_query(
                    pg,
                    retry ? "UPDATE dead_letters SET requeued_at = now() "
                            "WHERE event_id = $1::uuid AND route = $2"
                          : "DELETE FROM dead_letters WHERE event_id = $1::uuid AND route = $2",
                    {d["request_id"].get<std::string>(), std::string(kPoisonRoute)});
            }
            Reply r = retry ? redis.eval(kRetry, {keys::poison(e->queue), keys::queue(e->queue)},
                                         {e->raw})
                            : redis.command({"LREM", keys::poison(e->queue), "1", e->raw});
            if (!r || is_error(r)) {
                throw std::runtime_error("Redis: " +
                                         (r ? std::string(r->str, r->len) : redis.last_error()));
            }
            if (r->integer == 0) {
                pg.exec("ROLLBACK");
                results.push_back({{"id", e->id}, {"result", "gone (moved by someone else?)"}});
                ++failed;
                continue;
            }
            must_query(pg, "COMMIT");
        } catch (...) {
            pg.exec("ROLLBACK");
            throw;
        }
        results.push_back(
            {{"id", e->id}, {"queue", e->queue}, {"result", retry ? "requeued" : "deleted"}});
    }
    print_results(results, json);
    return failed ? 1 : 0;
}

}  // namespace

std::string poison_id(std::string_view element) {
    return crypto::sha256_hex(element).substr(0, 16);
}

int poison_list(RedisConn& redis, const std::vector<std::string>& queues, int limit, bool json) {
    auto j = nlohmann::ordered_json::array();
    std::vector<std::vector<std::string>> rows{
        {"QUEUE", "ID", "KIND", "BYTES", "REQUEST_ID", "SOURCE", "RECEIVED_AT", "ROUTE"}};
    for (const auto& q : queues) {
        // Newest first: the recorder and the router push on the left.
        for (const auto& e : load(redis, q, limit)) {
            auto d = describe(e);
            auto get = [&](const char* k) {
                return d.contains(k) ? (d[k].is_string() ? d[k].get<std::string>() : d[k].dump())
                                     : std::string("-");
            };
            rows.push_back({q, e.id, get("kind"), get("bytes"), get("request_id"), get("source"),
                            get("received_at"), get("route")});
            j.push_back(d);
        }
    }
    if (json) {
        std::printf("%s\n", j.dump(2).c_str());
    } else if (rows.size() == 1) {
        std::printf("no poison\n");
    } else {
        std::fputs(table(rows).c_str(), stdout);
    }
    return 0;
}

int poison_show(RedisConn& redis, Pg* pg, const std::vector<std::string>& queues,
                const std::string& id, bool json) {
    check_id(id);
    auto e = find(redis, queues, id);
    if (!e) {
        std::fprintf(stderr, "hookqctl: no poison element %s\n", id.c_str());
        return 1;
    }
    auto d = describe(*e);
    if (pg && d.contains("request_id")) {
        auto r = query(*pg,
                       "SELECT reason, to_char(failed_at AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM dead_letters "
                       "WHERE event_id = $1::uuid AND route = $2",
                       {d["request_id"].get<std::string>(), std::string(kPoisonRoute)});
        if (r && PQntuples(r.get()) > 0) {
            d["reason"] = cell(r, 0, 0);
            d["failed_at"] = cell(r, 0, 1);
        }
    }
    if (json) {
        std::printf("%s\n", d.dump(2).c_str());
        return 0;
    }
    for (const auto& [k, v] : d.items()) {
        std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        std::printf("%-13s %s\n", (k + ":").c_str(), text.c_str());
    }
    return 0;
}

int poison_retry(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                 const std::vector<std::string>& ids, bool json) {
    return change(pg, redis, queues, ids, json, true);
}

int poison_delete(Pg& pg, RedisConn& redis, const std::vector<std::string>& queues,
                  const std::vector<std::string>& ids, bool json) {
    return change(pg, redis, queues, ids, json, false);
}

void add_poison_commands(CLI::App& app, PoisonCommands& c,
                         const std::function<void(CLI::App*)>& addresses) {
    c.poison = app.add_subcommand("poison", "elements set aside in the poison lists");
    c.poison->require_subcommand(1);
    auto common = [&](CLI::App* cmd) {
        addresses(cmd);
        cmd->add_option("--queue", c.queues, "only these queues (default: the config's)");
    };
    c.list = c.poison->add_subcommand("list", "poison elements, newest first");
    common(c.list);
    c.list->add_option("--limit", c.limit, "at most this many per queue")
        ->check(CLI::Range(1, 100000));
    c.show = c.poison->add_subcommand("show", "one element, decoded if it can be");
    common(c.show);
    c.show->add_option("id", c.id, "element id (as listed) or request id")->required();
    c.retry = c.poison->add_subcommand("retry", "put elements back on their queue (audited)");
    common(c.retry);
    c.retry->add_option("ids", c.ids, "element ids (as listed) or request ids")->required();
    c.delete_ = c.poison->add_subcommand("delete", "drop elements for good (audited)");
    common(c.delete_);
    c.delete_->add_option("ids", c.ids, "element ids (as listed) or request ids")->required();
}

int run_poison_commands(const PoisonCommands& c, const Target& target, bool json) {
    bool needs_pg = c.retry->parsed() || c.delete_->parsed();
    auto cfg = load_target(target, true);
    const auto& queues = c.queues.empty() ? cfg.queues : c.queues;
    RedisConn redis(cfg, "hookqctl");
    connect_redis(redis);
    if (c.list->parsed()) {
        return poison_list(redis, queues, c.limit, json);
    }
    Pg pg(cfg.postgres_dsn);
    if (c.show->parsed()) {
        // The reason PostgreSQL recorded is a bonus: show works with Redis alone.
        return poison_show(redis, pg.connect() ? &pg : nullptr, queues, c.id, json);
    }
    if (needs_pg) {
        connect_pg(pg);
    }
    if (c.retry->parsed()) {
        return poison_retry(pg, redis, queues, c.ids, json);
    }
    return poison_delete(pg, redis, queues, c.ids, json);
}

}  // namespace hookq::ctl
