#include "ngx_module/handler.h"

#include <algorithm>
#include <ctime>
#include <optional>

#include "ngx_module/config.h"
#include "ngx_module/module.h"
#include "ngx_module/redis_router.h"
#include "ngx_module/request_view.h"
#include "ngx_module/status.h"
#include "shared/crypto.h"
#include "shared/envelope.h"
#include "shared/redis_keys.h"
#include "shared/signature.h"
#include "shared/uuid.h"

namespace hookq::edge {
namespace {

// Lives in the request pool. `pending` links it to the command in flight so that, if the request
// is freed first (client gone), the pool cleanup can detach it from the eventual reply.
struct RequestCtx {
    ngx_http_request_t* r;
    const LocConf* conf;
    PendingCommand* pending;
    ngx_event_t timer;
    uint64_t started_us;
    char id[Uuid::kTextSize];
    // A body of unknown length (chunked, or HTTP/2 without Content-Length) is gathered here by
    // collect_body() as it arrives; see there.
    bool collect;
    char* body;
    size_t body_len;
    size_t body_cap;
    BodyKeys keys;
};

ngx_http_request_body_filter_pt g_next_body_filter = nullptr;

std::optional<Uuid7Generator>& generator() {
    static std::optional<Uuid7Generator> g;
    return g;
}

uint64_t monotonic_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t realtime_us() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

bool add_header(ngx_http_request_t* r, std::string_view name, std::string_view value) {
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr)
        return false;
    h->hash = 1;
    h->key = ngx::str(name);
    h->value = ngx::str(value);
    return true;
}

struct Answer {
    ngx_uint_t status;
    Outcome outcome;
    std::string_view body;  // static text, or pool memory
    std::string_view request_id;
    bool replayed = false;
    bool retry_after = false;
};

// Sends the whole response and returns what ngx_http_finalize_request() wants.
ngx_int_t send_answer(ngx_http_request_t* r, RequestCtx* ctx, const Answer& a) noexcept {
    int source = ctx->conf->source_index;
    count(source, a.outcome);
    observe_latency(source, monotonic_us() - ctx->started_us);
    r->headers_out.status = a.status;
    r->headers_out.content_length_n = static_cast<off_t>(a.body.size());
    if (!a.body.empty()) {
        ngx_str_set(&r->headers_out.content_type, "text/plain");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
    }
    bool ok = true;
    if (!a.request_id.empty())
        ok &= add_header(r, "X-Request-ID", a.request_id);
    if (a.replayed)
        ok &= add_header(r, "Idempotent-Replayed", "true");
    if (a.retry_after)
        ok &= add_header(r, "Retry-After", ctx->conf->retry_after_text);
    if (!ok)
        return NGX_ERROR;

    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || a.body.empty()) {
        return rc == NGX_OK && a.body.empty() ? ngx_http_send_special(r, NGX_HTTP_LAST) : rc;
    }
    ngx_buf_t* b = ngx::pcalloc<ngx_buf_t>(r->pool);
    if (b == nullptr)
        return NGX_ERROR;
    b->pos = reinterpret_cast<u_char*>(const_cast<char*>(a.body.data()));
    b->last = b->pos + a.body.size();
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

// Answers from outside the request's own event handler (a Redis reply, a timer), so posted
// subrequests must be run by hand, as nginx's upstream does.
void answer_async(RequestCtx* ctx, const Answer& a) noexcept {
    ngx_http_request_t* r = ctx->r;
    ngx_connection_t* c = r->connection;
    ngx_http_finalize_request(r, send_answer(r, ctx, a));
    ngx_http_run_posted_requests(c);
}

Answer unavailable(Outcome why) {
    return {NGX_HTTP_SERVICE_UNAVAILABLE, why, "queue unavailable, retry later\n", {}, false, true};
}

void on_ingest_result(void* owner, const IngestResult& res) noexcept {
    auto* ctx = static_cast<RequestCtx*>(owner);
    ctx->pending = nullptr;
    if (ctx->timer.timer_set)
        ngx_del_timer(&ctx->timer);
    Answer a;
    switch (res.status) {
        case IngestStatus::accepted:
            if (res.loop != 0)
                count_loop(ctx->conf->source_index, res.loop == 2);
            a = {ctx->conf->accept_status, Outcome::accepted, {}, {ctx->id, sizeof ctx->id}};
            break;
        case IngestStatus::duplicate: {
            // The reply buffer dies with this callback; the header needs a copy in the pool.
            auto* id = ngx::palloc<char>(ctx->r->pool, res.detail.size());
            if (id == nullptr) {
                a = unavailable(Outcome::redis_error);
                break;
            }
            ngx_memcpy(id, res.detail.data(), res.detail.size());
            a = {NGX_HTTP_OK, Outcome::duplicate, {}, {id, res.detail.size()}, true};
            break;
        }
        case IngestStatus::queue_full:
            a = {NGX_HTTP_SERVICE_UNAVAILABLE,
                 Outcome::queue_full,
                 "queue full, retry later\n",
                 {},
                 false,
                 true};
            break;
        // A queue key of the wrong type is an operator's mistake, fixed in Redis without touching
        // nginx: 503 with Retry-After makes the provider retry, and its retry succeeds once the
        // key is fixed (a 500 reads as "this request is bad", which it is not).
        case IngestStatus::wrong_type:
        case IngestStatus::error:
            a = unavailable(Outcome::redis_error);
            break;
        // Counted apart from redis_error: Redis is up and took the write, its replicas lag or are
        // gone, which the operator mends elsewhere (see docs/runbooks.md).
        case IngestStatus::unreplicated:
            a = unavailable(Outcome::unreplicated);
            break;
    }
    answer_async(ctx, a);
}

void on_timeout(ngx_event_t* ev) noexcept {
    auto* ctx = static_cast<RequestCtx*>(ev->data);
    PendingCommand* pc = ctx->pending;
    ctx->pending = nullptr;
    if (pc != nullptr)
        RedisRouter::instance().timed_out(pc);
    answer_async(ctx, unavailable(Outcome::redis_error));
}

void on_request_freed(void* data) noexcept {
    auto* ctx = static_cast<RequestCtx*>(data);
    if (ctx->pending != nullptr)
        ctx->pending->owner = nullptr;
    ctx->pending = nullptr;
    if (ctx->timer.timer_set)
        ngx_del_timer(&ctx->timer);
}

// Every 500 the module answers says why in the error log.
ngx_int_t out_of_memory(ngx_http_request_t* r, const char* what) noexcept {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq: out of memory for %s", what);
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

constexpr size_t kFirstBodyChunk = 16 * 1024;

bool reserve_body(ngx_http_request_t* r, RequestCtx* ctx, size_t need) noexcept {
    if (need <= ctx->body_cap)
        return true;
    size_t cap = std::max(ctx->body_cap ? ctx->body_cap * 2 : kFirstBodyChunk, need);
    cap = std::min(cap, std::max(need, ctx->conf->max_body));
    auto* p = ngx::palloc<char>(r->pool, cap);
    if (p == nullptr)
        return false;
    if (ctx->body_len)
        ngx_memcpy(p, ctx->body, ctx->body_len);
    if (ctx->body)
        ngx_pfree(r->pool, ctx->body);  // a large allocation: really freed
    ctx->body = p;
    ctx->body_cap = cap;
    return true;
}

// Request body filter, first in nginx's chain. nginx reads a chunked body into one buffer of
// client_body_buffer_size holding the raw bytes, framing included, and writes that buffer to a temp
// file whenever it fills before the body ends: a body well within hookq_max_body spills as soon as
// its framing pushes it over (1 MiB in 8 KiB chunks does), and no buffer size would do for every
// framing (one-byte chunks take six bytes each). So for a body of unknown length the data is
// copied out as it arrives, each nginx buffer is marked consumed (nginx then reuses it instead of
// spilling), and the whole body goes down the chain as one memory buffer once it is complete.
// Bodies with a Content-Length need none of this: nginx sizes its buffer to them.
ngx_int_t collect_body(ngx_http_request_t* r, ngx_chain_t* in) noexcept {
    auto* ctx = static_cast<RequestCtx*>(ngx_http_get_module_ctx(r, ngx_http_hookq_module));
    if (ctx == nullptr || !ctx->collect)
        return g_next_body_filter(r, in);
    bool last = false;
    for (ngx_chain_t* cl = in; cl; cl = cl->next) {
        ngx_buf_t* b = cl->buf;
        if (b->in_file) {
            ngx_log_error(
                NGX_LOG_ERR, r->connection->log, 0,
                "hookq: request body buffered to a file; is client_body_in_file_only set?");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        size_t n = static_cast<size_t>(b->last - b->pos);
        if (n > 0) {
            // nginx's own client_max_body_size (set to hookq_max_body) refuses larger bodies
            // first; this keeps the copy bounded should it ever not.
            if (n > ctx->conf->max_body - std::min(ctx->body_len, ctx->conf->max_body))
                return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            if (!reserve_body(r, ctx, ctx->body_len + n)) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "hookq: out of memory for a %uz byte request body",
                              ctx->body_len + n);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            ngx_memcpy(ctx->body + ctx->body_len, b->pos, n);
            ctx->body_len += n;
            b->pos = b->last;
        }
        if (b->last_buf)
            last = true;
    }
    if (!last)
        return NGX_OK;
    auto* b = ngx::pcalloc<ngx_buf_t>(r->pool);
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    if (b == nullptr || cl == nullptr)
        return out_of_memory(r, "the request body");
    if (ctx->body_len) {
        b->temporary = 1;
        b->start = b->pos = reinterpret_cast<u_char*>(ctx->body);
        b->end = b->last = b->pos + ctx->body_len;
    }
    b->last_buf = 1;
    cl->buf = b;
    cl->next = nullptr;
    return g_next_body_filter(r, cl);
}

// The body as one contiguous view. The location's buffer limits (set at merge) keep it in one
// memory buffer; several buffers are joined in the pool, a temp file is refused.
std::optional<std::string_view> body_of(ngx_http_request_t* r) noexcept {
    ngx_http_request_body_t* rb = r->request_body;
    if (rb == nullptr)
        return std::string_view{};
    size_t total = 0, parts = 0;
    ngx_buf_t* only = nullptr;
    for (ngx_chain_t* cl = rb->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file)
            return std::nullopt;
        size_t n = static_cast<size_t>(cl->buf->last - cl->buf->pos);
        if (n == 0)
            continue;  // an empty body still comes as one (empty, flagless) buffer
        total += n;
        parts++;
        only = cl->buf;
    }
    if (parts == 0)
        return std::string_view{};
    if (parts == 1)
        return std::string_view(reinterpret_cast<char*>(only->pos), total);
    auto* p = ngx::palloc<char>(r->pool, total);
    if (p == nullptr)
        return std::nullopt;
    char* e = p;
    for (ngx_chain_t* cl = rb->bufs; cl; cl = cl->next)
        e = reinterpret_cast<char*>(ngx_cpymem(e, cl->buf->pos, cl->buf->last - cl->buf->pos));
    return std::string_view(p, total);
}

std::string_view sha256_hex(ngx_pool_t* pool, std::string_view data) noexcept {
    unsigned char digest[32];
    crypto::sha256(data, digest);
    auto* hex = ngx::palloc<u_char>(pool, 2 * sizeof digest);
    if (hex == nullptr)
        return {};
    ngx_hex_dump(hex, digest, sizeof digest);
    return {reinterpret_cast<char*>(hex), 2 * sizeof digest};
}

// The dedup key: hookq_dedup_key if set, else the profile's delivery id; the body's SHA-256 when
// neither yields anything, or when the key uses a body field the body does not have.
// Overlong keys are hashed so a hostile header cannot bloat Redis.
std::string_view dedup_key(ngx_http_request_t* r, const LocConf& conf, BodyKeys& bk) noexcept {
    std::string_view key;
    if (conf.dedup_key != nullptr) {
        ngx_str_t v;
        bk.missed = false;
        if (ngx_http_complex_value(r, conf.dedup_key, &v) == NGX_OK)
            key = ngx::view(v);
        if (bk.missed) {
            // "$tenant:$action" of a body without them would be ":" for every such webhook.
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "hookq: a field of hookq_dedup_key is not in the body: the key is the "
                          "body's SHA-256");
            return body_sha256(r->pool, bk);
        }
    } else {
        DedupSource src = conf.verifier->default_dedup();
        if (src.kind == DedupSource::header) {
            key = find_header(r, src.name).value_or(std::string_view{});
        } else if (src.kind == DedupSource::query_arg) {
            ngx_str_t v;
            if (ngx_http_arg(r, reinterpret_cast<u_char*>(const_cast<char*>(src.name.data())),
                             src.name.size(), &v) == NGX_OK)
                key = ngx::view(v);
        }
    }
    if (key.empty())
        return body_sha256(r->pool, bk);
    if (key.size() > keys::kMaxDedupKeyLength)
        return sha256_hex(r->pool, key);
    return key;
}

