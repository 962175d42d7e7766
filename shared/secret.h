// Secrets as operators write them: "file:/etc/hookq/x.secret" (one trailing newline stripped),
// "env:NAME", "literal:VALUE", or a bare value. Read once at configuration time, never on a
// request.
//
// A bare value is taken literally only when it cannot be mistaken for something else: one that
// looks like a path ("/etc/hookq/x.secret", "./x", "~/x") or starts with an unknown "word:" source
// ("fiel:/x") is refused, because taking it literally would make a string anyone can read in the
// configuration (or the README) the HMAC key. "literal:" says "this really is the secret".
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hookq {

// A secret file larger than this is refused without being read further: a key is tens of bytes,
// and "file:/dev/zero" or a log file by mistake must not grow the nginx master at every reload.
inline constexpr size_t kMaxSecretFileBytes = 4096;

// On failure returns nullopt and sets `error` to a message naming the spec's source (the path or
// the variable), never the secret itself. On success, when `warning` is given, sets it to a
// non-fatal remark (a secret file other users can read) or leaves it empty.
std::optional<std::string> load_secret(std::string_view spec, std::string& error,
                                       std::string* warning = nullptr);

}  // namespace hookq
