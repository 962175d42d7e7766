#include "worker/admin/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "worker/log.h"

namespace hookq::admin {

HttpReply ok(Json body, unsigned status) {
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpReply error(unsigned status, std::string err, std::string detail) {
    HttpReply r;
    r.status = status;
    r.body["error"] = std::move(err);
    r.body["detail"] = std::move(detail);
    return r;
}

HttpReply method_not_allowed(const std::string& allow, std::string detail) {
    HttpReply r = error(405, "method not allowed", std::move(detail));
    r.headers.emplace_back("Allow", allow);
    return r;
}

HttpReply refusal(const ops::Error& e) {
    unsigned st = e.kind == ops::Error::not_found  ? 404
                  : e.kind == ops::Error::conflict ? 409
                                                   : 400;
    return error(st, st == 404 ? "not found" : st == 409 ? "conflict" : "bad request", e.what());
}

HttpReply backend_failed(const std::runtime_error& e) {
    log::warn("admin API: backend failed", {{"error", e.what()}});
    return error(503, "backend unavailable", e.what());
}

std::string header(MHD_Connection* c, const char* name) {
    const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

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

}  // namespace hookq::admin
