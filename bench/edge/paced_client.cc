// hookq_paced_client: a fixed-rate (open model) HTTP/1.1 load generator for the edge benchmark.
//
//   hookq_paced_client host port path rate seconds connections headerfile bodyfile
//
// `connections` threads each own one keep-alive connection and send on a fixed schedule, offset so
// the total rate is `rate` req/s. Latency is measured from the SCHEDULED send time to the last byte
// of the response: when the server stalls, the requests that should have gone out meanwhile are
// charged the wait (no coordinated omission). Each request carries a unique X-GitHub-Delivery.
// headerfile: extra request header lines ("Name: value", one a line); bodyfile: the raw body.
// Output (one line, microseconds): count= non2xx= errors= late_sends= p50_us= p90_us= p99_us=
// p999_us= max_us= achieved_rps=
//
// Plain POSIX sockets, no other libraries.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
    std::string host;
    std::string port;
    std::string path;
    double rate = 0;
    double seconds = 0;
    int connections = 0;
    std::string headers;  // "Name: value\r\n"...
    std::string body;
};

struct Result {
    std::vector<uint32_t> latency_us;
    uint64_t non2xx = 0;
    uint64_t errors = 0;
    uint64_t late = 0;  // sends that started more than 1 ms after their scheduled time
};

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_until_ns(int64_t t) {
    timespec ts{};
    ts.tv_sec = t / 1000000000;
    ts.tv_nsec = t % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

bool read_file(const char* path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

std::string header_block(const std::string& text) {
    std::string out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.empty())
            continue;
        out += line;
        out += "\r\n";
    }
    return out;
}

int connect_to(const Options& o) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};  // a response slower than this counts as an error
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

bool send_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += size_t(n);
    }
    return true;
}

bool iequals_prefix(const char* p, const char* end, const char* name) {
    size_t n = std::strlen(name);
    if (size_t(end - p) < n)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (std::tolower(static_cast<unsigned char>(p[i])) != name[i])
            return false;
    return true;
}

// Reads one response from `fd` (leftover bytes stay in `buf`). Returns the status, or -1 on error.
int read_response(int fd, std::string& buf, bool& keep_alive) {
    char tmp[16384];
    auto fill = [&]() -> bool {
        for (;;) {
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            buf.append(tmp, size_t(n));
            return true;
        }
    };
    size_t hdr_end;
    while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos)
        if (!fill())
            return -1;
    const char* p = buf.data();
    const char* he = p + hdr_end + 2;
    // Status line: HTTP/1.x NNN ...
    if (hdr_end < 12 || std::strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    int status = std::atoi(p + 9);
    long long content_length = -1;
    bool chunked = false;
    keep_alive = true;
    for (const char* line = static_cast<const char*>(std::memchr(p, '\n', he - p)) + 1;
         line < he;) {
        const char* eol = static_cast<const char*>(std::memchr(line, '\n', he - line));
        if (!eol)
            break;
        if (iequals_prefix(line, eol, "content-length:")) {
            content_length = std::atoll(line + 15);
        } else if (iequals_prefix(line, eol, "transfer-encoding:")) {
            std::string v(line + 18, eol);
            for (auto& c : v)
                c = char(std::tolower(static_cast<unsigned char>(c)));
            chunked = v.find("chunked") != std::string::npos;
        } else if (iequals_prefix(line, eol, "connection:")) {
            std::string v(line + 11, eol);
            for (auto& c : v)
                c = char(std::tolower(static_cast<unsigned char>(c)));
            if (v.find("close") != std::string::npos)
                keep_alive = false;
        }
        line = eol + 1;
    }
    buf.erase(0, hdr_end + 4);
    bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (no_body)
        return status;
    if (chunked) {
        for (;;) {
            size_t eol;
            while ((eol = buf.find("\r\n")) == std::string::npos)
                if (!fill())
                    return -1;
            unsigned long long size = std::strtoull(buf.c_str(), nullptr, 16);
            buf.erase(0, eol + 2);
            if (size == 0) {  // trailers, then an empty line
                for (;;) {
                    while ((eol = buf.find("\r\n")) == std::string::npos)
                        if (!fill())
                            return -1;
                    bool empty = eol == 0;
                    buf.erase(0, eol + 2);
                    if (empty)
                        return status;
                }
            }
            while (buf.size() < size + 2)
                if (!fill())
                    return -1;
            buf.erase(0, size + 2);
        }
    }
    if (content_length < 0) {  // body until close
        while (fill()) {
        }
        buf.clear();
        keep_alive = false;
        return status;
    }
    while (buf.size() < size_t(content_length))
        if (!fill())
            return -1;
    buf.erase(0, size_t(content_length));
    return status;
}