// The entity hookq_loop_limit counts: the hookq_loop_key value (the body's SHA-256 when it is empty
// or uses a body field the body lacks), and its fingerprint, which names its Redis counter.
struct LoopKey {
    std::string_view readable;
    std::string_view fingerprint;
};

// Readable keys are for people looking at `hookq loops`; past this they are cut, not hashed.
constexpr size_t kMaxLoopKeyShown = 256;
constexpr size_t kLoopFingerprintHex = 32;

std::optional<LoopKey> loop_key(ngx_http_request_t* r, const LocConf& conf, BodyKeys& bk) noexcept {
    std::string_view key;
    ngx_str_t v;
    bk.missed = false;
    if (ngx_http_complex_value(r, conf.loop_key, &v) == NGX_OK)
        key = ngx::view(v);
    if (key.empty() || bk.missed)
        key = body_sha256(r->pool, bk);
    std::string_view fp = sha256_hex(r->pool, key);
    if (key.empty() || fp.empty())
        return std::nullopt;
    return LoopKey{key.substr(0, kMaxLoopKeyShown), fp.substr(0, kLoopFingerprintHex)};
}

constexpr std::string_view kRedacted = "[redacted]";

bool is_token_header(const LocConf& conf, const ngx_table_elt_t& h) {
    return conf.scheme == Scheme::moysklad && conf.token_header.len == h.key.len &&
           ngx_strncasecmp(h.key.data, conf.token_header.data, h.key.len) == 0;
}

