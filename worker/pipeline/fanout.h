// Batches: a provider that sends several events in one request (MoySklad's `events[]`) goes to a
// route with `split = "events"` as one delivery per event. The split happens once, on the
// webhook's first claim: each event becomes a child envelope with an id of its own, derived from
// the webhook's id, the route and the event's index, so a redelivered webhook splits into the same
// children. The children are retry records for that route (attempt 1), pushed onto the queue in
// the same step that acks the webhook (park::kAck), and from then on each is claimed, delivered,
// retried, dead-lettered and recorded on its own. A child's body is the webhook's JSON with the
// array cut down to its one event (other fields, such as MoySklad's auditContext, stay); its
// envelope carries ":hookq-parent" and ":hookq-part" (names no request can carry), which the
// dispatcher sends as X-Hookq-Parent-Id and X-Hookq-Part.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/envelope.h"
#include "shared/uuid.h"

namespace hookq::fanout {

inline constexpr std::string_view kParentHeader = ":hookq-parent";
inline constexpr std::string_view kPartHeader = ":hookq-part";
// More events than this in one request go out whole, as one delivery (and the log says so): a
// split is acked in one Redis step, which must stay short.
inline constexpr size_t kMaxEvents = 1000;

// The bodies of the events of `body`'s array at `path` (dotted object keys), each the whole JSON
// with that array cut down to the one event. nullopt when the body is not a JSON object, the
// array is absent, empty or not an array, or it has more than kMaxEvents elements.
std::optional<std::vector<std::string>> split_bodies(std::string_view body, std::string_view path);

// The id of child `index` of `parent` for `route`: the parent's 48-bit millisecond prefix (children
// sort beside their parent, as UUIDv7 ids do) and 74 bits of SHA-256(parent, route, index), as a
// version 8 UUID.
Uuid child_id(const Uuid& parent, std::string_view route, size_t index);

// The retry record (route, attempt 1) of child `index` of `n` whose body is `body`.
std::string child_record(const EnvelopeView& parent, std::string_view route, size_t index, size_t n,
                         std::string body, uint64_t first_attempt_us);

}  // namespace hookq::fanout
