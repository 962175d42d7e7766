#include "worker/pipeline/dispatcher.h"

#include <algorithm>
#include <cstring>

#include "shared/signature.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/pipeline/retry.h"

namespace hookq {

namespace {

// The status line and headers decide an attempt; the body is only read while that is cheap. Up to
// kDrainBytes arriving within kDrainGraceMs of the headers are read, so that the connection stays
// reusable for the next delivery; a bigger, unbounded or slow body is cut (curl then closes the
// connection rather than reuse it mid-response). Of a non-2xx body the first kErrorPrefix bytes are
// kept for the attempt row.
constexpr size_t kDrainBytes = 64 * 1024;
constexpr uint64_t kDrainGraceMs = 200;
constexpr size_t kErrorPrefix = 1024;

}  // namespace

struct Dispatcher::Transfer {
    Delivery d;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string url;
    std::string retry_after;
    char errbuf[CURL_ERROR_SIZE] = {};
    uint64_t started_us = 0;

    std::vector<Transfer*>* draining = nullptr;  // the dispatcher's, for the header callback
    int line_status = 0;  // of the response whose header block is being read (1xx included)
    int status = 0;       // the final status, once its header block is complete
    int64_t content_length = -1;
    bool chunked = false;
    bool reusable = false;  // the body is small and delimited: worth reading to keep the connection
    size_t body_bytes = 0;
    std::string body_prefix;      // non-2xx only
    uint64_t drain_deadline = 0;  // mono ms; non-zero while on the draining list
};

namespace {

int parse_status(std::string_view line) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.size() < sp + 4) {
        return 0;
    }
    int v = 0;
    for (size_t i = sp + 1; i < sp + 4; ++i) {
        if (line[i] < '0' || line[i] > '9') {
            return 0;
        }
        v = v * 10 + (line[i] - '0');
    }
    return v;
}

bool has_name(std::string_view line, std::string_view name) {
    return line.size() > name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0;
}

std::string_view trimmed(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() &&
           (v.back() == '\r' || v.back() == '\n' || v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    return v;
}

size_t on_body(char* buf, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Dispatcher::Transfer*>(userp);
    size_t len = size * n;
    bool ok = t->status >= 200 && t->status <= 299;
    if (!ok && t->body_prefix.size() < kErrorPrefix) {
        t->body_prefix.append(buf, std::min(len, kErrorPrefix - t->body_prefix.size()));
    }
    t->body_bytes += len;
    // Returning less than len aborts the transfer (CURLE_WRITE_ERROR); finish() goes by the status.
    if (t->body_bytes > kDrainBytes || (!t->reusable && (ok || t->body_bytes >= kErrorPrefix))) {
        return 0;
    }
    return len;
}

size_t on_header(char* buf, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Dispatcher::Transfer*>(userp);
    size_t len = size * n;
    std::string_view line(buf, len);
    if (line.starts_with("HTTP/")) {
        // A new response: an interim 1xx or the final one.
        t->line_status = parse_status(line);
        t->retry_after.clear();
        t->content_length = -1;
        t->chunked = false;
        return len;
    }
    if (line == "\r\n" || line == "\n") {
        if (t->line_status < 200 || t->status != 0) {
            // The end of an interim response (or of garbage curl refuses itself), or of the
            // trailers of a chunked body, which come through here too.
            return len;
        }
        t->status = t->line_status;
        if (t->content_length == 0 || t->status == 204 || t->status == 304) {
            return len;
        }
        t->reusable = t->chunked || (t->content_length > 0 &&
                                     t->content_length <= static_cast<int64_t>(kDrainBytes));
        if (!t->reusable && t->status >= 200 && t->status <= 299) {
            return 0;  // delivered; the body is not worth a single read
        }
        t->drain_deadline = mono_ms() + kDrainGraceMs;
        t->draining->push_back(t);
        return len;
    }
    if (has_name(line, "retry-after:")) {
        t->retry_after = std::string(trimmed(line.substr(12)));
    } else if (has_name(line, "content-length:")) {
        std::string_view v = trimmed(line.substr(15));
        int64_t cl = 0;
        bool digits = !v.empty() && v.size() <= 18;
        for (char c : v) {
            digits = digits && c >= '0' && c <= '9';
            cl = cl * 10 + (c - '0');
        }
        t->content_length = digits ? cl : -1;
    } else if (has_name(line, "transfer-encoding:")) {
        std::string_view v = trimmed(line.substr(18));
        t->chunked = v.size() >= 7 && strncasecmp(v.data() + v.size() - 7, "chunked", 7) == 0;
    }
    return len;
}

// Header values come from the original request and the configuration; a CR or LF must never let
// them inject headers of their own.
void append_header_safe(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c != '\r' && c != '\n' && c != '\0') {
            out += c;
        }
    }
}

