#include "worker/admin/api.h"

#include <optional>

#include "worker/admin/api_handlers.h"
#include "worker/admin/auth.h"
#include "worker/log.h"
#include "worker/ops/replay.h"

namespace hookq::admin {

namespace {

enum class Pg {
    needed,  // 503 without it
    unused,  // Redis only (or nothing): answers while PostgreSQL is down
    tried,   // connected when it can be; the handler reports the outage itself (/health)
};

struct Endpoint {
    // Under /api/v1/. "*" is one segment; "**" one or more, for a destination (scheme://host:port),
    // whose "//" has split it into segments by the time the path is parsed.
    std::string_view path;
    std::string_view allow;
    Pg pg;
    // The query parameters it takes, ", "-separated; nullptr: its operation checks them.
    const char* params;
    // nullptr when what it shows or changes is limited to the token's sources; else why it cannot
    // be, and a token limited to some sources is refused.
    const char* unscoped;
    HttpReply (*run)(Call&);
};

constexpr const char* kNone = "";
constexpr const char* kByOperation = nullptr;
constexpr const char* kScoped = nullptr;
// Queues are not tied to sources in the configuration: a token limited to some sources could
// otherwise read (or release) another source's entities.
constexpr const char* kPerQueue = "loops are per queue and need an unrestricted token";

namespace h = handlers;

// Path, methods, PostgreSQL, query parameters, scope, handler. The first match wins: a breaker's
// reset before the breaker itself.
constexpr Endpoint kEndpoints[] = {
    {"status", "GET, HEAD", Pg::needed, kNone, kScoped, h::status},
    {"health", "GET, HEAD", Pg::tried, kNone, kScoped, h::health},
    {"slo", "GET, HEAD", Pg::needed, kNone, kScoped, h::slo},
    {"destinations/health", "GET, HEAD", Pg::unused, kNone, kScoped, h::destinations_health},
    {"routes", "GET, HEAD", Pg::needed, kNone, kScoped, h::routes},
    {"stats", "GET, HEAD", Pg::needed, kByOperation, kScoped, h::stats},
    {"events", "GET, HEAD", Pg::needed, kByOperation, kScoped, h::list_events},
    {"events/*", "GET, HEAD", Pg::needed, kNone, kScoped, h::get_event},
    {"dead-letters", "GET, HEAD", Pg::needed, "source, route, cursor, limit, include_requeued",
     kScoped, h::list_dead_letters},
    {"dead-letters/*", "GET, HEAD, DELETE", Pg::needed, kNone, kScoped, h::dead_letter},
    {"dead-letters/*/retry", "POST", Pg::needed, kNone, kScoped, h::retry_dead_letter},
    {"breakers", "GET, HEAD", Pg::unused, kNone, kScoped, h::list_breakers},
    {"breakers/**/reset", "POST", Pg::needed, kNone, kScoped, h::reset_breaker},
    {"breakers/**", "GET, HEAD", Pg::unused, kNone, kScoped, h::get_breaker},
    {"replays", "GET, HEAD, POST", Pg::needed, kNone, kScoped, h::replays},
    {"replays/*", "GET, HEAD", Pg::needed, kNone, kScoped, h::get_replay},
    {"replays/*/cancel", "POST", Pg::needed, kNone, kScoped, h::cancel_replay},
    {"replays/*/resume", "POST", Pg::needed, kNone, kScoped, h::resume_replay},
    {"alerts", "GET, HEAD", Pg::needed, kByOperation, kScoped, h::list_alerts},
    {"alerts/events", "GET, HEAD", Pg::needed, kByOperation, kScoped, h::list_alert_events},
    {"silences", "GET, HEAD, POST", Pg::needed, kByOperation, kScoped, h::silences},
    {"silences/*", "DELETE", Pg::needed, kNone, kScoped, h::expire_silence},
    {"pauses", "GET, HEAD", Pg::unused, kNone, kScoped, h::list_pauses},
    {"routes/*/pause", "POST", Pg::needed, kNone, kScoped, h::pause},
    {"routes/*/resume", "POST", Pg::needed, kNone, kScoped, h::resume},
    {"sources/*/pause", "POST", Pg::needed, kNone, kScoped, h::pause},
    {"sources/*/resume", "POST", Pg::needed, kNone, kScoped, h::resume},
    {"loops", "GET, HEAD", Pg::unused, kNone, kPerQueue, h::list_loops},
    {"loops/*", "DELETE", Pg::needed, kNone, kPerQueue, h::clear_loops},
    {"loops/*/release", "POST", Pg::needed, kNone, kPerQueue, h::release_loops},
};

// Splits "a, b, c" (or "a/b/c") without copying.
std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        size_t at = s.find(sep);
        out.push_back(s.substr(0, at));
        s = at == std::string_view::npos ? std::string_view() : s.substr(at + sep.size());
    }
    return out;
}