void worker(const Options& o, int idx, int64_t start_ns, uint64_t nonce, Result& r) {
    const int64_t interval_ns = int64_t(1e9 * o.connections / o.rate);
    const int64_t offset_ns = int64_t(1e9 * idx / o.rate);
    const int64_t end_ns = start_ns + int64_t(o.seconds * 1e9);
    const std::string head_prefix =
        "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port +
        "\r\nContent-Length: " + std::to_string(o.body.size()) + "\r\n" + o.headers;
    r.latency_us.reserve(size_t(o.rate * o.seconds / o.connections) + 16);
    int fd = connect_to(o);
    std::string buf;
    char delivery[96];
    for (uint64_t n = 0;; ++n) {
        const int64_t scheduled = start_ns + offset_ns + int64_t(n) * interval_ns;
        if (scheduled >= end_ns)
            break;
        if (now_ns() < scheduled)
            sleep_until_ns(scheduled);
        if (now_ns() - scheduled > 1000000)
            ++r.late;
        std::snprintf(delivery, sizeof delivery,
                      "X-GitHub-Delivery: paced-%016" PRIx64 "-%d-%" PRIu64 "\r\n\r\n", nonce, idx,
                      n);
        std::string req = head_prefix;
        req += delivery;
        req += o.body;
        int status = -1;
        bool keep_alive = true;
        for (int attempt = 0; attempt < 2 && status < 0; ++attempt) {
            if (fd < 0) {
                buf.clear();
                fd = connect_to(o);
                if (fd < 0)
                    break;
            }
            if (send_all(fd, req))
                status = read_response(fd, buf, keep_alive);
            if (status < 0 || !keep_alive) {
                close(fd);
                fd = -1;
            }
            // Retry only a send on a connection the server had already closed (idle keep-alive).
            if (status < 0 && !buf.empty())
                break;
        }
        const int64_t done = now_ns();
        if (status < 0) {
            ++r.errors;
            continue;
        }
        if (status < 200 || status > 299)
            ++r.non2xx;
        r.latency_us.push_back(uint32_t(std::min<int64_t>((done - scheduled) / 1000, UINT32_MAX)));
    }
    if (fd >= 0)
        close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fprintf(stderr,
                     "usage: %s host port path rate seconds connections headerfile bodyfile\n",
                     argv[0]);
        return 2;
    }
    Options o;
    o.host = argv[1];
    o.port = argv[2];
    o.path = argv[3];
    o.rate = std::atof(argv[4]);
    o.seconds = std::atof(argv[5]);
    o.connections = std::atoi(argv[6]);
    std::string headers_text;
    if (!read_file(argv[7], headers_text) || !read_file(argv[8], o.body)) {
        std::fprintf(stderr, "cannot read %s or %s\n", argv[7], argv[8]);
        return 2;
    }
    o.headers = header_block(headers_text);
    if (o.rate <= 0 || o.seconds <= 0 || o.connections <= 0) {
        std::fprintf(stderr, "rate, seconds and connections must be positive\n");
        return 2;
    }
    timeval tv{};
    gettimeofday(&tv, nullptr);
    const uint64_t nonce =
        (uint64_t(tv.tv_sec) << 20) ^ uint64_t(tv.tv_usec) ^ (uint64_t(getpid()) << 40);

    std::vector<Result> results(size_t(o.connections));
    std::vector<std::thread> threads;
    const int64_t start_ns = now_ns() + 50000000;  // 50 ms to start the threads and connect
    for (int i = 0; i < o.connections; ++i)
        threads.emplace_back(worker, std::cref(o), i, start_ns, nonce,
                             std::ref(results[size_t(i)]));
    for (auto& t : threads)
        t.join();
    const double elapsed_s = double(now_ns() - start_ns) / 1e9;

    std::vector<uint32_t> all;
    uint64_t non2xx = 0, errors = 0, late = 0;
    for (auto& r : results) {
        all.insert(all.end(), r.latency_us.begin(), r.latency_us.end());
        non2xx += r.non2xx;
        errors += r.errors;
        late += r.late;
    }
    std::sort(all.begin(), all.end());
    auto pct = [&](double q) -> uint32_t {
        if (all.empty())
            return 0;
        size_t i = size_t(q * double(all.size()));
        if (i >= all.size())
            i = all.size() - 1;
        return all[i];
    };
    std::printf("count=%zu non2xx=%" PRIu64 " errors=%" PRIu64 " late_sends=%" PRIu64
                " p50_us=%u p90_us=%u p99_us=%u p999_us=%u max_us=%u achieved_rps=%.1f\n",
                all.size(), non2xx, errors, late, pct(0.50), pct(0.90), pct(0.99), pct(0.999),
                all.empty() ? 0u : all.back(), double(all.size() + errors) / elapsed_s);
    return errors == 0 ? 0 : 1;
}