bool header_name_ok(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' ||
            c == '/' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
            c == '[' || c == '\\' || c == ']' || c == '{' || c == '}') {
            return false;
        }
    }
    return true;
}

// "Connection: close, X-Foo" makes X-Foo hop-by-hop for that one request.
bool listed_in(std::string_view list, std::string_view name) {
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view tok = list.substr(0, comma);
        while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) {
            tok.remove_prefix(1);
        }
        while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) {
            tok.remove_suffix(1);
        }
        if (CaseInsensitiveEqual{}(tok, name)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
    return false;
}

// The edge stores a secret it checked (MoySklad's token) as this marker: nothing to forward.
constexpr std::string_view kRedacted = "[redacted]";

// The updates a coalesced delivery stands for: how many, and their ids (the first kMaxListed,
// so that the header stays well under any server's limit).
template <typename Add>
void add_coalesced(const Add& add, const std::vector<MergedUpdate>& merged) {
    constexpr size_t kMaxListed = 100;
    std::string ids;
    for (size_t i = 0; i < merged.size() && i < kMaxListed; ++i) {
        if (i) {
            ids += ',';
        }
        ids += merged[i].id;
    }
    add("X-Hookq-Coalesced-Count", std::to_string(merged.size()));
    add("X-Hookq-Coalesced-Ids", ids);
}

bool forwardable(const Route& r, std::string_view name, std::string_view value,
                 std::string_view connection) {
    return header_name_ok(name) && value != kRedacted && !never_forwarded(name) &&
           !r.forward_deny.contains(name) &&
           (r.forward_allow.empty() || r.forward_allow.contains(name)) &&
           !listed_in(connection, name);
}

// The provider's query string, after the route URL's own (before any fragment), minus the
// arguments that carry secrets and any that curl could not send as they are.
void append_query(std::string& url, std::string_view query, const NameSet& redact) {
    size_t hash = url.find('#');
    std::string_view fragment;
    std::string frag_copy;
    if (hash != std::string::npos) {
        frag_copy = url.substr(hash);
        fragment = frag_copy;
        url.resize(hash);
    }
    char sep = url.find('?') == std::string::npos ? '?' : '&';
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view arg = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        std::string_view name = arg.substr(0, arg.find('='));
        std::string_view value =
            name.size() < arg.size() ? arg.substr(name.size() + 1) : std::string_view{};
        bool clean = std::none_of(arg.begin(), arg.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return u <= 0x20 || u == 0x7f || c == '#';
        });
        if (arg.empty() || !clean || value == kRedacted || redact.contains(name)) {
            continue;
        }
        url += sep;
        url.append(arg);
        sep = '&';
    }
    url.append(fragment);
}

Transport transport_of(CURLcode c) {
    switch (c) {
        case CURLE_OK:
            return Transport::ok;
        case CURLE_OPERATION_TIMEDOUT:
            return Transport::timeout;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return Transport::connect_error;
        default:
            return Transport::other_error;
    }
}

}  // namespace

