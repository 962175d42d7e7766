#include "worker/admin/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/redis_keys.h"
#include "worker/admin/auth.h"
#include "worker/admin/ui_assets.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/ops/alerts.h"
#include "worker/ops/breakers.h"
#include "worker/ops/pauses.h"
#include "worker/ops/dead_letters.h"
#include "worker/ops/events.h"
#include "worker/ops/health.h"
#include "worker/ops/health_checks.h"
#include "worker/ops/slo.h"
#include "worker/ops/loops.h"
#include "worker/ops/replay.h"
#include "worker/ops/routes.h"
#include "worker/ops/stats.h"
#include "worker/ops/status.h"
#include "worker/store/pg.h"
#include "worker/store/redis_conn.h"

namespace hookq::admin {

// worker/admin/openapi.json, embedded at build time (worker/CMakeLists.txt).
std::string_view openapi_document();

namespace {

using Json = nlohmann::ordered_json;

// Nothing the API accepts comes near this: a retry's options are a few dozen bytes.
constexpr size_t kMaxBody = 64 * 1024;
// Four: a dashboard's status request (tens of milliseconds under load) must not queue a
// Prometheus scrape or a health check behind it.
constexpr unsigned kThreads = 4;
// Every open dashboard asks for the status every second: one computation per second and scope,
// however many tabs, keeps PostgreSQL's and Redis's share of it flat.
constexpr uint64_t kStatusCacheMs = 1000;

uint64_t steady_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}
constexpr unsigned kMaxConnections = 64;
// Idle seconds before a connection is closed: a client that sends half a request and waits holds a
// connection (not a thread: the threads multiplex with epoll) for at most this long.
constexpr unsigned kConnectionTimeoutS = 10;
constexpr size_t kConnectionMemory = 32 * 1024;  // headers and read buffer per connection
// A slow database must not pin both threads for long.
constexpr uint64_t kRedisTimeoutMs = 1000;
constexpr const char* kPgSessionSettings =
    "SET statement_timeout = '5s'; SET lock_timeout = '2s'; "
    "SET idle_in_transaction_session_timeout = '10s'";

struct HttpReply {
    unsigned status = 200;
    Json body;
    std::optional<std::string> text;     // sent as it is instead of the JSON body
    const char* content_type = nullptr;  // of `text`; nullptr: Prometheus's text/plain
    std::vector<std::pair<std::string, std::string>> headers;
};

HttpReply error(unsigned status, std::string err, std::string detail) {
    HttpReply r;
    r.status = status;
    r.body["error"] = std::move(err);
    r.body["detail"] = std::move(detail);
    return r;
}

// An operation's refusal as its answer: 404, 409 or 400, with the operation's reason.
HttpReply refusal(const ops::Error& e) {
    unsigned st = e.kind == ops::Error::not_found  ? 404
                  : e.kind == ops::Error::conflict ? 409
                                                   : 400;
    return error(st, st == 404 ? "not found" : st == 409 ? "conflict" : "bad request", e.what());
}

// Redis or PostgreSQL failed mid-operation (ctl::must / must_query).
HttpReply backend_failed(const std::runtime_error& e) {
    log::warn("admin API: backend failed", {{"error", e.what()}});
    return error(503, "backend unavailable", e.what());
}

// One pair of connections, used by one request at a time.
struct Session {
    explicit Session(const Config& cfg) : pg(cfg.postgres_dsn), redis(cfg, "admin") {}
    Pg pg;
    RedisConn redis;

    bool ensure_pg(std::string& err) {
        if (pg.ok()) {
            return true;
        }
        if (!pg.connect()) {
            err = pg.error();
            return false;
        }
        if (!pg.exec(kPgSessionSettings)) {
            err = pg.error();
            pg.close();
            return false;
        }
        return true;
    }
};

std::string client_address(MHD_Connection* c) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr) {
        return "";
    }
    char buf[INET6_ADDRSTRLEN] = {};
    const sockaddr* sa = info->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_UNIX) {
        return "unix";
    }
    return buf;
}

std::string header(MHD_Connection* c, const char* name) {
    const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

// The method against what the endpoint allows (HEAD is answered as GET, and `m` is set to the
// method to dispatch on), then a write's preconditions: same-site when from a browser, an admin
// token. nullopt when the request may go ahead; else the answer.
std::optional<HttpReply> refused(MHD_Connection* c, const AdminToken& token,
                                 std::string_view method, const std::string& allow,
                                 std::string& m) {
    m = method == "HEAD" ? "GET" : std::string(method);
    if (allow.find(m) == std::string::npos) {
        HttpReply r = error(405, "method not allowed", "this endpoint allows " + allow);
        r.headers.emplace_back("Allow", allow);
        return r;
    }
    if (m == "GET") {
        return std::nullopt;
    }
    std::string why;
    if (!browser_safe_write(header(c, "Origin"), header(c, "Host"), header(c, "Sec-Fetch-Site"),
                            why)) {
        return error(403, "cross-site request refused", why);
    }
    if (token.role != "admin") {
        return error(403, "forbidden",
                     "token '" + token.name + "' has the role " + token.role +
                         ", which only reads; writes need an admin token");
    }
    return std::nullopt;
}

enum MHD_Result collect_arg(void* cls, enum MHD_ValueKind, const char* key, const char* value) {
    auto* args = static_cast<std::map<std::string, std::string>*>(cls);
    (*args)[key ? key : ""] = value ? value : "";
    return MHD_YES;
}

struct Request {
    std::string body;
    bool answered = false;
};

// "/api/v1/dead-letters/42/retry" -> {"api", "v1", "dead-letters", "42", "retry"}
std::vector<std::string> segments(std::string_view path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
        size_t j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        if (j > i) {
            out.emplace_back(path.substr(i, j - i));
        }
        i = j + 1;
    }
    return out;
}

}  // namespace

struct Server::Impl {
    explicit Impl(const Config& c) : cfg(c), backend_cfg(c) {
        backend_cfg.redis_timeout_ms = std::min(c.redis_timeout_ms, kRedisTimeoutMs);
    }

    const Config& cfg;
    Config backend_cfg;  // the worker's, with the admin connections' shorter Redis timeout
    MHD_Daemon* daemon = nullptr;

