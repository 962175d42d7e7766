#include "worker/pipeline/router.h"

#include <algorithm>

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

}  // namespace

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

std::vector<const Route*> Router::match(std::string_view source,
                                        std::string_view event_type) const {
    std::vector<const Route*> out;
    auto it = by_source_.find(source);
    if (it == by_source_.end()) {
        return out;
    }
    for (const Route* r : it->second) {
        if (r->events.empty() ||
            std::any_of(r->events.begin(), r->events.end(),
                        [&](const std::string& e) { return e == "*" || e == event_type; })) {
            out.push_back(r);
        }
    }
    return out;
}

const Route* Router::by_name(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace hookq