Dispatcher::Dispatcher(Shared& s)
    : s_(s), buckets_(s.cfg.routes.size()), limiter_(s.cfg, [this] { curl_multi_wakeup(multi_); }) {
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(s.cfg.max_connections_per_host));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(s.cfg.max_connections_per_host * 4));
    limiter_.start();
}

Dispatcher::~Dispatcher() {
    limiter_.stop();  // before the multi handle its wake-ups go to
    for (CURL* e : idle_handles_) {
        curl_easy_cleanup(e);
    }
    curl_multi_cleanup(multi_);
}

void Dispatcher::submit(std::vector<Delivery> ds) {
    {
        std::lock_guard lock(mu_);
        for (auto& d : ds) {
            incoming_.push_back(std::move(d));
        }
    }
    curl_multi_wakeup(multi_);
}

void Dispatcher::stop() {
    stop_.store(true);
    curl_multi_wakeup(multi_);
}

void Dispatcher::release_waiting(uint64_t now) {
    for (const Route& r : s_.cfg.routes) {
        Bucket& b = buckets_[r.index];
        if (b.waiting.empty()) {
            continue;
        }
        while (!b.waiting.empty() && limiter_.take(r.index, now)) {
            Delivery d = std::move(b.waiting.front());
            b.waiting.pop_front();
            admit(std::move(d));
        }
        limiter_.want(r.index, b.waiting.size());
    }
}

Dispatcher::Dest& Dispatcher::dest_of(const Delivery& d) {
    if (!d.fallback) {
        return dests_[d.route->destination];
    }
    return dests_[url_destination(d.route->fallback_url).value_or(d.route->fallback_url)];
}

void Dispatcher::admit(Delivery d) {
    Dest& dest = dest_of(d);
    if (dest.active >= s_.cfg.max_connections_per_host) {
        dest.pending.push_back(std::move(d));
        return;
    }
    ++dest.active;
    start(std::move(d));
}

void Dispatcher::start(Delivery d) {
    const Route& r = *d.route;
    const EnvelopeView& env = d.job->env;
    auto* t = new Transfer;
    t->d = std::move(d);
    t->draining = &draining_;
    t->url = t->d.fallback ? r.fallback_url : r.url;
    if (size_t q = env.target.find('?'); r.forward_query && q != std::string_view::npos) {
        append_query(t->url, env.target.substr(q + 1), r.redact_query);
    }
    if (!idle_handles_.empty()) {
        t->easy = idle_handles_.back();
        idle_handles_.pop_back();
        curl_easy_reset(t->easy);
    } else {
        t->easy = curl_easy_init();
    }
    CURL* e = t->easy;

    char id[Uuid::kTextSize];
    env.request_id.format(id);
    std::string_view rid(id, sizeof id);
    std::string_view ctype = env.header("Content-Type");
    // One buffer for every header line of this transfer (curl_slist_append copies it).
    std::string line;
    line.reserve(128);
    auto add = [&](std::string_view name, std::string_view value) {
        line.assign(name);
        line += ": ";
        append_header_safe(line, value);
        t->headers = curl_slist_append(t->headers, line.c_str());
    };
    add("Content-Type", ctype.empty() ? std::string_view("application/octet-stream") : ctype);
    add("X-Request-ID", rid);
    add("X-Hookq-Source", env.source);
    add("X-Retry-Attempt", std::to_string(t->d.attempt));
    add("X-Max-Attempts", std::to_string(r.retry.max_attempts));
    add("X-Timeout-Ms", std::to_string(r.timeout_ms));
    if (!t->d.job->event_type.empty()) {
        add("X-Hookq-Event-Type", t->d.job->event_type);
    }
    const Job& job = *t->d.job;
    // Let through unverified by a `hookq_verify report_only` location (a name only the edge can
    // write, see ngx_module/handler.cc): the application must know.
    if (!job.unverified.empty()) {
        add("X-Hookq-Unverified", job.unverified);
    }
    if (!job.parent.empty()) {
        add("X-Hookq-Parent-Id", job.parent);
        add("X-Hookq-Part", job.part);
    }
    for (const OrderHold& h : job.holds) {
        if (h.route == r.name && !h.merged.empty()) {
            add_coalesced(add, h.merged);
        }
    }
    if (!r.signing_key.empty()) {
        int64_t ts = static_cast<int64_t>(now_ms() / 1000);
        std::string sig = standard_webhooks_signature(r.signing_key, rid, ts, env.body);
        add("webhook-id", rid);
        add("webhook-timestamp", std::to_string(ts));
        add("webhook-signature", sig);
        add("X-Hookq-Signature", sig);
    }
    if (r.forward_headers) {
        std::string_view connection = env.header("Connection");
        for (const HeaderField& h : env.headers) {
            if (!forwardable(r, h.name, h.value, connection)) {
                continue;
            }
            if (h.value.empty()) {
                // "Name:" would tell curl to drop a header; "Name;" sends it empty.
                line.assign(h.name);
                line += ';';
                t->headers = curl_slist_append(t->headers, line.c_str());
            } else {
                add(h.name, h.value);
            }
        }
    }
    // No "Expect: 100-continue" round trip: the application is on a short, trusted path.
    t->headers = curl_slist_append(t->headers, "Expect:");

    curl_easy_setopt(e, CURLOPT_URL, t->url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, env.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(env.body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout_ms));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<uint64_t>(r.timeout_ms, 5000)));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hookq-worker/0.1");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    t->started_us = now_us();
    curl_multi_add_handle(multi_, e);
    active_.insert(t);
}