// MoySklad's shared token is a secret: it is checked here and not carried any further.
std::string_view stored_value(const LocConf& conf, const ngx_table_elt_t& h) {
    return is_token_header(conf, h) ? kRedacted : ngx::view(h.value);
}

bool same_name(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           ngx_strncasecmp(reinterpret_cast<u_char*>(const_cast<char*>(a.data())),
                           reinterpret_cast<u_char*>(const_cast<char*>(b.data())), a.size()) == 0;
}

// nginx's ngx_http_arg() (what the token check reads) matches names case-insensitively, so every
// spelling is the token; and a token in the query of a header-token location is no less a secret.
bool is_token_arg(const LocConf& conf, std::string_view name) {
    return same_name(name, "token") ||
           (conf.token_arg.len && same_name(name, ngx::view(conf.token_arg)));
}

// `text` with the value of every token-named argument in its query text[from, to) replaced by
// kRedacted: `text` itself when there is none, a pool copy otherwise, {} when out of memory.
std::string_view redact_query(ngx_pool_t* pool, const LocConf& conf, std::string_view text,
                              size_t from, size_t to) noexcept {
    size_t hits = 0;
    for (size_t at = from; at < to;) {
        size_t end = std::min(text.find('&', at), to);
        size_t eq = text.find('=', at);
        if (eq < end && is_token_arg(conf, text.substr(at, eq - at)))
            hits++;
        at = end + 1;
    }
    if (hits == 0)
        return text;
    auto* p = ngx::palloc<char>(pool, text.size() + hits * kRedacted.size());
    if (p == nullptr)
        return {};
    char* e = ngx::append(p, text.substr(0, from));
    for (size_t at = from; at < to;) {
        size_t end = std::min(text.find('&', at), to);
        size_t eq = text.find('=', at);
        if (eq < end && is_token_arg(conf, text.substr(at, eq - at)))
            e = ngx::append(ngx::append(e, text.substr(at, eq + 1 - at)), kRedacted);
        else
            e = ngx::append(e, text.substr(at, end - at));
        if (end < to)
            *e++ = '&';
        at = end + 1;
    }
    e = ngx::append(e, text.substr(to));
    return {p, static_cast<size_t>(e - p)};
}