    std::mutex pool_mu;
    std::vector<std::unique_ptr<Session>> idle;

    std::unique_ptr<Session> take() {
        {
            std::lock_guard lock(pool_mu);
            if (!idle.empty()) {
                auto s = std::move(idle.back());
                idle.pop_back();
                return s;
            }
        }
        return std::make_unique<Session>(backend_cfg);
    }
    void give(std::unique_ptr<Session> s) {
        std::lock_guard lock(pool_mu);
        if (idle.size() < kThreads) {
            idle.push_back(std::move(s));
        }
    }

    struct StatusCache {
        std::mutex mu;
        std::map<std::string, std::pair<uint64_t, Json>> by_scope;  // sources -> (steady ms, JSON)
    } status_cache;

    // /metrics: the counters live, the gauges from a snapshot a thread of ours refreshes with its
    // own connections, so a scrape never waits on Redis or PostgreSQL.
    struct Snapshot {
        std::mutex mu;
        std::condition_variable cv;
        bool stop = false;
        uint64_t last_scrape_ms = 0;  // steady clock; the refresh pauses when nobody scrapes
        uint64_t done_ms = 0;         // the last refresh, successful or not
        uint64_t ok_ms = 0;           // the last successful one
        Json status;                  // of the last successful refresh
        Json slo, health_checks;      // each of its last successful computation
        metrics::SnapshotInfo info;
        std::thread thread;
    } snap;
    void snapshot_loop();
    void refresh_snapshot(Session& s);
    HttpReply metrics_page(MHD_Connection* c);

    bool listen();
    HttpReply dispatch(MHD_Connection* c, std::string_view method, std::string_view url,
                       const std::string& body);
    HttpReply readyz();
    HttpReply health_reply(const std::string& bad_arg, const ops::Scope& scope,
                           std::unique_ptr<Session> s);
    HttpReply health_slo_reply(MHD_Connection* c, const AdminToken& token, std::string_view method,
                               const std::vector<std::string>& seg,
                               const std::map<std::string, std::string>& args);
    HttpReply api(MHD_Connection* c, const AdminToken& token, std::string_view method,
                  const std::vector<std::string>& seg,
                  const std::map<std::string, std::string>& args, const std::string& body);
    void send(MHD_Connection* c, HttpReply r);
    void send_ui(MHD_Connection* c, std::string_view method, std::string_view url);

    static enum MHD_Result on_request(void* cls, MHD_Connection* c, const char* url,
                                      const char* method, const char* version,
                                      const char* upload_data, size_t* upload_data_size,
                                      void** con_cls);
    static void on_completed(void* cls, MHD_Connection* c, void** con_cls,
                             enum MHD_RequestTerminationCode);
    static void on_log(void* cls, const char* fmt, va_list ap);
};