void Dispatcher::complete(const JobPtr& job) {
    if (--job->pending == 0) {
        done_.emplace_back(job);
    }
}

void Dispatcher::finish(Transfer* t, CURLcode res) {
    Delivery d = std::move(t->d);
    const Route& r = *d.route;
    Job& job = *d.job;
    uint64_t end = now_us();

    if (t->drain_deadline != 0) {
        draining_.erase(std::find(draining_.begin(), draining_.end(), t));
    }
    long status = t->status;
    if (status == 0 && res == CURLE_OK) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    AttemptResult ar =
        attempt_result(transport_of(res), static_cast<int>(status),
                       res == CURLE_OK ? "" : (t->errbuf[0] ? t->errbuf : curl_easy_strerror(res)));
    if (!t->retry_after.empty()) {
        ar.retry_after_ms =
            parse_retry_after_ms(t->retry_after, static_cast<int64_t>(end / 1000000));
    }
    double u01 = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    Decision dec = decide(ar, d.attempt, r.retry, u01);
    if (d.fallback && dec.kind == OutcomeKind::retry) {
        dec.kind = OutcomeKind::dead;  // the fallback gets one try: it is the last resort
    }

    metrics::global().attempt(r.index, end - t->started_us);
    job.attempts.push_back(AttemptRow{
        r.name, t->url, d.attempt, t->started_us, end - t->started_us, ar.http_status, dec.kind,
        ar.transport != Transport::ok        ? ar.error
        : dec.kind == OutcomeKind::delivered ? std::string()
                                             : body_excerpt(t->body_prefix, kErrorPrefix)});
    if (log::enabled(spdlog::level::debug)) {
        log::debug("attempt", {{"request_id", job.env.request_id.str()},
                               {"source", job.env.source},
                               {"route", r.name},
                               {"attempt", d.attempt},
                               {"status", ar.http_status},
                               {"outcome", to_string(dec.kind)},
                               {"ms", (end - t->started_us) / 1000}});
    }

    curl_multi_remove_handle(multi_, t->easy);
    curl_slist_free_all(t->headers);
    idle_handles_.push_back(t->easy);
    active_.erase(t);
    delete t;
    {
        Dest& dest = dest_of(d);
        --dest.active;
        if (!dest.pending.empty()) {
            Delivery next = std::move(dest.pending.front());
            dest.pending.pop_front();
            ++dest.active;
            start(std::move(next));
        }
    }

    if (!d.fallback) {
        reports_.emplace_back(BreakerReport{r.destination, !dec.breaker_failure, d.probe});
    }
    if (dec.kind == OutcomeKind::dead && !d.fallback && !r.fallback_url.empty() &&
        dec.breaker_failure) {
        // Primary gave up on a transient failure: one try at the fallback before the dead letter.
        Delivery fb{d.job, d.route, d.attempt, false, true};
        admit(std::move(fb));
        return;
    }

    RouteOutcome o;
    o.route = r.name;
    o.kind = dec.kind;
    o.attempt = d.attempt;
    o.at_us = end;
    o.reason = dec.reason;
    o.flag_route = dec.flag_route && !d.fallback;
    if (dec.kind == OutcomeKind::retry) {
        o.next_attempt = d.attempt + 1;
        o.due_ms = s_.clock.now_ms() + dec.delay_ms;
    } else if (dec.kind == OutcomeKind::delivered && d.fallback) {
        o.reason = "delivered to fallback_url";
    } else if (dec.kind == OutcomeKind::dead && d.fallback) {
        o.reason = "fallback failed: " + dec.reason;
    }
    metrics::global().outcome(r.index, dec.kind, job.env.received_at_us, end);
    if (dec.kind == OutcomeKind::dead) {
        metrics::global().dead(r.index, d.fallback            ? metrics::DeadReason::fallback_failed
                                        : dec.breaker_failure ? metrics::DeadReason::exhausted
                                                              : metrics::DeadReason::rejected);
    }
    job.outcomes.push_back(std::move(o));
    complete(d.job);
}

