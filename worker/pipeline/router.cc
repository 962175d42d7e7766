#include "worker/pipeline/router.h"

#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

namespace hookq {

namespace {

std::string scalar(const nlohmann::json& j) {
    if (j.is_string()) {
        return j.get<std::string>();
    }
    if (j.is_number() || j.is_boolean()) {
        return j.dump();
    }
    return {};
}

std::string resolve(const nlohmann::json& j, std::string_view path) {
    if (path.empty()) {
        return scalar(j);
    }
    size_t dot = path.find('.');
    std::string_view seg = path.substr(0, dot);
    std::string_view rest =
        dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    bool array = seg.ends_with("[]");
    if (array) {
        seg.remove_suffix(2);
    }
    if (!j.is_object()) {
        return {};
    }
    auto it = j.find(std::string(seg));
    if (it == j.end()) {
        return {};
    }
    if (!array) {
        return resolve(*it, rest);
    }
    if (!it->is_array()) {
        return {};
    }
    for (const auto& e : *it) {
        std::string v = resolve(e, rest);
        if (!v.empty()) {
            return v;
        }
    }
    return {};
}

// Every scalar at `path`, each array step taken for all its elements; false once `found` says so.
template <typename Found>
bool any_at(const nlohmann::json& j, std::string_view path, const Found& found) {
    if (path.empty()) {
        std::string v = scalar(j);
        return !v.empty() && found(v);
    }
    size_t dot = path.find('.');
    std::string_view seg = path.substr(0, dot);
    std::string_view rest =
        dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
    bool array = seg.ends_with("[]");
    if (array) {
        seg.remove_suffix(2);
    }
    if (!j.is_object()) {
        return false;
    }
    auto it = j.find(std::string(seg));
    if (it == j.end()) {
        return false;
    }
    if (!array) {
        return any_at(*it, rest, found);
    }
    if (!it->is_array()) {
        return false;
    }
    return std::any_of(it->begin(), it->end(),
                       [&](const nlohmann::json& e) { return any_at(e, rest, found); });
}

}  // namespace

bool fields_match(const nlohmann::json& json, const std::vector<FieldMatch>& conditions) {
    return std::all_of(conditions.begin(), conditions.end(), [&](const FieldMatch& m) {
        return any_at(json, m.path, [&](const std::string& v) {
            return std::find(m.values.begin(), m.values.end(), v) != m.values.end();
        });
    });
}

std::string json_field(std::string_view body, std::string_view path) {
    auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        return {};
    }
    return resolve(j, path);
}

Router::Router(const Config& cfg) : cfg_(cfg) {
    for (const Route& r : cfg.routes) {
        by_source_[r.source].push_back(&r);
        by_name_[r.name] = &r;
    }
}

std::string Router::event_type(const EnvelopeView& env) const {
    auto it = cfg_.sources.find(std::string(env.source));
    if (it == cfg_.sources.end()) {
        return {};
    }
    if (!it->second.event_header.empty()) {
        return std::string(env.header(it->second.event_header));
    }
    if (!it->second.event_field.empty()) {
        return json_field(env.body, it->second.event_field);
    }
    return {};
}

std::vector<const Route*> Router::match(std::string_view source, std::string_view event_type,
                                        std::string_view body) const {
    std::vector<const Route*> out;
    auto it = by_source_.find(source);
    if (it == by_source_.end()) {
        return out;
    }
    std::optional<nlohmann::json> json;
    for (const Route* r : it->second) {
        if (!r->events.empty() &&
            std::none_of(r->events.begin(), r->events.end(),
                         [&](const std::string& e) { return e == "*" || e == event_type; })) {
            continue;
        }
        if (!r->match.empty()) {
            if (!json) {
                json = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
            }
            if (json->is_discarded() || !fields_match(*json, r->match)) {
                continue;
            }
        }
        out.push_back(r);
    }
    return out;
}

const Route* Router::by_name(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace hookq
