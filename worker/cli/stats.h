// hookqctl stats: delivery statistics per route or source (ops/stats.h).
#pragma once

#include <map>
#include <string>

#include "worker/config.h"
#include "worker/store/pg.h"

namespace hookq::ctl {

// `args` are the API's query parameters (window, by, source, route): --json prints exactly what
// GET /api/v1/stats returns with them.
int stats(Pg& pg, const Config& cfg, const std::map<std::string, std::string>& args, bool json);

}  // namespace hookq::ctl
