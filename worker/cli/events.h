// hookqctl events [filters] and hookqctl events show ID: the search and detail of ops/events.h.
#pragma once

#include <map>
#include <string>

#include "worker/store/pg.h"

namespace hookq::ctl {

// `args` are the API's query parameters (source, route, ..., cursor, limit). One page, exactly
// what GET /api/v1/events returns with the same parameters.
int events_list(Pg& pg, const std::map<std::string, std::string>& args, bool json);
int events_show(Pg& pg, const std::string& id, bool json);

}  // namespace hookq::ctl