// The request's URI as stored in the envelope: for MoySklad without its token.
std::string_view stored_target(ngx_http_request_t* r, const LocConf& conf) noexcept {
    std::string_view uri = ngx::view(r->unparsed_uri);
    size_t q = uri.find('?');
    if (conf.scheme != Scheme::moysklad || q == std::string_view::npos)
        return uri;
    return redact_query(r->pool, conf, uri, q + 1, uri.size());
}

// nginx's error log quotes the request line of the request being served (and $request is it):
// MoySklad's token is taken out of it before anything could be logged about this request.
void redact_request_line(ngx_http_request_t* r, const LocConf& conf) noexcept {
    std::string_view line = ngx::view(r->request_line);
    std::string_view uri = ngx::view(r->unparsed_uri);
    size_t at = uri.empty() ? std::string_view::npos : line.find(uri);
    size_t q = uri.find('?');
    if (at == std::string_view::npos || q == std::string_view::npos)
        return;
    std::string_view redacted = redact_query(r->pool, conf, line, at + q + 1, at + uri.size());
    if (redacted.data() != nullptr && redacted.data() != line.data())
        r->request_line = ngx::str(redacted);
}

constexpr std::string_view kUnverifiedHeader = ":hookq-unverified";

size_t list_count(const LocConf& conf, const ngx_list_t& list, size_t& bytes) {
    size_t n = 0;
    for (const ngx_list_part_t* part = &list.part; part; part = part->next) {
        auto* h = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0)
                continue;
            n++;
            bytes += EnvelopeWriter::field_size(h[i].key.len) +
                     EnvelopeWriter::field_size(stored_value(conf, h[i]).size());
        }
    }
    return n;
}

