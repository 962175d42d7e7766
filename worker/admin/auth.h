// Who is asking and whether a browser could have been made to ask: the admin API's checks that
// need no server, kept apart so the unit tests can reach them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "worker/config.h"

namespace hookq::admin {

// The token that `authorization` ("Bearer <token>") carries, or nullptr. Every configured token is
// compared, each as a SHA-256 digest with CRYPTO_memcmp: the time taken tells neither which
// token nor how much of one matched, nor the length of any.
const AdminToken* authenticate(const std::vector<AdminToken>& tokens,
                               std::string_view authorization);

// For a write: false with `why` set when a browser on another site could have sent it. Origin,
// when present, must name this server (`host`, the Host header); Sec-Fetch-Site, when present,
// must be same-origin or none ("same-site" is refused too: another port on this host is same-site).
bool browser_safe_write(std::string_view origin, std::string_view host,
                        std::string_view sec_fetch_site, std::string& why);

}  // namespace hookq::admin
