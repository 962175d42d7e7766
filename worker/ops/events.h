// Recorded webhooks: the search behind `hookqctl events` and GET /api/v1/events, and one webhook
// with its headers, body, per-route state, attempts and dead letters (`hookqctl events show`,
// GET /api/v1/events/{id}).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/ops/common.h"
#include "worker/store/pg.h"

namespace hookq::ops {

inline constexpr int kMaxEventPage = 1000;

// Where a page ends: the (received_at, id) of its last row. Pages walk newest first by keyset, so
// rows recorded while an operator pages (newer than the first page) neither shift nor repeat rows.
struct EventCursor {
    int64_t received_at_us = 0;
    std::string id;  // canonical UUID text
};
// Opaque to callers: base64url of a versioned text, so a client cannot mistake it for a time.
std::string encode_cursor(const EventCursor& c);
// Throws Error::bad_request for anything encode_cursor did not produce.
EventCursor decode_cursor(const std::string& text);

// RFC 3339 ("2026-11-30T12:00:00Z", fractional seconds and offsets allowed) or a date
// ("2026-11-30", midnight UTC) to unix microseconds; nullopt when it is neither.
std::optional<int64_t> parse_time(const std::string& text);

// `status` is the webhook's (delivered only when every route delivered), or with `route` that
// route's own.
struct EventQuery {
    std::string source, route, status, event_type, request_id, dedup_key;  // empty: any
    std::optional<int64_t> from_us;                                        // received_at >= from
    std::optional<int64_t> to_us;                                          // received_at < to
    std::optional<EventCursor> cursor;
    int limit = 50;
};

// The query parameters of GET /api/v1/events (hookqctl builds the same map from its flags),
// checked: Error::bad_request names the parameter that is unknown or wrong.
EventQuery parse_event_query(const std::map<std::string, std::string>& args);

// Newest first: {"items": [...], "next_cursor": "<opaque>" or null}.
nlohmann::ordered_json list_events(Pg& pg, const EventQuery& q, const Scope& scope = {});

// One webhook. Error::bad_request for an id that is not a UUID; not_found when it was not recorded
// or is outside the scope.
nlohmann::ordered_json get_event(Pg& pg, const std::string& id, const Scope& scope = {});

// The body as JSON can carry it: {"body": text, "body_encoding": "utf-8"} when it is valid UTF-8,
// else base64 with "base64". GET /api/v1/events/{id} and /dead-letters/{id} both show it so.
nlohmann::ordered_json body_json(std::string_view body);
bool valid_utf8(std::string_view s);

}  // namespace hookq::ops
