// Route stage logic: which routes a webhook goes to, by source and optional event type.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "shared/envelope.h"
#include "worker/config.h"

namespace hookq {

// JSON path with dots; "name[]" steps into an array and takes the first element where the rest of
// the path resolves to a scalar (MoySklad's "events[].action"). Empty when absent or not JSON.
std::string json_field(std::string_view body, std::string_view path);
// Does `json` meet every condition? (Through an array, any element will do.)
bool fields_match(const nlohmann::json& json, const std::vector<FieldMatch>& conditions);

class Router {
  public:
    explicit Router(const Config& cfg);

    std::string event_type(const EnvelopeView& env) const;
    // Routes for this source whose event list is empty or contains the event type (or "*"), and
    // whose `match` conditions the body meets (parsed once, only when a route has conditions).
    std::vector<const Route*> match(std::string_view source, std::string_view event_type,
                                    std::string_view body = {}) const;
    const Route* by_name(std::string_view name) const;

  private:
    const Config& cfg_;
    std::map<std::string, std::vector<const Route*>, std::less<>> by_source_;
    std::map<std::string, const Route*, std::less<>> by_name_;
};

}  // namespace hookq
