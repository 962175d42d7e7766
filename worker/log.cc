#include "worker/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace hookq::log {

namespace {
std::shared_ptr<spdlog::logger> g_logger;

spdlog::logger& logger() {
    if (!g_logger) {
        init("info");
    }
    return *g_logger;
}
}  // namespace

void init(std::string_view level, bool to_stderr) {
    g_logger = to_stderr ? spdlog::stderr_logger_mt("hookq") : spdlog::stdout_logger_mt("hookq");
    // The pattern opens the object with time and level; %v is the rest of it, already JSON.
    g_logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                          spdlog::pattern_time_type::utc);
    g_logger->set_level(spdlog::level::from_str(std::string(level)));
    g_logger->flush_on(spdlog::level::trace);
}

bool enabled(spdlog::level::level_enum level) {
    return logger().should_log(level);
}

void write(spdlog::level::level_enum level, std::string_view msg, const Fields& fields) {
    if (!logger().should_log(level)) {
        return;
    }
    Fields obj = Fields::object();
    obj["msg"] = msg;
    if (fields.is_object()) {
        for (auto it = fields.begin(); it != fields.end(); ++it) {
            obj[it.key()] = it.value();
        }
    }
    std::string s = obj.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    logger().log(level, "{}", std::string_view(s).substr(1, s.size() - 2));
}

}  // namespace hookq::log