namespace {

int bind_listen(const AdminConfig& a, std::string& err) {
    int fd = -1;
    if (!a.unix_path.empty()) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        if (a.unix_path.size() >= sizeof sa.sun_path) {
            err = "unix socket path too long";
            return -1;
        }
        std::memcpy(sa.sun_path, a.unix_path.c_str(), a.unix_path.size() + 1);
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        // A socket left by a previous run would make bind fail; only a socket is removed.
        struct stat st {};
        if (::lstat(a.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
            ::unlink(a.unix_path.c_str());
        }
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
            ::chmod(a.unix_path.c_str(), 0660) != 0) {
            err = std::strerror(errno);
            if (fd >= 0) {
                ::close(fd);
            }
            return -1;
        }
    } else {
        sockaddr_storage ss{};
        socklen_t len;
        if (a.host.find(':') != std::string::npos) {
            auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(static_cast<uint16_t>(a.port));
            inet_pton(AF_INET6, a.host.c_str(), &s6->sin6_addr);
            len = sizeof *s6;
        } else {
            auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
            s4->sin_family = AF_INET;
            s4->sin_port = htons(static_cast<uint16_t>(a.port));
            inet_pton(AF_INET, a.host.c_str(), &s4->sin_addr);
            len = sizeof *s4;
        }
        fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0) {
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        }
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
            err = std::strerror(errno);
            if (fd >= 0) {
                ::close(fd);
            }
            return -1;
        }
    }
    if (::listen(fd, 128) != 0) {
        err = std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

bool Server::Impl::listen() {
    std::string err;
    int fd = bind_listen(cfg.admin, err);
    if (fd < 0) {
        log::error("admin API cannot listen", {{"listen", cfg.admin.listen}, {"error", err}});
        return false;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    daemon = MHD_start_daemon(
        flags, 0, nullptr, nullptr, &Impl::on_request, this, MHD_OPTION_EXTERNAL_LOGGER,
        &Impl::on_log, this, MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
        MHD_OPTION_THREAD_POOL_SIZE, kThreads, MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
        MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        kConnectionMemory, MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, this, MHD_OPTION_END);
    if (!daemon) {
        ::close(fd);
        log::error("admin API cannot start", {{"listen", cfg.admin.listen}});
        return false;
    }
    log::info("admin API listening",
              {{"listen", cfg.admin.listen}, {"tokens", cfg.admin.tokens.size()}});
    return true;
}

void Server::Impl::on_log(void*, const char* fmt, va_list ap) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = std::strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    log::warn("admin API", {{"detail", buf}});
}

void Server::Impl::on_completed(void*, MHD_Connection*, void** con_cls,
                                enum MHD_RequestTerminationCode) {
    delete static_cast<Request*>(*con_cls);
    *con_cls = nullptr;
}

void Server::Impl::send(MHD_Connection* c, HttpReply r) {
    std::string text =
        r.text ? std::move(*r.text)
               : r.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    MHD_Response* resp =
        MHD_create_response_from_buffer(text.size(), text.data(), MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type",
                            r.content_type ? r.content_type
                            : r.text       ? "text/plain; version=0.0.4; charset=utf-8"
                                           : "application/json");
    // JSON only, never rendered: payloads are attacker-controlled, so a browser must neither sniff
    // them into HTML nor frame or cache them.
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    for (const auto& [k, v] : r.headers) {
        MHD_add_response_header(resp, k.c_str(), v.c_str());
    }
    MHD_queue_response(c, r.status, resp);
    MHD_destroy_response(resp);
}

// The dashboard: static files that need no token (the page asks for one and sends it on its own
// fetches, never as a cookie). The policy allows nothing inline and nothing from elsewhere, so even
// a payload that reached the DOM as markup could not run.
void Server::Impl::send_ui(MHD_Connection* c, std::string_view method, std::string_view url) {
    if (method != "GET" && method != "HEAD") {
        HttpReply r = error(405, "method not allowed", "use GET");
        r.headers.emplace_back("Allow", "GET, HEAD");
        send(c, std::move(r));
        return;
    }
    if (url == "/ui") {
        // The page's relative URLs resolve against /ui/, not /. Relative itself, so it also holds
        // behind a proxy that mounts the worker under a prefix.
        MHD_Response* resp = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(resp, "Location", "ui/");
        MHD_queue_response(c, 301, resp);
        MHD_destroy_response(resp);
        return;
    }
    std::string_view name = url.substr(4);
    if (name.empty()) {
        name = "index.html";
    }
    const UiAsset* asset = nullptr;
    for (const auto& a : ui_assets()) {
        if (a.path == name) {
            asset = &a;
        }
    }
    if (!asset) {
        send(c, error(404, "not found", "no such file in the dashboard"));
        return;
    }
    MHD_Response* resp = MHD_create_response_from_buffer(
        asset->body.size(), const_cast<char*>(asset->body.data()), MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", std::string(asset->mime).c_str());
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    // Revalidated each load: after an upgrade the page and its script must not mix versions.
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
}

enum MHD_Result Server::Impl::on_request(void* cls, MHD_Connection* c, const char* url,
                                         const char* method, const char*, const char* upload_data,
                                         size_t* upload_data_size, void** con_cls) {
    auto* self = static_cast<Impl*>(cls);
    auto* rq = static_cast<Request*>(*con_cls);
    if (!rq) {
        rq = new Request;
        *con_cls = rq;
        // Refused before a byte of the body is read.
        std::string cl = header(c, "Content-Length");
        if (!cl.empty() && (cl.size() > 12 || std::strtoull(cl.c_str(), nullptr, 10) > kMaxBody)) {
            rq->answered = true;
            self->send(c, error(413, "request body too large",
                                "at most " + std::to_string(kMaxBody) + " bytes"));
        }
        return MHD_YES;
    }
    if (rq->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (rq->body.size() + *upload_data_size > kMaxBody) {
            // A chunked body past the limit: no answer can be queued mid-upload, so hang up.
            return MHD_NO;
        }
        rq->body.append(upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    rq->answered = true;
    if (std::string_view path(url); path == "/ui" || path.starts_with("/ui/")) {
        self->send_ui(c, method, path);
        return MHD_YES;
    }
    HttpReply r;
    try {
        r = self->dispatch(c, method, url, rq->body);
    } catch (const std::exception& e) {
        log::error("admin API request failed", {{"path", url}, {"error", e.what()}});
        r = error(500, "internal error", "see the worker's log");
    }
    self->send(c, std::move(r));
    return MHD_YES;
}

HttpReply Server::Impl::readyz() {
    auto s = take();
    Json j;
    std::string err;
    bool pg_ok = s->ensure_pg(err);
    if (pg_ok) {
        PgResult r = s->pg.query("SELECT 1");
        if (!r && !s->pg.ok() && s->ensure_pg(err)) {
            r = s->pg.query("SELECT 1");  // the pooled connection was stale: one fresh try
        }
        pg_ok = r != nullptr;
        err = pg_ok ? "" : s->pg.error();
    }
    auto ping = [&] {
        hookq::Reply rp = s->redis.command({"PING"});
        return rp && rp->type == REDIS_REPLY_STATUS;
    };
    bool redis_ok = ping() || (!s->redis.connected() && ping());
    if (!pg_ok) {
        log::warn("admin readyz: PostgreSQL unavailable", {{"error", err}});
    }
    if (!redis_ok) {
        log::warn("admin readyz: Redis unavailable", {{"error", s->redis.last_error()}});
    }
    give(std::move(s));
    // No error text here: /readyz answers without a token, and the reasons are in the log.
    j["status"] = pg_ok && redis_ok ? "ready" : "not ready";
    j["redis"] = redis_ok ? "ok" : "unavailable";
    j["postgres"] = pg_ok ? "ok" : "unavailable";
    HttpReply r;
    r.status = pg_ok && redis_ok ? 200 : 503;
    r.body = j;
    return r;
}

// /api/v1/health answers when a backend is down too: that is when it matters. Unreachable Redis or
// PostgreSQL makes the sources unhealthy (200, with the reasons), where other endpoints answer 503.
HttpReply Server::Impl::health_reply(const std::string& bad_arg, const ops::Scope& scope,
                                     std::unique_ptr<Session> s) {
    if (!bad_arg.empty()) {
        give(std::move(s));
        return error(400, "bad request", "unknown parameter '" + bad_arg + "'");
    }
    std::string err;
    if (!s->ensure_pg(err)) {
        log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
    }
    HttpReply r;
    r.body = ops::health(s->redis, s->pg, cfg, scope);
    give(std::move(s));
    return r;
}

// GET /api/v1/destinations/health (Redis only) and GET /api/v1/slo (Redis and PostgreSQL).
HttpReply Server::Impl::health_slo_reply(MHD_Connection*, const AdminToken& token,
                                         std::string_view method,
                                         const std::vector<std::string>& seg,
                                         const std::map<std::string, std::string>& args) {
    if (method != "GET" && method != "HEAD") {
        HttpReply r = error(405, "method not allowed", "this endpoint allows GET, HEAD");
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
    }
    if (!args.empty()) {
        return error(400, "bad request", "unknown parameter '" + args.begin()->first + "'");
    }
    ops::Scope scope;
    if (!token.sources.empty()) {
        scope.sources = token.sources;
    }
    bool slo = seg[2] == "slo";
    auto session = take();
    HttpReply r;
    try {
        std::string err;
        if (slo && !session->ensure_pg(err)) {
            log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
            give(std::move(session));
            return error(503, "PostgreSQL unavailable", "see the worker's log");
        }
        r.body = slo ? ops::slo(session->redis, session->pg, cfg, scope)
                     : ops::health_checks(session->redis, cfg, scope);
    } catch (const std::runtime_error& e) {
        r = backend_failed(e);
    }
    give(std::move(session));
    return r;
}

HttpReply Server::Impl::dispatch(MHD_Connection* c, std::string_view method, std::string_view url,
                                 const std::string& body) {
    bool get = method == "GET" || method == "HEAD";
    if (url == "/metrics") {
        if (!get) {
            HttpReply r = error(405, "method not allowed", "use GET");
            r.headers.emplace_back("Allow", "GET, HEAD");
            return r;
        }
        return metrics_page(c);
    }
    if (url == "/healthz" || url == "/readyz") {
        if (!get) {
            HttpReply r = error(405, "method not allowed", "use GET");
            r.headers.emplace_back("Allow", "GET, HEAD");
            return r;
        }
        if (url == "/healthz") {
            HttpReply r;
            r.body["status"] = "alive";
            return r;
        }
        return readyz();
    }
    auto seg = segments(url);
    if (seg.size() < 2 || seg[0] != "api" || seg[1] != "v1") {
        return error(404, "not found", "the API is under /api/v1/");
    }
    if (seg.size() == 3 && seg[2] == "openapi.json") {
        // The API's description: public like the dashboard's files, it says nothing of the data.
        if (!get) {
            HttpReply r = error(405, "method not allowed", "use GET");
            r.headers.emplace_back("Allow", "GET, HEAD");
            return r;
        }
        HttpReply r;
        r.text = std::string(openapi_document());
        r.content_type = "application/json";
        return r;
    }
    std::string authz = header(c, "Authorization");
    const AdminToken* token = authenticate(cfg.admin.tokens, authz);
    if (!token) {
        // Logged without the header: a wrong token may be a real one pasted into the wrong place.
        log::info("admin API request refused",
                  {{"path", url}, {"status", 401}, {"remote_addr", client_address(c)}});
        HttpReply r = error(401, "unauthorized",
                            authz.empty() ? "send Authorization: Bearer <token>"
                                          : "the bearer token is not one of [admin]'s tokens");
        r.headers.emplace_back("WWW-Authenticate", authz.empty() ? "Bearer realm=\"hookq\""
                                                                 : "Bearer realm=\"hookq\", "
                                                                   "error=\"invalid_token\"");
        return r;
    }
    std::map<std::string, std::string> args;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &collect_arg, &args);
    HttpReply r = api(c, *token, method, seg, args, body);
    bool write = !get;
    if (write || r.status >= 400) {
        log::info("admin API request", {{"method", method},
                                        {"path", url},
                                        {"status", r.status},
                                        {"token", token->name},
                                        {"remote_addr", client_address(c)}});
    }
    return r;
}

// Alerting (issue #7): /api/v1/alerts, /api/v1/alerts/events, /api/v1/silences[/{id}], all in
// ops/alerts; the engine (worker/alerts/) writes the rows these read.
namespace {
HttpReply alerts_api(MHD_Connection* c, const Config& cfg, const AdminToken& token,
                     std::string_view method, const std::vector<std::string>& seg,
                     const std::map<std::string, std::string>& args, const std::string& body,
                     Session& s) {
    std::string allow;
    if (seg.size() == 3 && seg[2] == "alerts") {
        allow = "GET, HEAD";
    } else if (seg.size() == 4 && seg[2] == "alerts" && seg[3] == "events") {
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "silences") {
        allow = "GET, HEAD, POST";
    } else if (seg.size() == 4 && seg[2] == "silences") {
        allow = "DELETE";
    } else {
        return error(404, "not found", "no such endpoint");
    }
    std::string m;
    if (auto no = refused(c, token, method, allow, m)) {
        return *no;
    }
    ops::Scope scope;
    if (!token.sources.empty()) {
        scope.sources = token.sources;
    }
    ops::AlertScope ascope = ops::alert_scope(cfg, scope);
    ops::Actor actor{token.name, token.role, client_address(c), header(c, "User-Agent"), "api"};
    HttpReply r;
    try {
        std::string err;
        if (!s.ensure_pg(err)) {
            log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
            return error(503, "PostgreSQL unavailable", "see the worker's log");
        }
        if (seg[2] == "alerts" && seg.size() == 3) {
            r.body = ops::list_alerts(s.pg, &s.redis, args, ascope);
        } else if (seg[2] == "alerts") {
            r.body = ops::list_alert_events(s.pg, args, ascope);
        } else if (m == "GET") {
            r.body = ops::list_silences(s.pg, args, ascope);
        } else if (!args.empty()) {
            r = error(400, "bad request", "unknown parameter '" + args.begin()->first + "'");
        } else if (m == "DELETE") {
            r.body = ops::expire_silence(s.pg, seg[3], actor, ascope);
        } else if (!header(c, "Content-Type").starts_with("application/json")) {
            r = error(415, "unsupported media type",
                      "the body is JSON (Content-Type: application/json)");
        } else {
            auto req = Json::parse(body, nullptr, false);
            if (req.is_discarded()) {
                r = error(400, "bad request", "the body is not valid JSON");
            } else {
                r.body = ops::create_silence(s.pg, req, actor, ascope);
                r.status = 201;
            }
        }
    } catch (const ops::Error& e) {
        r = refusal(e);
    } catch (const std::runtime_error& e) {
        r = backend_failed(e);
    }
    return r;
}
}  // namespace

// Pauses (issue #9): GET /api/v1/pauses, POST /api/v1/{routes,sources}/{name}/{pause,resume}, in
// ops/pauses; the route stage of every worker reads what these write.
namespace {
HttpReply pauses_api(MHD_Connection* c, const Config& cfg, const AdminToken& token,
                     std::string_view method, const std::vector<std::string>& seg,
                     const std::map<std::string, std::string>& args, const std::string& body,
                     Session& s) {
    bool list = seg.size() == 3;
    std::string m(method == "HEAD" ? "GET" : method);
    std::string allow = list ? "GET, HEAD" : "POST";
    if (allow.find(m) == std::string::npos) {
        HttpReply r = error(405, "method not allowed", "this endpoint allows " + allow);
        r.headers.emplace_back("Allow", allow);
        return r;
    }
    if (!list) {
        std::string why;
        if (!browser_safe_write(header(c, "Origin"), header(c, "Host"), header(c, "Sec-Fetch-Site"),
                                why)) {
            return error(403, "cross-site request refused", why);
        }
        if (token.role != "admin") {
            return error(403, "forbidden",
                         "token '" + token.name + "' has the role " + token.role +
                             ", which only reads; writes need an admin token");
        }
    }
    if (!args.empty()) {
        return error(400, "bad request", "unknown parameter '" + args.begin()->first + "'");
    }
    ops::Scope scope;
    if (!token.sources.empty()) {
        scope.sources = token.sources;
    }
    ops::Actor actor{token.name, token.role, client_address(c), header(c, "User-Agent"), "api"};
    HttpReply r;
    try {
        if (list) {
            r.body = ops::list_pauses(s.redis, cfg, scope);
            return r;
        }
        std::string err;
        if (!s.ensure_pg(err)) {
            log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
            return error(503, "PostgreSQL unavailable", "see the worker's log");
        }
        std::string kind = seg[2] == "routes" ? "route" : "source";
        if (seg[4] == "resume") {
            r.body = ops::resume(s.redis, s.pg, cfg, kind, seg[3], actor, scope);
            return r;
        }
        std::string reason;
        if (!body.empty()) {
            if (!header(c, "Content-Type").starts_with("application/json")) {
                return error(415, "unsupported media type",
                             "the body, when given, is JSON (Content-Type: application/json)");
            }
            auto o = Json::parse(body, nullptr, false);
            if (!o.is_object()) {
                return error(400, "bad request", "the body must be a JSON object");
            }
            for (const auto& [k, v] : o.items()) {
                if (k != "reason" || !v.is_string()) {
                    return error(400, "bad request",
                                 "unknown or mistyped field '" + k + "' (reason: string)");
                }
                reason = v.get<std::string>();
            }
        }
        r.body = ops::pause(s.redis, s.pg, cfg, kind, seg[3], reason, actor, scope);
    } catch (const ops::Error& e) {
        r = refusal(e);
    } catch (const std::runtime_error& e) {
        r = backend_failed(e);
    }
    return r;
}
}  // namespace

HttpReply Server::Impl::api(MHD_Connection* c, const AdminToken& token, std::string_view method,
                            const std::vector<std::string>& seg,
                            const std::map<std::string, std::string>& args,
                            const std::string& body) {
    // Destination health checks and SLO status: read-only, answered on their own.
    if ((seg.size() == 3 && seg[2] == "slo") ||
        (seg.size() == 4 && seg[2] == "destinations" && seg[3] == "health")) {
        return health_slo_reply(c, token, method, seg, args);
    }
    if ((seg.size() == 3 && seg[2] == "pauses") ||
        (seg.size() == 5 && (seg[2] == "routes" || seg[2] == "sources") &&
         (seg[4] == "pause" || seg[4] == "resume"))) {
        auto session = take();
        HttpReply r = pauses_api(c, cfg, token, method, seg, args, body, *session);
        give(std::move(session));
        return r;
    }
    if (seg.size() >= 3 && (seg[2] == "alerts" || seg[2] == "silences")) {
        auto session = take();
        HttpReply r = alerts_api(c, cfg, token, method, seg, args, body, *session);
        give(std::move(session));
        return r;
    }
    // Replays (ops/replay.h): /replays (GET list, POST create or dry run), /replays/{id},
    // /replays/{id}/cancel and /resume. Answered here, before the other endpoints' dispatch.
    if (seg.size() >= 3 && seg[2] == "replays") {
        std::string allow;
        if (seg.size() == 3) {
            allow = "GET, HEAD, POST";
        } else if (seg.size() == 4) {
            allow = "GET, HEAD";
        } else if (seg.size() == 5 && (seg[4] == "cancel" || seg[4] == "resume")) {
            allow = "POST";
        } else {
            return error(404, "not found", "no such endpoint");
        }
        std::string m;
        if (auto no = refused(c, token, method, allow, m)) {
            return *no;
        }
        if (!args.empty()) {
            return error(400, "bad request", "unknown parameter '" + args.begin()->first + "'");
        }
        ops::Scope scope;
        if (!token.sources.empty()) {
            scope.sources = token.sources;
        }
        ops::Actor actor{token.name, token.role, client_address(c), header(c, "User-Agent"), "api"};
        auto session = take();
        HttpReply r;
        try {
            std::string err;
            if (!session->ensure_pg(err)) {
                log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
                give(std::move(session));
                return error(503, "PostgreSQL unavailable", "see the worker's log");
            }
            Pg& pg = session->pg;
            if (seg.size() == 3 && m == "GET") {
                r.body = ops::list_replays(pg, scope);
            } else if (seg.size() == 3) {
                if (!header(c, "Content-Type").starts_with("application/json")) {
                    r = error(415, "unsupported media type",
                              "the body is JSON (Content-Type: application/json)");
                } else {
                    nlohmann::json o = nlohmann::json::parse(body, nullptr, false);
                    if (o.is_discarded()) {
                        throw ops::Error(ops::Error::bad_request, "the body is not valid JSON");
                    }
                    auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
                    ops::ReplayRequest req = ops::parse_replay_request(o, now);
                    if (req.dry_run) {
                        r.body = ops::preview_replay(pg, req, scope);
                    } else {
                        r.body = ops::create_replay(pg, req, actor, scope);
                        r.status = 201;
                    }
                }
            } else if (seg.size() == 4) {
                r.body = ops::get_replay(pg, seg[3], scope);
            } else if (seg[4] == "cancel") {
                r.body = ops::cancel_replay(pg, seg[3], actor, scope);
            } else {
                r.body = ops::resume_replay(pg, seg[3], actor, scope);
            }
        } catch (const ops::ConfirmationRequired& e) {
            r = error(409, "confirmation required", e.what());
            r.body["count"] = e.count;
        } catch (const ops::Error& e) {
            r = refusal(e);
        } catch (const std::runtime_error& e) {
            r = backend_failed(e);
        }
        give(std::move(session));
        return r;
    }
    // Loops (ops/loops.h): GET /loops, POST /loops/{queue}/release, DELETE /loops/{queue}.
    if (seg.size() >= 3 && seg[2] == "loops") {
        std::string allow;
        if (seg.size() == 3) {
            allow = "GET, HEAD";
        } else if (seg.size() == 4) {
            allow = "DELETE";
        } else if (seg.size() == 5 && seg[4] == "release") {
            allow = "POST";
        } else {
            return error(404, "not found", "no such endpoint");
        }
        std::string m(method == "HEAD" ? "GET" : method);
        if (allow.find(m) == std::string::npos) {
            HttpReply r = error(405, "method not allowed", "this endpoint allows " + allow);
            r.headers.emplace_back("Allow", allow);
            return r;
        }
        if (m != "GET") {
            std::string why;
            if (!browser_safe_write(header(c, "Origin"), header(c, "Host"),
                                    header(c, "Sec-Fetch-Site"), why)) {
                return error(403, "cross-site request refused", why);
            }
            if (token.role != "admin") {
                return error(403, "forbidden",
                             "token '" + token.name + "' has the role " + token.role +
                                 ", which only reads; writes need an admin token");
            }
        }
        // Queues are not tied to sources in the configuration: a token limited to some sources
        // could otherwise read (or release) another source's entities.
        if (!token.sources.empty()) {
            return error(403, "forbidden",
                         "token '" + token.name +
                             "' is limited to some sources; loops are per "
                             "queue and need an unrestricted token");
        }
        if (!args.empty()) {
            return error(400, "bad request", "unknown parameter '" + args.begin()->first + "'");
        }
        ops::Actor actor{token.name, token.role, client_address(c), header(c, "User-Agent"), "api"};
        auto session = take();
        HttpReply r;
        try {
            std::string err;
            if (m != "GET" && !session->ensure_pg(err)) {
                log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
                give(std::move(session));
                return error(503, "PostgreSQL unavailable", "see the worker's log");
            }
            if (m == "GET") {
                r.body = ops::list_loops(session->redis, cfg.queues);
            } else if (m == "POST") {
                r.body = ops::release_loops(session->redis, session->pg, seg[3], actor, cfg.queues);
            } else {
                r.body = ops::clear_loops(session->redis, session->pg, seg[3], actor, cfg.queues);
            }
        } catch (const ops::Error& e) {
            r = refusal(e);
        } catch (const std::runtime_error& e) {
            r = backend_failed(e);
        }
        give(std::move(session));
        return r;
    }
    // Which endpoint, and which methods it has.
    enum {
        status,
        dl_list,
        dl_one,
        dl_retry,
        ev_list,
        ev_one,
        br_list,
        br_one,
        br_reset,
        routes,
        stats,
        health
    } ep;
    std::string allow;
    // A destination is scheme://host:port: URL-encoded or not, its "//" has split it into
    // segments ("http:", "host:port") by the time the path is parsed.
    std::string destination;
    auto join_destination = [&](size_t from, size_t to) {
        for (size_t i = from; i < to; ++i) {
            destination += i == from                                     ? ""
                           : (i == from + 1 && seg[from].ends_with(':')) ? "//"
                                                                         : "/";
            destination += seg[i];
        }
    };
    if (seg.size() == 3 && seg[2] == "breakers") {
        ep = br_list;
        allow = "GET, HEAD";
    } else if (seg.size() >= 5 && seg[2] == "breakers" && seg.back() == "reset") {
        ep = br_reset;
        allow = "POST";
        join_destination(3, seg.size() - 1);
    } else if (seg.size() >= 4 && seg[2] == "breakers") {
        ep = br_one;
        allow = "GET, HEAD";
        join_destination(3, seg.size());
    } else if (seg.size() == 3 && seg[2] == "routes") {
        ep = routes;
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "events") {
        ep = ev_list;
        allow = "GET, HEAD";
    } else if (seg.size() == 4 && seg[2] == "events") {
        ep = ev_one;
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "stats") {
        ep = stats;
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "health") {
        ep = health;
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "status") {
        ep = status;
        allow = "GET, HEAD";
    } else if (seg.size() == 3 && seg[2] == "dead-letters") {
        ep = dl_list;
        allow = "GET, HEAD";
    } else if (seg.size() == 4 && seg[2] == "dead-letters") {
        ep = dl_one;
        allow = "GET, HEAD, DELETE";
    } else if (seg.size() == 5 && seg[2] == "dead-letters" && seg[4] == "retry") {
        ep = dl_retry;
        allow = "POST";
    } else {
        return error(404, "not found", "no such endpoint");
    }
    std::string m;
    if (auto no = refused(c, token, method, allow, m)) {
        return *no;
    }
    auto allowed_args = [&](std::initializer_list<std::string_view> names) -> std::string {
        for (const auto& [k, v] : args) {
            bool ok = false;
            for (auto n : names) {
                ok = ok || k == n;
            }
            if (!ok) {
                return k;
            }
        }
        return "";
    };
    ops::Scope scope;
    if (!token.sources.empty()) {
        scope.sources = token.sources;
    }
    ops::Actor actor{token.name, token.role, client_address(c), header(c, "User-Agent"), "api"};

    auto session = take();
    HttpReply r;
    if (ep == health) {
        return health_reply(allowed_args({}), scope, std::move(session));
    }
    try {
        std::string err;
        if (!session->ensure_pg(err)) {
            log::warn("admin API: PostgreSQL unavailable", {{"error", err}});
            give(std::move(session));
            return error(503, "PostgreSQL unavailable", "see the worker's log");
        }
        switch (ep) {
            case status: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                std::string key = "*";
                if (scope.sources) {
                    key = ops::pg_text_array(*scope.sources);
                }
                uint64_t now = steady_ms();
                {
                    std::lock_guard lock(status_cache.mu);
                    auto it = status_cache.by_scope.find(key);
                    if (it != status_cache.by_scope.end() &&
                        now - it->second.first < kStatusCacheMs) {
                        r.body = it->second.second;
                        break;
                    }
                }
                r.body = ops::status(session->redis, session->pg, cfg, cfg.queues, scope);
                std::lock_guard lock(status_cache.mu);
                status_cache.by_scope[key] = {now, r.body};
                break;
            }
            case br_list:
            case br_one:
            case br_reset: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                auto only = ops::scope_destinations(cfg, scope);
                if (ep == br_list) {
                    r.body =
                        ops::list_breakers(session->redis, ops::known_destinations(cfg, scope));
                } else if (ep == br_one) {
                    r.body = ops::get_breaker(session->redis, destination, only);
                } else {
                    r.body =
                        ops::reset_breaker(session->redis, session->pg, destination, actor, only);
                }
                break;
            }
            case routes: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                r.body = ops::list_routes(session->pg, session->redis, cfg, scope);
                break;
            }
            case stats: {
                ops::StatsQuery q = ops::parse_stats_query(args);
                if (!q.source.empty() && !scope.allows(q.source)) {
                    r = error(403, "forbidden",
                              "token '" + token.name + "' may not see source '" + q.source + "'");
                    break;
                }
                r.body = ops::stats(session->pg, cfg, q, scope);
                break;
            }
            case health:
                break;  // answered above
            case ev_list: {
                ops::EventQuery q = ops::parse_event_query(args);
                if (!q.source.empty() && !scope.allows(q.source)) {
                    r = error(403, "forbidden",
                              "token '" + token.name + "' may not see source '" + q.source + "'");
                    break;
                }
                r.body = ops::list_events(session->pg, q, scope);
                break;
            }
            case ev_one: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                r.body = ops::get_event(session->pg, seg[3], scope);
                break;
            }
            case dl_list: {
                if (auto bad =
                        allowed_args({"source", "route", "cursor", "limit", "include_requeued"});
                    !bad.empty()) {
                    r = error(400, "bad request",
                              "unknown parameter '" + bad +
                                  "' (source, route, cursor, limit, include_requeued)");
                    break;
                }
                ops::DeadLetterQuery q;
                auto get = [&](const char* k) {
                    auto it = args.find(k);
                    return it == args.end() ? std::string() : it->second;
                };
                q.source = get("source");
                q.route = get("route");
                q.cursor = get("cursor");
                std::string limit = get("limit");
                if (!limit.empty()) {
                    if (limit.size() > 6 ||
                        limit.find_first_not_of("0123456789") != std::string::npos) {
                        r = error(400, "bad request",
                                  "limit must be a number from 1 to " +
                                      std::to_string(ops::kMaxDeadLetterPage));
                        break;
                    }
                    q.limit = std::stoi(limit);
                }
                std::string inc = get("include_requeued");
                if (!inc.empty() && inc != "true" && inc != "false") {
                    r = error(400, "bad request", "include_requeued must be true or false");
                    break;
                }
                q.include_requeued = inc == "true";
                if (!q.source.empty() && !scope.allows(q.source)) {
                    r = error(403, "forbidden",
                              "token '" + token.name + "' may not see source '" + q.source + "'");
                    break;
                }
                r.body = ops::list_dead_letters(session->pg, q, scope);
                break;
            }
            case dl_one: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                if (m == "GET") {
                    r.body = ops::get_dead_letter(session->pg, seg[3], scope);
                } else {
                    r.body = ops::delete_dead_letter(session->pg, seg[3], actor, scope);
                }
                break;
            }
            case dl_retry: {
                if (auto bad = allowed_args({}); !bad.empty()) {
                    r = error(400, "bad request", "unknown parameter '" + bad + "'");
                    break;
                }
                ops::RetryRequest req;
                if (!body.empty()) {
                    std::string ct = header(c, "Content-Type");
                    if (!ct.starts_with("application/json")) {
                        r = error(415, "unsupported media type",
                                  "the body, when given, is JSON (Content-Type: "
                                  "application/json)");
                        break;
                    }
                    nlohmann::json o = nlohmann::json::parse(body, nullptr, false);
                    if (!o.is_object()) {
                        r = error(400, "bad request", "the body must be a JSON object");
                        break;
                    }
                    for (const auto& [k, v] : o.items()) {
                        if (k == "queue" && v.is_string()) {
                            req.queue = v.get<std::string>();
                        } else if (k == "force" && v.is_boolean()) {
                            req.force = v.get<bool>();
                        } else if (k == "dry_run" && v.is_boolean()) {
                            req.dry_run = v.get<bool>();
                        } else {
                            r = error(400, "bad request",
                                      "unknown or mistyped field '" + k +
                                          "' (queue: string, force: bool, dry_run: bool)");
                            break;
                        }
                    }
                    if (r.status != 200) {
                        break;
                    }
                }
                auto res = ops::retry_dead_letter(session->pg, session->redis, cfg, seg[3], req,
                                                  actor, scope);
                switch (res.outcome) {
                    case ops::RetryOutcome::requeued:
                    case ops::RetryOutcome::would_requeue:
                        r.body = res.json;
                        break;
                    case ops::RetryOutcome::not_found:
                        r = error(404, "not found", "no dead letter " + seg[3]);
                        break;
                    case ops::RetryOutcome::gone:
                    case ops::RetryOutcome::already_requeued:
                        r = error(409, "conflict", res.json.value("why", ""));
                        break;
                }
                break;
            }
        }
    } catch (const ops::Error& e) {
        r = refusal(e);
    } catch (const std::runtime_error& e) {
        r = backend_failed(e);
    }
    give(std::move(session));
    return r;
}

