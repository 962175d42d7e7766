// The Prometheus text format, as both the edge's hookq_status and the worker's /metrics write it.
#pragma once

#include <string>
#include <string_view>

namespace hookq::prometheus {

// A label value between double quotes: backslash, double quote and newline escaped, as the
// exposition format requires. Source and route names are free text from the operator's config.
std::string escape_label(std::string_view v);

}  // namespace hookq::prometheus
