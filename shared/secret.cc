#include "shared/secret.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace hookq {
namespace {

constexpr std::string_view kSpellings = "write file:PATH, env:NAME or literal:VALUE";

std::string quoted(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// The one-line rule for every source: a newline inside a secret is almost always two secrets
// pasted into one file, or a PEM block, and would otherwise become part of the key silently.
bool single_line(std::string_view s, const std::string& what, std::string& error) {
    if (s.find_first_of("\r\n") == std::string_view::npos)
        return true;
    error = what + " holds more than one line (only one trailing newline is ignored)";
    return false;
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

std::optional<std::string> read_file(std::string_view path, std::string& error,
                                     std::string* warning) {
    const std::string p(path);
    const std::string what = "secret file " + quoted(p);
    // O_NONBLOCK: opening a FIFO by mistake must not hang `nginx -t` or a reload waiting for a
    // writer. The checks below run on the opened descriptor, so they describe what is read.
    Fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (fd.get() < 0) {
        error = "cannot open " + what + ": " + std::strerror(errno);
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        error = "cannot stat " + what + ": " + std::strerror(errno);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        error = what + " is not a regular file";
        return std::nullopt;
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxSecretFileBytes) {
        error = what + " is larger than " + std::to_string(kMaxSecretFileBytes) + " bytes";
        return std::nullopt;
    }
    // Bounded whatever st_size said: files in /proc report 0 and a file may grow while read.
    std::string s(kMaxSecretFileBytes + 1, '\0');
    size_t got = 0;
    while (got < s.size()) {
        ssize_t n = ::read(fd.get(), s.data() + got, s.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = "cannot read " + what + ": " + std::strerror(errno);
            return std::nullopt;
        }
        if (n == 0)
            break;
        got += static_cast<size_t>(n);
    }
    if (got > kMaxSecretFileBytes) {
        error = what + " is larger than " + std::to_string(kMaxSecretFileBytes) + " bytes";
        return std::nullopt;
    }
    s.resize(got);
    // Editors and `echo` end files with a newline that is not part of the secret; strip only one so
    // a secret that really ends in whitespace is still representable.
    if (s.ends_with("\r\n")) {
        s.resize(s.size() - 2);
    } else if (s.ends_with('\n')) {
        s.pop_back();
    }
    if (s.empty()) {
        error = what + " is empty";
        return std::nullopt;
    }
    if (!single_line(s, what, error))
        return std::nullopt;
    if (warning != nullptr) {
        warning->clear();
        if ((st.st_mode & S_IROTH) != 0)
            *warning = what + " is readable by every user of this host (chmod o-r it)";
    }
    return s;
}

// "/etc/hookq/x.secret", "./x", "../x", "~/x": what an operator who forgot "file:" writes.
bool looks_like_path(std::string_view s) {
    return s.starts_with('/') || s.starts_with("./") || s.starts_with("../") || s.starts_with('~');
}

// "fiel:/x", "File:/x", "vault:x": a source hookq does not know, which taking literally would
// turn into the key. Letters, digits and - _ . + before the first colon, as in a URL scheme.
bool has_unknown_source(std::string_view s) {
    size_t colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0)
        return false;
    for (char c : s.substr(0, colon)) {
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '+';
        if (!word)
            return false;
    }
    return true;
}

}  // namespace

std::optional<std::string> load_secret(std::string_view spec, std::string& error,
                                       std::string* warning) {
    if (warning != nullptr)
        warning->clear();
    if (spec.starts_with("file:")) {
        std::string_view path = spec.substr(5);
        if (path.empty()) {
            error = "secret spec \"file:\" names no file";
            return std::nullopt;
        }
        return read_file(path, error, warning);
    }
    if (spec.starts_with("env:")) {
        const std::string name(spec.substr(4));
        if (name.empty()) {
            error = "secret spec \"env:\" names no variable";
            return std::nullopt;
        }
        const std::string what = "secret environment variable " + name;
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) {
            error = what + " is not set";
            return std::nullopt;
        }
        if (*v == '\0') {
            error = what + " is empty";
            return std::nullopt;
        }
        if (!single_line(v, what, error))
            return std::nullopt;
        return std::string(v);
    }
    std::string_view value = spec;
    if (spec.starts_with("literal:")) {
        value.remove_prefix(8);
        if (value.empty()) {
            error = "secret spec \"literal:\" gives no value";
            return std::nullopt;
        }
    } else if (spec.empty()) {
        error = "secret is empty";
        return std::nullopt;
    } else if (looks_like_path(spec)) {
        // Never echo the value: it may be the secret after all.
        error = "secret looks like a path but has no \"file:\" prefix (" + std::string(kSpellings) +
                ")";
        return std::nullopt;
    } else if (has_unknown_source(spec)) {
        error = "secret starts with an unknown source before ':' (" + std::string(kSpellings) + ")";
        return std::nullopt;
    }
    if (!single_line(value, "literal secret", error))
        return std::nullopt;
    return std::string(value);
}

}  // namespace hookq
