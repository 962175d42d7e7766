#include "worker/ops/common.h"

#include <algorithm>

#include "worker/cli/common.h"

namespace hookq::ops {

bool Scope::allows(const std::string& source) const {
    return !sources || std::find(sources->begin(), sources->end(), source) != sources->end();
}

std::optional<std::string> Scope::sql_array() const {
    if (!sources) {
        return std::nullopt;
    }
    return pg_text_array(*sources);
}

std::string pg_text_array(const std::vector<std::string>& items) {
    std::string out = "{";
    for (size_t i = 0; i < items.size(); ++i) {
        out += i ? ",\"" : "\"";
        for (char c : items[i]) {
            if (c == '"' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

void audit(Pg& pg, const Actor& actor, const std::string& action, const std::string& target,
           nlohmann::json details) {
    // The row says through what and as whom, beyond the name: a token's role and the client's
    // user agent are what an investigation asks next.
    if (!actor.role.empty()) {
        details["role"] = actor.role;
    }
    if (!actor.user_agent.empty()) {
        details["user_agent"] = actor.user_agent;
    }
    if (!actor.via.empty()) {
        details["via"] = actor.via;
    }
    ctl::must_query(
        pg,
        "INSERT INTO audit_log (actor, action, target, details, remote_addr) "
        "VALUES ($1, $2, $3, $4::jsonb, $5)",
        {actor.name, action, target,
         details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
         actor.remote_addr.empty() ? std::nullopt : std::optional<std::string>(actor.remote_addr)});
}

}  // namespace hookq::ops
