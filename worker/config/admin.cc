#include "worker/config/sections.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

#include "shared/crypto.h"
#include "shared/secret.h"

namespace hookq::config_detail {

namespace {

constexpr uint64_t kMinTokenBytes = 16;

// A bearer token file others can read hands out the admin API. Group-readable is the usual way to
// give a root-owned file to the worker's own group (root:hookq 0640), so only a group other than
// the process's own counts. Names the file, never its content.
std::string token_file_warning(const std::string& spec) {
    if (!spec.starts_with("file:")) {
        return "";
    }
    const std::string path = spec.substr(5);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return "";  // load_secret has already said why it cannot be read
    }
    bool others = (st.st_mode & S_IROTH) != 0;
    bool group = (st.st_mode & S_IRGRP) != 0 && st.st_gid != ::getegid();
    if (!others && !group) {
        return "";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return "token file \"" + path + "\" (mode " + mode + ") is readable by " +
           (others ? std::string("every user of this host") : std::string("its group")) +
           "; chmod 600 it (or 640 with the worker's group)";
}

}  // namespace

// [admin] and its [[admin.tokens]]. After the routes: a token's sources are checked against them.
void read_admin(const Reader& r, const toml::table& root, Config& c) {
    const toml::table* a = r.table(root, "admin");
    if (!a) {
        return;
    }
    r.only_keys(*a, "[admin]", {"listen", "tokens", "metrics_public", "metrics_refresh"});
    AdminConfig& ad = c.admin;
    ad.listen = r.str(*a, "listen").value_or("127.0.0.1:9187");
    if (ad.listen.starts_with("unix:")) {
        ad.unix_path = ad.listen.substr(5);
        if (ad.unix_path.empty() || ad.unix_path[0] != '/') {
            r.fail(r.where(*a, "listen"), "'listen' unix: needs an absolute path");
        }
    } else if (!ad.listen.empty()) {
        // An IP literal, not a name: what the server binds to is then exactly what the file says.
        std::string_view l = ad.listen;
        size_t colon = l.rfind(':');
        std::string host(l.substr(0, colon == std::string_view::npos ? 0 : colon));
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        unsigned char buf[16];
        int port = 0;
        bool ok = colon != std::string_view::npos && colon + 1 < l.size() && colon + 6 >= l.size();
        for (size_t i = colon + 1; ok && i < l.size(); ++i) {
            ok = l[i] >= '0' && l[i] <= '9';
            port = port * 10 + (l[i] - '0');
        }
        if (host == "localhost") {
            host = "127.0.0.1";
        }
        if (!ok || port < 1 || port > 65535 ||
            (inet_pton(AF_INET, host.c_str(), buf) != 1 &&
             inet_pton(AF_INET6, host.c_str(), buf) != 1)) {
            r.fail(r.where(*a, "listen"),
                   "'listen' must be IP:port (\"127.0.0.1:9187\", \"[::1]:9187\"), "
                   "unix:/path, or \"\" to disable the admin API");
        }
        ad.host = host;
        ad.port = port;
    }
    ad.metrics_public = r.boolean(*a, "metrics_public").value_or(false);
    ad.metrics_refresh_ms =
        r.duration(*a, "metrics_refresh", 100, 3600 * 1000).value_or(ad.metrics_refresh_ms);

    const toml::node* tn = a->get("tokens");
    if (!tn) {
        return;
    }
    if (!tn->is_array_of_tables()) {
        r.fail(tn->source(), "'admin.tokens' must be an array of tables ([[admin.tokens]])");
    }
    const std::set<std::string> known = known_sources(c);
    std::set<std::string> names, digests;
    for (const toml::node& n : *tn->as_array()) {
        const toml::table& t = *n.as_table();
        AdminToken tok;
        tok.name = r.str(t, "name").value_or("");
        std::string ctx = "[[admin.tokens]] '" + tok.name + "'";
        r.only_keys(t, ctx, {"name", "role", "token", "sources"});
        if (tok.name.empty() || tok.name.size() > 64 ||
            tok.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789._-@") != std::string::npos) {
            r.fail(t.source(),
                   "[[admin.tokens]] needs a 'name' of letters, digits and . _ - @ "
                   "(at most 64): it is the actor in the audit log");
        }
        if (!names.insert(tok.name).second) {
            r.fail(r.where(t, "name"), "duplicate admin token name '" + tok.name + "'");
        }
        tok.role = r.str(t, "role").value_or("");
        if (tok.role != "viewer" && tok.role != "admin") {
            r.fail(r.where(t, "role"), ctx + ": 'role' must be \"viewer\" or \"admin\"");
        }
        auto spec = r.str(t, "token");
        if (!spec) {
            r.fail(t.source(), ctx + " needs 'token' (file:/path or env:NAME)");
        }
        std::string err;
        auto secret = load_secret(*spec, err);
        if (!secret) {
            r.fail(r.where(t, "token"), ctx + ": 'token': " + err);
        }
        if (auto w = token_file_warning(*spec); !w.empty()) {
            c.warnings.push_back(ctx + ": " + w);
        }
        // A bearer token is the whole credential: short ones can be guessed over the network.
        if (secret->size() < kMinTokenBytes) {
            r.fail(r.where(t, "token"), ctx + ": 'token' must be at least " +
                                            std::to_string(kMinTokenBytes) +
                                            " characters (e.g. openssl rand -hex 32)");
        }
        unsigned char d[32];
        crypto::sha256(*secret, d);
        tok.sha256.assign(reinterpret_cast<const char*>(d), sizeof d);
        if (!digests.insert(tok.sha256).second) {
            r.fail(r.where(t, "token"),
                   ctx +
                       ": the same token as another entry (the audit log could not tell them "
                       "apart)");
        }
        if (t.get("sources")) {
            tok.sources = r.strings(t, "sources");
            if (tok.sources.empty()) {
                r.fail(r.where(t, "sources"),
                       ctx + ": 'sources' is empty (omit it for every source)");
            }
            for (const auto& s : tok.sources) {
                if (!known.count(s)) {
                    r.fail(r.where(t, "sources"),
                           ctx + ": unknown source '" + s + "' (no route or [sources] names it)");
                }
            }
        }
        ad.tokens.push_back(std::move(tok));
    }
}

}  // namespace hookq::config_detail
