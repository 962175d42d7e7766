// Secrets as operators write them: "file:/etc/hookq/x.secret" (one trailing newline stripped),
// "env:NAME", or the literal value. Read once at configuration time, never on a request.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hookq {

// On failure returns nullopt and sets `error` to a message naming the spec's source (the path or
// the variable), never the secret itself.
std::optional<std::string> load_secret(std::string_view spec, std::string& error);

}  // namespace hookq
