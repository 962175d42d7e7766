#include "shared/secret.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstdio>

namespace hookq {
namespace {

std::optional<std::string> read_file(std::string_view path, std::string& error) {
    const std::string p(path);
    // stdio rather than iostreams: libstdc++'s filebuf throws on a read error (e.g. a directory).
    std::FILE* f = std::fopen(p.c_str(), "rb");
    if (f == nullptr) {
        error = "cannot open secret file \"" + p + "\": " + std::strerror(errno);
        return std::nullopt;
    }
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        s.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) {
        error = "cannot read secret file \"" + p + "\": " + std::strerror(err);
        return std::nullopt;
    }
    // Editors and `echo` end files with a newline that is not part of the secret; strip only one so
    // a secret that really ends in whitespace is still representable.
    if (s.ends_with("\r\n")) {
        s.resize(s.size() - 2);
    } else if (s.ends_with('\n')) {
        s.pop_back();
    }
    if (s.empty()) {
        error = "secret file \"" + p + "\" is empty";
        return std::nullopt;
    }
    return s;
}

}  // namespace

std::optional<std::string> load_secret(std::string_view spec, std::string& error) {
    if (spec.starts_with("file:")) {
        std::string_view path = spec.substr(5);
        if (path.empty()) {
            error = "secret spec \"file:\" names no file";
            return std::nullopt;
        }
        return read_file(path, error);
    }
    if (spec.starts_with("env:")) {
        const std::string name(spec.substr(4));
        if (name.empty()) {
            error = "secret spec \"env:\" names no variable";
            return std::nullopt;
        }
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) {
            error = "secret environment variable " + name + " is not set";
            return std::nullopt;
        }
        if (*v == '\0') {
            error = "secret environment variable " + name + " is empty";
            return std::nullopt;
        }
        return std::string(v);
    }
    if (spec.empty()) {
        error = "secret is empty";
        return std::nullopt;
    }
    return std::string(spec);
}

}  // namespace hookq
