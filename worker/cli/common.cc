#include "worker/cli/common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace hookq::ctl {

Config load_target(const Target& t, bool needs_redis) {
    Config cfg;
    if (std::filesystem::exists(t.config_path) || t.dsn.empty() ||
        (needs_redis && t.redis.empty())) {
        cfg = load_config_file(t.config_path);
    }
    if (!t.dsn.empty()) {
        cfg.postgres_dsn = t.dsn;
    }
    if (!t.redis.empty()) {
        cfg.redis_unix.clear();
        cfg.redis_cluster.clear();  // --redis names one node
        if (t.redis.starts_with("unix:")) {
            cfg.redis_unix = t.redis.substr(5);
        } else {
            auto colon = t.redis.rfind(':');
            if (colon == std::string::npos || colon == 0) {
                throw std::runtime_error("--redis must be host:port or unix:/path/to/socket");
            }
            cfg.redis_host = t.redis.substr(0, colon);
            try {
                cfg.redis_port = std::stoi(t.redis.substr(colon + 1));
            } catch (const std::exception&) {
                throw std::runtime_error("--redis must be host:port or unix:/path/to/socket");
            }
        }
    }
    return cfg;
}

void connect_pg(Pg& pg) {
    if (!pg.connect()) {
        throw std::runtime_error("cannot connect to PostgreSQL: " + pg.error());
    }
}

void connect_redis(RedisConn& r) {
    if (!r.ensure()) {
        throw std::runtime_error("cannot connect to Redis: " + r.last_error());
    }
}

PgResult query(Pg& pg, const std::string& sql,
               const std::vector<std::optional<std::string>>& params) {
    Statement st;
    st.sql = sql;
    for (const auto& p : params) {
        st.add(p);
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    for (const auto& p : st.params) {
        values.push_back(p ? p->data() : nullptr);
        lengths.push_back(p ? static_cast<int>(p->size()) : 0);
    }
    if (!pg.raw()) {
        return nullptr;
    }
    PgResult r(PQexecParams(pg.raw(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), lengths.data(), st.formats.data(), 0));
    auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        return nullptr;
    }
    return r;
}

PgResult must_query(Pg& pg, const std::string& sql,
                    const std::vector<std::optional<std::string>>& params) {
    auto r = query(pg, sql, params);
    if (!r) {
        std::string err = pg.raw() ? PQerrorMessage(pg.raw()) : "not connected";
        while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) {
            err.pop_back();
        }
        throw std::runtime_error("PostgreSQL: " + err);
    }
    return r;
}

std::string cell(const PgResult& r, int row, int col) {
    if (PQgetisnull(r.get(), row, col)) {
        return "";
    }
    return std::string(PQgetvalue(r.get(), row, col),
                       static_cast<size_t>(PQgetlength(r.get(), row, col)));
}

bool is_null(const PgResult& r, int row, int col) {
    return PQgetisnull(r.get(), row, col) != 0;
}

Reply must(RedisConn& r, const std::vector<std::string_view>& argv) {
    auto reply = r.command(argv);
    if (!reply) {
        throw std::runtime_error("Redis: " + r.last_error());
    }
    if (is_error(reply)) {
        throw std::runtime_error("Redis: " + std::string(reply->str, reply->len));
    }
    return reply;
}

std::vector<std::string> scan_keys(RedisConn& r, const std::string& pattern) {
    std::vector<std::string> keys;
    std::string cursor = "0";
    do {
        auto reply = must(r, {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"});
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
            throw std::runtime_error("Redis: unexpected SCAN reply");
        }
        cursor.assign(reply->element[0]->str, reply->element[0]->len);
        const redisReply* batch = reply->element[1];
        for (size_t i = 0; i < batch->elements; ++i) {
            keys.emplace_back(batch->element[i]->str, batch->element[i]->len);
        }
    } while (cursor != "0");
    // SCAN may return a key more than once.
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
}

std::string actor() {
    for (const char* var : {"SUDO_USER", "USER"}) {
        const char* v = std::getenv(var);
        if (v && *v) {
            return v;
        }
    }
    return "hookqctl";
}

void audit(Pg& pg, const std::string& action, const std::string& target,
           const nlohmann::json& details) {
    must_query(pg,
               "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, "
               "$4::jsonb)",
               {actor(), action, target, details.dump()});
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width;
    for (const auto& row : rows) {
        width.resize(std::max(width.size(), row.size()), 0);
        for (size_t i = 0; i < row.size(); ++i) {
            width[i] = std::max(width[i], row[i].size());
        }
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) {
                line.append(width[i] - row[i].size() + 2, ' ');
            }
        }
        out += line + "\n";
    }
    return out;
}

uint64_t redis_now_ms(RedisConn& r) {
    auto t = must(r, {"TIME"});
    if (t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
        throw std::runtime_error("Redis: unexpected reply to TIME");
    }
    return std::strtoull(t->element[0]->str, nullptr, 10) * 1000 +
           std::strtoull(t->element[1]->str, nullptr, 10) / 1000;
}

std::string printable(const std::string& s, bool keep_newlines) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if ((c < 0x20 && !(keep_newlines && (c == '\n' || c == '\t'))) || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string json_cell(const nlohmann::ordered_json& v) {
    if (v.is_null()) {
        return "-";
    }
    if (v.is_number_float()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
        return buf;
    }
    return printable(v.is_string() ? v.get<std::string>() : v.dump());
}

}  // namespace hookq::ctl