// Envelope v1 in the request pool: one size computation, one allocation, one pass of memcpy.
// `unverified`: the reason a report-only location let the request through, else empty. It is
// stored as the header ":hookq-unverified", a name no request can carry (HTTP/1 splits header
// lines at the first colon; HTTP/2 pseudo-headers never reach headers_in), so a client cannot
// forge it; the worker turns it into X-Hookq-Unverified for the application.
std::string_view encode_envelope(ngx_http_request_t* r, const LocConf& conf, const Uuid& id,
                                 uint64_t received_at_us, std::string_view key,
                                 std::string_view body, std::string_view unverified) noexcept {
    std::string_view target = stored_target(r, conf);
    if (target.data() == nullptr)
        return {};
    std::string_view fields[] = {ngx::view(conf.source), key, ngx::view(r->method_name), target,
                                 ngx::view(r->connection->addr_text)};
    size_t size = EnvelopeWriter::fixed_size() + EnvelopeWriter::count_size() +
                  EnvelopeWriter::field_size(body.size());
    for (std::string_view f : fields)
        size += EnvelopeWriter::field_size(f.size());
    size_t headers = list_count(conf, r->headers_in.headers, size);
    if (!unverified.empty()) {
        headers++;
        size += EnvelopeWriter::field_size(kUnverifiedHeader.size()) +
                EnvelopeWriter::field_size(unverified.size());
    }

    auto* buf = ngx::palloc<char>(r->pool, size);
    if (buf == nullptr)
        return {};
    EnvelopeWriter w(buf);
    w.begin(id, received_at_us);
    for (std::string_view f : fields)
        w.field(f);
    w.u32(static_cast<uint32_t>(headers));
    for (ngx_list_part_t* part = &r->headers_in.headers.part; part; part = part->next) {
        auto* h = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0)
                continue;
            w.field(ngx::view(h[i].key));
            w.field(stored_value(conf, h[i]));
        }
    }
    if (!unverified.empty()) {
        w.field(kUnverifiedHeader);
        w.field(unverified);
    }
    w.field(body);
    return {buf, static_cast<size_t>(w.end() - buf)};
}

std::string_view pool_concat(ngx_pool_t* pool, std::string_view a, std::string_view b) noexcept {
    auto* p = ngx::palloc<char>(pool, a.size() + b.size());
    if (p == nullptr)
        return {};
    ngx::append(ngx::append(p, a), b);
    return {p, a.size() + b.size()};
}

Answer rejected(Verdict v) {
    switch (v) {
        case Verdict::missing_signature:
            return {NGX_HTTP_UNAUTHORIZED, Outcome::missing_signature, "missing signature\n"};
        case Verdict::malformed_signature:
            return {NGX_HTTP_BAD_REQUEST, Outcome::malformed, "malformed signature\n"};
        case Verdict::stale_timestamp:
            return {NGX_HTTP_UNAUTHORIZED, Outcome::stale_timestamp,
                    "timestamp outside tolerance\n"};
        default:
            return {NGX_HTTP_UNAUTHORIZED, Outcome::bad_signature, "invalid signature\n"};
    }
}

