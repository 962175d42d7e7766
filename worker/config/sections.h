// Internal to worker/config*.cc: one reader per section of worker.toml, called in order by
// load_config_string (worker/config.cc). Each validates its section and fills its part of Config;
// some check names against sections read before them (the comments say which).
#pragma once

#include <set>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "worker/config.h"
#include "worker/config/reader.h"

namespace hookq::config_detail {

// worker_section.cc
void read_worker(const Reader& r, const toml::table& root, Config& c);
void read_breaker(const Reader& r, const toml::table& root, Config& c);
void read_default_retry(const Reader& r, const toml::table& root, Config& c);
// [retry], and a route's [routes.retry] (which starts from [retry]): keys left out keep `p`'s.
RetryPolicy read_retry(const Reader& r, const toml::table& t, RetryPolicy p, std::string_view ctx);

// stores.cc
void read_redis(const Reader& r, const toml::table& root, Config& c);
void read_postgres(const Reader& r, const toml::table& root, Config& c);

// routes.cc
void read_sources(const Reader& r, const toml::table& root, Config& c);
void read_routes(const Reader& r, const toml::table& root, Config& c);
// forwarding.cc and health_check.cc: parts of one [[routes]] entry; `ctx` names it in messages.
void read_forwarding(const Reader& r, const toml::table& rt, Route& route, const std::string& ctx);
void read_health_check(const Reader& r, const toml::table& rt, Route& route,
                       const std::string& ctx);
// The sources a route or [sources] names: what a source named elsewhere must be one of.
std::set<std::string> known_sources(const Config& c);

// admin.cc
void read_admin(const Reader& r, const toml::table& root, Config& c);
// retention.cc
void read_retention(const Reader& r, const toml::table& root, Config& c);
// alerts.cc
void read_alerts(const Reader& r, const toml::table& root, Config& c);
// slo.cc
void read_slo(const Reader& r, const toml::table& root, Config& c);

}  // namespace hookq::config_detail
