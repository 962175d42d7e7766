#include "worker/pipeline/fanout.h"

#include <strings.h>

#include <nlohmann/json.hpp>

#include "shared/crypto.h"

namespace hookq::fanout {

std::optional<std::vector<std::string>> split_bodies(std::string_view body, std::string_view path) {
    // ordered_json: the children keep the provider's field order.
    auto root = nlohmann::ordered_json::parse(body.begin(), body.end(), nullptr,
                                              /*allow_exceptions=*/false);
    if (root.is_discarded() || !root.is_object()) {
        return std::nullopt;
    }
    // The path to the array, as a JSON pointer into root.
    nlohmann::ordered_json::json_pointer ptr;
    const nlohmann::ordered_json* at = &root;
    for (size_t from = 0; from <= path.size();) {
        size_t dot = std::min(path.find('.', from), path.size());
        std::string key(path.substr(from, dot - from));
        if (!at->is_object() || !at->contains(key)) {
            return std::nullopt;
        }
        at = &(*at)[key];
        ptr /= key;
        from = dot + 1;
    }
    if (!at->is_array() || at->empty() || at->size() > kMaxEvents) {
        return std::nullopt;
    }
    nlohmann::ordered_json events = std::move(root[ptr]);
    std::vector<std::string> out;
    out.reserve(events.size());
    for (auto& e : events) {
        root[ptr] = nlohmann::ordered_json::array({std::move(e)});
        out.push_back(root.dump());
    }
    return out;
}

Uuid child_id(const Uuid& parent, std::string_view route, size_t index) {
    unsigned char idx[4] = {
        static_cast<unsigned char>(index >> 24), static_cast<unsigned char>(index >> 16),
        static_cast<unsigned char>(index >> 8), static_cast<unsigned char>(index)};
    std::string in(reinterpret_cast<const char*>(parent.bytes.data()), parent.bytes.size());
    in.append(route);
    in.push_back('\0');
    in.append(reinterpret_cast<const char*>(idx), sizeof idx);
    unsigned char h[32];
    crypto::sha256(in, h);
    Uuid id;
    for (size_t i = 0; i < 16; ++i) {
        id.bytes[i] = i < 6 ? parent.bytes[i] : h[i];
    }
    id.bytes[6] = static_cast<uint8_t>((id.bytes[6] & 0x0f) | 0x80);  // version 8
    id.bytes[8] = static_cast<uint8_t>((id.bytes[8] & 0x3f) | 0x80);  // RFC 9562 variant
    return id;
}

std::string child_record(const EnvelopeView& parent, std::string_view route, size_t index, size_t n,
                         std::string body, uint64_t first_attempt_us) {
    Envelope child;
    child.request_id = child_id(parent.request_id, route, index);
    child.received_at_us = parent.received_at_us;
    child.source = std::string(parent.source);
    child.dedup_key = std::string(parent.dedup_key) + "#" + std::to_string(index);
    child.method = std::string(parent.method);
    child.target = std::string(parent.target);
    child.remote_addr = std::string(parent.remote_addr);
    child.headers.reserve(parent.headers.size() + 2);
    for (const HeaderField& h : parent.headers) {
        // The length was the batch's; the dispatcher sends the child's own.
        if (h.name.size() == 14 && strncasecmp(h.name.data(), "content-length", 14) == 0) {
            continue;
        }
        child.headers.emplace_back(std::string(h.name), std::string(h.value));
    }
    child.headers.emplace_back(std::string(kParentHeader), parent.request_id.str());
    child.headers.emplace_back(std::string(kPartHeader),
                               std::to_string(index + 1) + "/" + std::to_string(n));
    child.body = std::move(body);
    RetryRecord rec;
    rec.route = std::string(route);
    rec.attempt = 1;
    rec.first_attempt_us = first_attempt_us;
    rec.envelope = child.encode();
    return rec.encode();
}

}  // namespace hookq::fanout