namespace {
// A refresh runs only while someone scrapes: an unwatched worker puts no load on PostgreSQL.
constexpr uint64_t kScrapeIdleMs = 120 * 1000;
}  // namespace

HttpReply Server::Impl::metrics_page(MHD_Connection* c) {
    if (!cfg.admin.metrics_public) {
        std::string authz = header(c, "Authorization");
        const AdminToken* token = authenticate(cfg.admin.tokens, authz);
        if (!token) {
            log::info("admin API request refused",
                      {{"path", "/metrics"}, {"status", 401}, {"remote_addr", client_address(c)}});
            HttpReply r = error(401, "unauthorized",
                                authz.empty() ? "send Authorization: Bearer <token> (any role), "
                                                "or set [admin] metrics_public = true"
                                              : "the bearer token is not one of [admin]'s tokens");
            r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hookq\"");
            return r;
        }
        if (!token->sources.empty()) {
            // Metrics name every route, destination and queue: more than a limited token may see.
            return error(
                403, "forbidden",
                "token '" + token->name + "' is limited to some sources; /metrics covers them all");
        }
    }
    HttpReply r;
    std::string text = metrics::global().render();
    {
        std::lock_guard lock(snap.mu);
        uint64_t now = steady_ms();
        bool first = snap.last_scrape_ms == 0 || now - snap.last_scrape_ms >= kScrapeIdleMs;
        snap.last_scrape_ms = now;
        metrics::SnapshotInfo info = snap.info;
        info.age_s = snap.ok_ms ? static_cast<double>(now - snap.ok_ms) / 1000.0 : -1;
        text += metrics::render_snapshot(snap.status, info);
        text += metrics::render_health_slo(snap.health_checks, snap.slo);
        if (first) {
            snap.cv.notify_all();  // the refresh was paused: start it now
        }
    }
    r.text = std::move(text);
    return r;
}