// Everything between "the body is here" and "the command is on the wire".
ngx_int_t process(ngx_http_request_t* r, RequestCtx* ctx) noexcept {
    const LocConf& conf = *ctx->conf;
    std::optional<std::string_view> body = body_of(r);
    if (!body) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "hookq: request body not in memory; is client_body_in_file_only set?");
        return send_answer(r, ctx, {NGX_HTTP_INTERNAL_SERVER_ERROR, Outcome::malformed, {}});
    }
    if (body->size() > conf.max_body)
        return send_answer(r, ctx, {NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, Outcome::too_large, {}});

    Verdict verdict;
    try {
        NginxRequestView view(r, conf, *body);
        verdict = conf.verifier->verify(view, static_cast<int64_t>(ngx_time()));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq: signature check failed: %s",
                      e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq: signature check failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    std::string_view unverified;
    if (verdict != Verdict::ok) {
        if (verdict == Verdict::certificate_expired ||
            verdict == Verdict::certificate_not_yet_valid) {
            // PayPal really signed it: the fix is on this side (its current certificate).
            char note[96];
            if (conf.cert_log.allow(note, sizeof note))
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "hookq: %V: verification failed (certificate %s): signed under a "
                              "hookq_paypal_cert outside its validity; install PayPal's current "
                              "one and reload%s",
                              &conf.source,
                              verdict == Verdict::certificate_expired ? "expired" : "not yet valid",
                              note);
        }
        Answer no = rejected(verdict);
        if (!conf.report_only)
            return send_answer(r, ctx, no);
        unverified = outcome_name(no.outcome);
        count_unverified(conf.source_index, no.outcome);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "hookq: %V: verification failed (%*s), accepted because of "
                      "\"hookq_verify report_only\"",
                      &conf.source, unverified.size(), unverified.data());
    }

    if (conf.scheme == Scheme::slack && body->find("url_verification") != std::string_view::npos) {
        try {
            if (auto challenge = slack_url_verification_challenge(*body)) {
                std::string_view text = pool_concat(r->pool, *challenge, {});
                if (text.data() == nullptr)
                    return out_of_memory(r, "the Slack challenge");
                return send_answer(r, ctx, {NGX_HTTP_OK, Outcome::challenge, text});
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "hookq: Slack url_verification failed: %s", e.what());
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        } catch (...) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "hookq: Slack url_verification failed");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    uint64_t now_us = realtime_us();
    Uuid id = generator()->next(now_us / 1000);
    id.format(ctx->id);

    ctx->keys.body = *body;
    ctx->keys.ready = true;
    ctx->keys.json_limit = conf.json_max;
    std::string_view key = dedup_key(r, conf, ctx->keys);
    std::string_view dedup = pool_concat(r->pool, conf.dedup_prefix, key);
    std::string_view envelope = encode_envelope(r, conf, id, now_us, key, *body, unverified);
    auto* args = ngx::palloc<IngestArgs>(r->pool);
    if (key.empty() || dedup.empty() || envelope.empty() || args == nullptr)
        return out_of_memory(r, "the envelope");

    // The ingest script's KEYS[1..2] and ARGV[1..4] (shared/redis_keys.h)
    *args = IngestArgs{};
    args->keys[0] = conf.queue_key;
    args->keys[1] = dedup;
    args->stage = conf.stage_key;
    args->args[0] = conf.depth_limit;
    args->args[1] = conf.ttl_text;
    args->args[2] = {ctx->id, sizeof ctx->id};
    args->args[3] = envelope;
    if (conf.loop) {
        std::optional<LoopKey> lk = loop_key(r, conf, ctx->keys);
        std::string_view counter =
            lk ? pool_concat(r->pool, conf.loop_prefix, lk->fingerprint) : std::string_view{};
        if (counter.empty())
            return out_of_memory(r, "the loop key");
        // and the loop part's KEYS[3..6] and ARGV[5..9]
        args->nkeys = IngestArgs::kLoopKeys;
        args->nargs = IngestArgs::kLoopArgs;
        args->keys[2] = counter;
        args->keys[3] = conf.loops_key;
        args->keys[4] = conf.loop_keys_key;
        args->keys[5] = conf.held_key;
        args->args[4] = conf.loop_window_text;
        args->args[5] = conf.loop_limit_text;
        args->args[6] = conf.loop_hold ? "1" : "0";
        args->args[7] = lk->fingerprint;
        args->args[8] = lk->readable;
    }

    ctx->pending = RedisRouter::instance().send_ingest(conf.slot, args, on_ingest_result, ctx);
    if (ctx->pending == nullptr)
        return send_answer(r, ctx, unavailable(Outcome::redis_error));

    auto* mcf = static_cast<MainConf*>(ngx_http_get_module_main_conf(r, ngx_http_hookq_module));
    ctx->timer.handler = on_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    // WAIT may hold the answer up to its own timeout after the script's reply.
    ngx_add_timer(&ctx->timer,
                  mcf->redis_timeout + (mcf->wait_replicas > 0 ? mcf->wait_timeout : 0));
    // Notice a client that hangs up while we wait: nginx then frees the request, and the pool
    // cleanup detaches it from the reply.
    r->read_event_handler = ngx_http_test_reading;
    return NGX_DONE;
}

