// One JSON object per line on stdout (journald), built with nlohmann so every value is escaped.
// Callers put request_id and source on every line about a webhook; secrets are never passed here.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace hookq::log {

using Fields = nlohmann::ordered_json;

// The worker logs to stdout (the journal); hookqctl to stderr, since its stdout is its output
// (`--json` piped to jq must stay JSON when a Redis node is found down mid-command).
void init(std::string_view level, bool to_stderr = false);
void write(spdlog::level::level_enum level, std::string_view msg, const Fields& fields = {});
bool enabled(spdlog::level::level_enum level);

inline void debug(std::string_view m, const Fields& f = {}) {
    write(spdlog::level::debug, m, f);
}
inline void info(std::string_view m, const Fields& f = {}) {
    write(spdlog::level::info, m, f);
}
inline void warn(std::string_view m, const Fields& f = {}) {
    write(spdlog::level::warn, m, f);
}
inline void error(std::string_view m, const Fields& f = {}) {
    write(spdlog::level::err, m, f);
}

}  // namespace hookq::log