namespace {

// What a lost Redis Cluster master kept the snapshot from reading (its queues, or the fleet-wide
// breakers and pauses) keeps the last values read: gauges that dropped to nothing would resolve
// the very alerts that matter then. hookq_queue_up says which queues are stale.
void keep_last_of_unreachable(Json& now, const Json& last) {
    if (last.is_null()) {
        return;
    }
    for (Json& q : now["queues"]) {
        if (q.value("reachable", true)) {
            continue;
        }
        for (const Json& old : last.value("queues", Json::array())) {
            if (old.value("queue", "") == q.value("queue", "") && old.contains("depth")) {
                for (const auto& [k, v] : old.items()) {
                    if (!q.contains(k)) {
                        q[k] = v;
                    }
                }
            }
        }
    }
    for (const char* k : {"breakers", "pauses", "routes_paused", "sources_paused"}) {
        if (!now.contains(k) && last.contains(k)) {
            now[k] = last[k];
        }
    }
}

}  // namespace

void Server::Impl::refresh_snapshot(Session& s) {
    uint64_t t0 = steady_ms();
    std::string err;
    bool pg_ok = s.ensure_pg(err);
    if (pg_ok) {
        PgResult pr = s.pg.query("SELECT 1");
        if (!pr && !s.pg.ok() && s.ensure_pg(err)) {
            pr = s.pg.query("SELECT 1");  // the connection was stale: one fresh try
        }
        pg_ok = pr != nullptr;
        err = pg_ok ? "" : s.pg.error();
    }
    auto ping = [&] {
        hookq::Reply rp = s.redis.command({"PING"});
        return rp && rp->type == REDIS_REPLY_STATUS;
    };
    bool redis_ok = ping() || (!s.redis.connected() && ping());
    Json st;
    bool ok = false;
    if (pg_ok && redis_ok) {
        try {
            st = ops::status(s.redis, s.pg, cfg, cfg.queues);
            ok = true;
        } catch (const std::exception& e) {
            err = e.what();
        }
    } else if (!redis_ok) {
        err = s.redis.last_error();
    }
    // The SLO status and the health checks' results for their gauges, computed here so that a
    // scrape never waits on them; each keeps its last value when it fails.
    Json slo, checks;
    if (redis_ok) {
        try {
            checks = ops::health_checks(s.redis, cfg);
            if (pg_ok) {
                slo = ops::slo(s.redis, s.pg, cfg);
            }
        } catch (const std::exception& e) {
            log::debug("metrics snapshot: SLO or health checks failed", {{"error", e.what()}});
        }
    }
    uint64_t now = steady_ms();
    std::lock_guard lock(snap.mu);
    if (!ok && (snap.info.ok || snap.done_ms == 0)) {
        log::warn("metrics snapshot failed; /metrics keeps the last one",
                  {{"error", err}, {"redis", redis_ok}, {"postgres", pg_ok}});
    }
    snap.info.ok = ok;
    snap.info.redis_up = redis_ok;
    snap.info.postgres_up = pg_ok;
    snap.info.duration_s = static_cast<double>(now - t0) / 1000.0;
    snap.done_ms = now;
    if (ok) {
        keep_last_of_unreachable(st, snap.status);
        snap.status = std::move(st);
        snap.ok_ms = now;
    }
    if (!checks.is_null()) {
        snap.health_checks = std::move(checks);
    }
    if (!slo.is_null()) {
        snap.slo = std::move(slo);
    }
}

