#include "ngx_module/request_view.h"

namespace hookq::edge {

std::optional<std::string_view> find_header(ngx_http_request_t* r, std::string_view name) noexcept {
    for (ngx_list_part_t* part = &r->headers_in.headers.part; part != nullptr; part = part->next) {
        auto* h = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0 || h[i].key.len != name.size())
                continue;
            if (ngx_strncasecmp(h[i].key.data,
                                reinterpret_cast<u_char*>(const_cast<char*>(name.data())),
                                name.size()) == 0)
                return ngx::view(h[i].value);
        }
    }
    return std::nullopt;
}

std::optional<std::string_view> NginxRequestView::header(std::string_view name) const {
    return find_header(r_, name);
}

// The URL the provider signed. Behind a proxy nginx does not see it, so hookq_public_url gives
// the scheme, host and (optionally) path the provider used; the query string is always the
// request's own.
std::string_view NginxRequestView::url() const {
    if (!url_.empty())
        return url_;
    std::string_view uri = ngx::view(r_->unparsed_uri);
    std::string_view prefix, rest = uri;
    std::string_view host;
    if (conf_.public_url.len) {
        std::string_view pub = ngx::view(conf_.public_url);
        size_t path_at = pub.find('/', pub.find("//") + 2);
        if (path_at != std::string_view::npos && path_at + 1 < pub.size()) {
            // A full public URL replaces the path; the query is the request's.
            prefix = pub;
            size_t q = uri.find('?');
            rest = q == std::string_view::npos ? std::string_view{} : uri.substr(q);
        } else {
            prefix = pub.substr(0, path_at == std::string_view::npos ? pub.size() : path_at);
        }
    } else {
#if (NGX_HTTP_SSL)
        prefix = r_->connection->ssl ? "https://" : "http://";
#else
        prefix = "http://";
#endif
        if (r_->headers_in.host)
            host = ngx::view(r_->headers_in.host->value);
    }
    size_t len = prefix.size() + host.size() + rest.size();
    auto* p = ngx::palloc<char>(r_->pool, len);
    if (p == nullptr)
        return {};
    char* e = p;
    for (std::string_view part : {prefix, host, rest})
        e = ngx::append(e, part);
    url_ = {p, len};
    return url_;
}

std::optional<std::string_view> NginxRequestView::query_arg(std::string_view name) const {
    ngx_str_t value;
    if (ngx_http_arg(r_, reinterpret_cast<u_char*>(const_cast<char*>(name.data())), name.size(),
                     &value) != NGX_OK)
        return std::nullopt;
    return ngx::view(value);
}

}  // namespace hookq::edge
