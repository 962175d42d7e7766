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
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "worker/admin/api.h"
#include "worker/admin/auth.h"
#include "worker/admin/http.h"
#include "worker/admin/metrics_page.h"
#include "worker/admin/session.h"
#include "worker/admin/ui_assets.h"
#include "worker/log.h"

namespace hookq::admin {

// worker/admin/openapi.json, embedded at build time (worker/CMakeLists.txt).
std::string_view openapi_document();

namespace {

// Nothing the API accepts comes near this: a retry's options are a few dozen bytes.
constexpr size_t kMaxBody = 64 * 1024;
// Four: a dashboard's status request (tens of milliseconds under load) must not queue a
// Prometheus scrape or a health check behind it.
constexpr unsigned kThreads = 4;
constexpr unsigned kMaxConnections = 64;
// Idle seconds before a connection is closed: a client that sends half a request and waits holds a
// connection (not a thread: the threads multiplex with epoll) for at most this long.
constexpr unsigned kConnectionTimeoutS = 10;
constexpr size_t kConnectionMemory = 32 * 1024;  // headers and read buffer per connection
// A slow database must not pin both threads for long.
constexpr uint64_t kRedisTimeoutMs = 1000;

// The worker's configuration with the admin connections' shorter Redis timeout.
Config backend_config(const Config& c) {
    Config b = c;
    b.redis_timeout_ms = std::min(c.redis_timeout_ms, kRedisTimeoutMs);
    return b;
}

enum MHD_Result collect_arg(void* cls, enum MHD_ValueKind, const char* key, const char* value) {
    auto* args = static_cast<Args*>(cls);
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

// /metrics, /healthz, /readyz, the OpenAPI document and the dashboard's files are only read.
HttpReply use_get() {
    return method_not_allowed("GET, HEAD", "use GET");
}

}  // namespace

struct Server::Impl {
    explicit Impl(const Config& c)
        : cfg(c),
          backend_cfg(backend_config(c)),
          pool(backend_cfg, kThreads),
          api(pool),
          metrics(backend_cfg) {}

    const Config& cfg;
    const Config backend_cfg;
    MHD_Daemon* daemon = nullptr;
    SessionPool pool;
    Api api;
    MetricsPage metrics;

    bool listen();
    HttpReply dispatch(MHD_Connection* c, std::string_view method, std::string_view url,
                       const std::string& body);
    HttpReply readyz();
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
        send(c, use_get());
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
    std::string pg_err, redis_err;
    bool pg_ok = false, redis_ok = false;
    {
        SessionPool::Lease s = pool.lease();
        pg_ok = s->pg_answers(pg_err);
        redis_ok = s->redis_answers();
        redis_err = redis_ok ? "" : s->redis.last_error();
    }
    if (!pg_ok) {
        log::warn("admin readyz: PostgreSQL unavailable", {{"error", pg_err}});
    }
    if (!redis_ok) {
        log::warn("admin readyz: Redis unavailable", {{"error", redis_err}});
    }
    // No error text here: /readyz answers without a token, and the reasons are in the log.
    HttpReply r;
    r.status = pg_ok && redis_ok ? 200 : 503;
    r.body["status"] = pg_ok && redis_ok ? "ready" : "not ready";
    r.body["redis"] = redis_ok ? "ok" : "unavailable";
    r.body["postgres"] = pg_ok ? "ok" : "unavailable";
    return r;
}

HttpReply Server::Impl::dispatch(MHD_Connection* c, std::string_view method, std::string_view url,
                                 const std::string& body) {
    bool get = method == "GET" || method == "HEAD";
    if (url == "/metrics") {
        return get ? metrics.answer(c) : use_get();
    }
    if (url == "/healthz" || url == "/readyz") {
        if (!get) {
            return use_get();
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
            return use_get();
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
    Args args;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &collect_arg, &args);
    HttpReply r = api.answer(c, *token, method, seg, args, body);
    if (!get || r.status >= 400) {
        log::info("admin API request", {{"method", method},
                                        {"path", url},
                                        {"status", r.status},
                                        {"token", token->name},
                                        {"remote_addr", client_address(c)}});
    }
    return r;
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
    impl_->metrics.start();
    return true;
}

void Server::stop() {
    impl_->metrics.stop();
    if (impl_->daemon) {
        MHD_stop_daemon(impl_->daemon);
        impl_->daemon = nullptr;
        if (!impl_->cfg.admin.unix_path.empty()) {
            ::unlink(impl_->cfg.admin.unix_path.c_str());
        }
    }
}

}  // namespace hookq::admin