void Server::Impl::snapshot_loop() {
    Session s(backend_cfg);
    std::unique_lock lock(snap.mu);
    while (!snap.stop) {
        uint64_t now = steady_ms();
        bool watched = snap.last_scrape_ms != 0 && now - snap.last_scrape_ms < kScrapeIdleMs;
        uint64_t due = snap.done_ms + cfg.admin.metrics_refresh_ms;
        if (!watched || (snap.done_ms != 0 && now < due)) {
            uint64_t wait = watched ? due - now : 1000;
            snap.cv.wait_for(lock, std::chrono::milliseconds(std::min<uint64_t>(wait, 1000)));
            continue;
        }
        lock.unlock();
        refresh_snapshot(s);
        lock.lock();
    }
}

Server::Server(const Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}

Server::~Server() {
    stop();
}

bool Server::start() {
    if (impl_->daemon || impl_->cfg.admin.listen.empty()) {
        return impl_->daemon != nullptr;
    }
    if (!impl_->listen()) {
        return false;
    }
    impl_->snap.stop = false;
    impl_->snap.thread = std::thread([this] { impl_->snapshot_loop(); });
    return true;
}

void Server::stop() {
    if (impl_->snap.thread.joinable()) {
        {
            std::lock_guard lock(impl_->snap.mu);
            impl_->snap.stop = true;
        }
        impl_->snap.cv.notify_all();
        impl_->snap.thread.join();
    }
    if (impl_->daemon) {
        MHD_stop_daemon(impl_->daemon);
        impl_->daemon = nullptr;
        if (!impl_->cfg.admin.unix_path.empty()) {
            ::unlink(impl_->cfg.admin.unix_path.c_str());
        }
    }
}

}  // namespace hookq::admin