// `seg` from its third segment (after "api", "v1") against the endpoint's path.
bool matches(std::string_view path, const std::vector<std::string>& seg) {
    std::vector<std::string_view> want = split(path, "/");
    size_t at = 2;
    for (size_t i = 0; i < want.size(); ++i) {
        if (want[i] == "**") {
            size_t after = want.size() - i - 1;  // the fixed segments that follow it
            if (seg.size() < at + 1 + after) {
                return false;
            }
            at = seg.size() - after;
            continue;
        }
        if (at >= seg.size() || (want[i] != "*" && want[i] != seg[at])) {
            return false;
        }
        ++at;
    }
    return at == seg.size();
}

bool listed(std::string_view list, std::string_view item) {
    for (std::string_view x : split(list, ", ")) {
        if (x == item) {
            return true;
        }
    }
    return false;
}

}  // namespace

HttpReply Api::answer(MHD_Connection* conn, const AdminToken& token, std::string_view method,
                      const std::vector<std::string>& seg, const Args& args,
                      const std::string& body) {
    const Endpoint* ep = nullptr;
    for (const Endpoint& e : kEndpoints) {
        if (matches(e.path, seg)) {
            ep = &e;
            break;
        }
    }
    if (!ep) {
        return error(404, "not found", "no such endpoint");
    }
    std::string m = method == "HEAD" ? "GET" : std::string(method);
    if (!listed(ep->allow, m)) {
        return method_not_allowed(std::string(ep->allow),
                                  "this endpoint allows " + std::string(ep->allow));
    }
    if (m != "GET") {
        std::string why;
        if (!browser_safe_write(header(conn, "Origin"), header(conn, "Host"),
                                header(conn, "Sec-Fetch-Site"), why)) {
            return error(403, "cross-site request refused", why);
        }
        if (token.role != "admin") {
            return error(403, "forbidden",
                         "token '" + token.name + "' has the role " + token.role +
                             ", which only reads; writes need an admin token");
        }
    }
    if (ep->unscoped && !token.sources.empty()) {
        return error(403, "forbidden",
                     "token '" + token.name + "' is limited to some sources; " + ep->unscoped);
    }
    if (ep->params) {
        for (const auto& [k, v] : args) {
            if (!listed(ep->params, k)) {
                std::string names = *ep->params ? std::string(" (") + ep->params + ")" : "";
                return error(400, "bad request", "unknown parameter '" + k + "'" + names);
            }
        }
    }
    SessionPool::Lease session = pool_.lease();
    if (ep->pg != Pg::unused) {
        std::string err;
        if (!session->ensure_pg(err)) {
            log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
            if (ep->pg == Pg::needed) {
                return error(503, "PostgreSQL unavailable", "see the worker's log");
            }
        }
    }
    Call call{*this, config(), conn, token, m, seg, args, body, {}, *session};
    if (!token.sources.empty()) {
        call.scope.sources = token.sources;
    }
    try {
        return ep->run(call);
    } catch (const ops::ConfirmationRequired& e) {
        HttpReply r = error(409, "confirmation required", e.what());
        r.body["count"] = e.count;
        return r;
    } catch (const ops::Error& e) {
        return refusal(e);
    } catch (const std::runtime_error& e) {
        return backend_failed(e);
    }
}

ops::Actor Call::actor() const {
    return {token.name, token.role, client_address(conn), header("User-Agent"), "api"};
}

std::string Call::arg(const char* name) const {
    auto it = args.find(name);
    return it == args.end() ? std::string() : it->second;
}

std::optional<HttpReply> Call::source_refused(const std::string& source) const {
    if (source.empty() || scope.allows(source)) {
        return std::nullopt;
    }
    return error(403, "forbidden",
                 "token '" + token.name + "' may not see source '" + source + "'");
}

std::optional<HttpReply> Call::json_body(Json& out, bool object, bool optional) const {
    out = nullptr;
    if (optional && body.empty()) {
        return std::nullopt;
    }
    if (!header("Content-Type").starts_with("application/json")) {
        return error(415, "unsupported media type",
                     optional ? "the body, when given, is JSON (Content-Type: application/json)"
                              : "the body is JSON (Content-Type: application/json)");
    }
    out = Json::parse(body, nullptr, false);
    if (object && !out.is_object()) {
        return error(400, "bad request", "the body must be a JSON object");
    }
    if (out.is_discarded()) {
        return error(400, "bad request", "the body is not valid JSON");
    }
    return std::nullopt;
}

}  // namespace hookq::admin
