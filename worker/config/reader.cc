#include "worker/config/reader.h"

#include <limits>
#include <sstream>

#include "shared/units.h"
#include "worker/config.h"

namespace hookq::config_detail {

void Reader::fail(const toml::source_region& where, const std::string& msg) const {
    std::ostringstream os;
    os << path_ << ":" << where.begin.line << ":" << where.begin.column << ": " << msg;
    throw ConfigError(os.str());
}

void Reader::only_keys(const toml::table& t, std::string_view where,
                       std::initializer_list<std::string_view> allowed) const {
    for (auto&& [k, v] : t) {
        bool ok = false;
        for (auto a : allowed) {
            ok = ok || k.str() == a;
        }
        if (!ok) {
            fail(k.source(), "unknown key '" + std::string(k.str()) + "' in " + std::string(where));
        }
    }
}

const toml::table* Reader::table(const toml::table& t, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return nullptr;
    }
    if (!n->is_table()) {
        fail(n->source(), "'" + std::string(key) + "' must be a table");
    }
    return n->as_table();
}

std::optional<std::string> Reader::str(const toml::table& t, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    if (!n->is_string()) {
        fail(n->source(), "'" + std::string(key) + "' must be a string");
    }
    return n->as_string()->get();
}

std::optional<int64_t> Reader::integer(const toml::table& t, std::string_view key, int64_t lo,
                                       int64_t hi) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    if (!n->is_integer()) {
        fail(n->source(), "'" + std::string(key) + "' must be an integer");
    }
    int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) {
        fail(n->source(), "'" + std::string(key) + "' must be between " + std::to_string(lo) +
                              " and " + std::to_string(hi));
    }
    return v;
}

std::optional<double> Reader::number(const toml::table& t, std::string_view key, double lo,
                                     double hi) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    double v;
    if (n->is_integer()) {
        v = static_cast<double>(n->as_integer()->get());
    } else if (n->is_floating_point()) {
        v = n->as_floating_point()->get();
    } else {
        fail(n->source(), "'" + std::string(key) + "' must be a number");
    }
    if (!(v >= lo && v <= hi)) {
        std::ostringstream os;
        os << "'" << key << "' must be between " << lo << " and " << hi;
        fail(n->source(), os.str());
    }
    return v;
}

std::optional<bool> Reader::boolean(const toml::table& t, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    if (!n->is_boolean()) {
        fail(n->source(), "'" + std::string(key) + "' must be true or false");
    }
    return n->as_boolean()->get();
}

std::optional<uint64_t> Reader::size(const toml::table& t, std::string_view key, uint64_t lo,
                                     uint64_t hi) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    std::optional<uint64_t> v;
    if (n->is_integer() && n->as_integer()->get() >= 0) {
        v = static_cast<uint64_t>(n->as_integer()->get());
    } else if (n->is_string()) {
        v = parse_size(n->as_string()->get());
    }
    if (!v) {
        fail(n->source(), "'" + std::string(key) + "' must be a size such as \"256m\"");
    }
    if (*v < lo || *v > hi) {
        fail(n->source(), "'" + std::string(key) + "' must be between " + std::to_string(lo) +
                              " and " + std::to_string(hi) + " bytes");
    }
    return v;
}

std::optional<uint64_t> Reader::duration(const toml::table& t, std::string_view key, uint64_t lo_ms,
                                         uint64_t hi_ms) const {
    const toml::node* n = t.get(key);
    if (!n) {
        return std::nullopt;
    }
    std::optional<uint64_t> ms;
    if (n->is_integer() && n->as_integer()->get() >= 0) {
        // Seconds. Past what milliseconds can hold it is only out of range: the product must not
        // wrap around into it.
        auto s = static_cast<uint64_t>(n->as_integer()->get());
        ms = s > std::numeric_limits<uint64_t>::max() / 1000 ? std::numeric_limits<uint64_t>::max()
                                                             : s * 1000;
    } else if (n->is_string()) {
        ms = parse_duration_ms(n->as_string()->get());
    }
    if (!ms) {
        fail(n->source(), "'" + std::string(key) + "' must be a duration such as \"10s\"");
    }
    if (*ms < lo_ms || *ms > hi_ms) {
        fail(n->source(), "'" + std::string(key) + "' must be between " + show_ms(lo_ms) + " and " +
                              show_ms(hi_ms));
    }
    return ms;
}

std::vector<std::string> Reader::strings(const toml::table& t, std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (!n) {
        return out;
    }
    if (!n->is_array()) {
        fail(n->source(), "'" + std::string(key) + "' must be an array of strings");
    }
    for (const toml::node& e : *n->as_array()) {
        if (!e.is_string()) {
            fail(e.source(), "'" + std::string(key) + "' must be an array of strings");
        }
        out.push_back(e.as_string()->get());
    }
    return out;
}

const toml::source_region& Reader::where(const toml::table& t, std::string_view key) const {
    const toml::node* n = t.get(key);
    return n ? n->source() : t.source();
}

std::string Reader::show_ms(uint64_t ms) {
    if (ms >= 86400 * 1000 && ms % (86400 * 1000) == 0) {
        return std::to_string(ms / (86400 * 1000)) + "d";
    }
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

}  // namespace hookq::config_detail