void on_body_read(ngx_http_request_t* r) noexcept {
    auto* ctx = static_cast<RequestCtx*>(ngx_http_get_module_ctx(r, ngx_http_hookq_module));
    ctx->started_us = monotonic_us();
    ngx_int_t rc = process(r, ctx);
    if (rc != NGX_DONE)
        ngx_http_finalize_request(r, rc);
}

}  // namespace

BodyKeys* request_body_keys(ngx_http_request_t* r) noexcept {
    auto* ctx = static_cast<RequestCtx*>(ngx_http_get_module_ctx(r, ngx_http_hookq_module));
    return ctx ? &ctx->keys : nullptr;
}

void install_body_filter() noexcept {
    g_next_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = collect_body;
}

bool init_request_ids(ngx_log_t* log) noexcept {
    try {
        generator().emplace();
        return true;
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "hookq: cannot seed the request id generator (%s): this worker stops",
                      e.what());
    } catch (...) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "hookq: cannot seed the request id generator: this worker stops");
    }
    return false;
}

ngx_int_t ingest_handler(ngx_http_request_t* r) noexcept {
    auto* conf = static_cast<LocConf*>(ngx_http_get_module_loc_conf(r, ngx_http_hookq_module));
    if (conf->scheme == Scheme::moysklad)
        redact_request_line(r, *conf);
    if (!(r->method & NGX_HTTP_POST)) {
        count(conf->source_index, Outcome::method_not_allowed);
        if (!add_header(r, "Allow", "POST"))
            return out_of_memory(r, "a response header");
        return NGX_HTTP_NOT_ALLOWED;
    }
    if (!generator()) {  // init_process failed and this worker should not exist; say so anyway
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "hookq: no request id generator");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    auto* ctx = ngx::pcalloc<RequestCtx>(r->pool);
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx == nullptr || cln == nullptr)
        return out_of_memory(r, "the request context");
    ctx->r = r;
    ctx->conf = conf;
    cln->handler = on_request_freed;
    cln->data = ctx;
    ngx_http_set_ctx(r, ctx, ngx_http_hookq_module);

    r->request_body_in_single_buf = 1;
    ctx->collect = r->headers_in.chunked || r->headers_in.content_length_n < 0;
    ngx_int_t rc = ngx_http_read_client_request_body(r, on_body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
            count(conf->source_index, Outcome::too_large);
        else if (rc == NGX_HTTP_BAD_REQUEST)
            count(conf->source_index, Outcome::malformed);
        return rc;
    }
    return NGX_DONE;
}

ngx_int_t log_phase_handler(ngx_http_request_t* r) noexcept {
    auto* conf = static_cast<LocConf*>(ngx_http_get_module_loc_conf(r, ngx_http_hookq_module));
    if (conf == nullptr || !conf->enabled)
        return NGX_OK;
    if (ngx_http_get_module_ctx(r, ngx_http_hookq_module) == nullptr &&
        r->headers_out.status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
        count(conf->source_index, Outcome::too_large);
    return NGX_OK;
}

}  // namespace hookq::edge
