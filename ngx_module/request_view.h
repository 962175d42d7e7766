// hookq::RequestView over an nginx request, for the verifiers in shared/.
#pragma once

#include <optional>
#include <string_view>

#include "ngx_module/config.h"
#include "ngx_module/ngx.h"
#include "shared/signature.h"

namespace hookq::edge {

class NginxRequestView final : public RequestView {
  public:
    NginxRequestView(ngx_http_request_t* r, const LocConf& conf, std::string_view body) noexcept
        : r_(r), conf_(conf), body_(body) {}

    std::optional<std::string_view> header(std::string_view name) const override;
    std::string_view body() const override { return body_; }
    std::string_view url() const override;
    std::optional<std::string_view> query_arg(std::string_view name) const override;

  private:
    ngx_http_request_t* r_;
    const LocConf& conf_;
    std::string_view body_;
    mutable std::string_view url_;  // built on first use (Twilio only), in the request pool
};

// Case-insensitive lookup in the request's headers; nullopt when absent.
std::optional<std::string_view> find_header(ngx_http_request_t* r, std::string_view name) noexcept;

}  // namespace hookq::edge
