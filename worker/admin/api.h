// The admin API under /api/v1/: one table of endpoints (api.cc), one file of handlers per resource
// (api_*.cc), each calling the operation hookqctl calls too (worker/ops/).
//
// A request, once its bearer token is known, goes through the same steps whatever the endpoint,
// in this order, so that two endpoints never refuse the same thing differently:
//
//   1. The path picks the endpoint (404 when none does).
//   2. The method against what it allows (405 with Allow; HEAD is answered as GET).
//   3. A write: same-site when from a browser, then an admin token (403).
//   4. An endpoint that spans every source refuses a token limited to some (403).
//   5. Query parameters it does not know (400, naming the one at fault).
//   6. PostgreSQL, when the endpoint needs it (503).
//   7. The handler. An operation's refusal becomes 400/404/409, a backend failing mid-way 503.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/admin/http.h"
#include "worker/admin/session.h"
#include "worker/config.h"

namespace hookq::admin {

using Args = std::map<std::string, std::string>;

class Api {
  public:
    explicit Api(SessionPool& pool) : pool_(pool) {}

    // `seg`: the path's segments, "api" and "v1" first.
    HttpReply answer(MHD_Connection* c, const AdminToken& token, std::string_view method,
                     const std::vector<std::string>& seg, const Args& args,
                     const std::string& body);

    const Config& config() const { return pool_.config(); }

    // Every open dashboard asks for the status every second: one computation per second and
    // scope, however many tabs, keeps PostgreSQL's and Redis's share of it flat.
    struct StatusCache {
        std::mutex mu;
        std::map<std::string, std::pair<uint64_t, Json>> by_scope;  // sources -> (steady ms, JSON)
    } status_cache;

  private:
    SessionPool& pool_;
};

// One request, as a handler sees it once steps 1-6 have passed.
struct Call {
    Api& api;
    const Config& cfg;
    MHD_Connection* conn;
    const AdminToken& token;
    std::string method;  // "GET" for HEAD
    const std::vector<std::string>& seg;
    const Args& args;
    const std::string& body;
    ops::Scope scope;  // the token's sources
    Session& s;

    std::string header(const char* name) const { return admin::header(conn, name); }
    ops::Actor actor() const;
    // The query parameter, "" when absent.
    std::string arg(const char* name) const;
    // Refuses a source outside the token's scope (403), nullopt when it may be seen.
    std::optional<HttpReply> source_refused(const std::string& source) const;
    // The JSON body into `out`: 415 without Content-Type: application/json, 400 when it does not
    // parse (or, with `object`, is not an object). `optional`: an empty body leaves `out` null.
    std::optional<HttpReply> json_body(Json& out, bool object, bool optional) const;
};

}  // namespace hookq::admin