void Dispatcher::cut_slow_bodies(uint64_t now) {
    for (size_t i = 0; i < draining_.size();) {
        Transfer* t = draining_[i];
        if (t->drain_deadline > now) {
            ++i;
            continue;
        }
        draining_[i] = draining_.back();
        draining_.pop_back();
        t->drain_deadline = 0;
        // Removed from the multi handle mid-response: curl closes that connection.
        finish(t, CURLE_OK);
    }
}

void Dispatcher::run() {
    std::vector<Delivery> batch;
    while (!stop_.load()) {
        uint64_t now = mono_ms();
        s_.tick_dispatch.store(now);
        {
            std::lock_guard lock(mu_);
            batch.swap(incoming_);
        }
        for (auto& d : batch) {
            const Route& r = *d.route;
            if (r.rate_limit) {
                buckets_[r.index].waiting.push_back(std::move(d));
            } else {
                admit(std::move(d));
            }
        }
        batch.clear();
        // The limiter wakes the loop (curl_multi_wakeup) when a grant arrives.
        release_waiting(now);

        int running = 0;
        curl_multi_perform(multi_, &running);
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
            if (m->msg == CURLMSG_DONE) {
                Transfer* t = nullptr;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
                finish(t, m->data.result);
            }
        }
        cut_slow_bodies(mono_ms());
        s_.to_record.push_many(done_);
        s_.to_route.push_many(reports_);
        int timeout = 100;
        if (!draining_.empty()) {
            timeout = std::min(timeout, static_cast<int>(kDrainGraceMs / 2));
        }
        curl_multi_poll(multi_, nullptr, 0, timeout, nullptr);
    }
    s_.to_record.push_many(done_);
    s_.to_route.push_many(reports_);
    // Abandon what is still running: the jobs stay in inflight and come back after restart.
    int left = 0;
    while (curl_multi_info_read(multi_, &left)) {
    }
    for (Transfer* t : active_) {
        curl_multi_remove_handle(multi_, t->easy);
        curl_slist_free_all(t->headers);
        curl_easy_cleanup(t->easy);
        delete t;
    }
    active_.clear();
    draining_.clear();
}

}  // namespace hookq
