// Durations and sizes in nginx's notation, so a value means the same in nginx.conf and worker.toml.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hookq {

// "250ms", "30s", "5m", "72h", "7d", "1w", and a bare number meaning seconds; combinations such as
// "1h30m" as nginx allows. nullopt for anything else (empty, negative, overflow, unknown unit).
std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept;

// "1024", "512k"/"512K", "1m"/"1M", "2g"/"2G" -> bytes. nullopt on garbage or overflow.
std::optional<uint64_t> parse_size(std::string_view text) noexcept;

}  // namespace hookq
