#include "ngx_module/status.h"

#include <array>
#include <string_view>
#include <vector>

#include "ngx_module/config.h"
#include "ngx_module/module.h"
#include "shared/prometheus.h"

namespace hookq::edge {
namespace {

constexpr size_t kOutcomes = static_cast<size_t>(Outcome::count_);
constexpr std::array<std::string_view, kOutcomes> kOutcomeNames = {
    "accepted",           "duplicate",       "challenge",   "missing_signature",
    "bad_signature",      "stale_timestamp", "malformed",   "too_large",
    "method_not_allowed", "queue_full",      "redis_error", "unreplicated"};

// Upper bounds in microseconds; the last bucket is +Inf.
constexpr std::array<uint64_t, 11> kBucketsUs = {50,   100,   250,   500,    1000,   2500,
                                                 5000, 10000, 25000, 100000, 1000000};
constexpr std::array<std::string_view, 11> kBucketLabels = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005",   "0.01",   "0.025",   "0.1",    "1"};
constexpr size_t kBuckets = kBucketsUs.size() + 1;

struct SourceCounters {
    ngx_atomic_t outcomes[kOutcomes];
    ngx_atomic_t buckets[kBuckets];  // not cumulative; summed when printed
    ngx_atomic_t latency_sum_us;
    ngx_atomic_t unverified[kOutcomes];  // by the verification outcome
    ngx_atomic_t loop[2];                // over hookq_loop_limit: [0] counted, [1] held
};

struct Counters {
    uint64_t layout;  // hash of the source list: a reload that changes it starts from zero
    size_t sources;
    SourceCounters source[1];
};

Counters* g_counters = nullptr;

size_t counters_size(size_t sources) {
    return sizeof(Counters) + sizeof(SourceCounters) * (sources ? sources - 1 : 0);
}

uint64_t layout_hash(const MainConf& mcf) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (const auto& s : mcf.sources) {
        for (unsigned char c : s)
            h = (h ^ c) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

Counters* allocate(ngx_slab_pool_t* shpool, size_t sources, uint64_t layout) {
    auto* c = static_cast<Counters*>(ngx_slab_calloc(shpool, counters_size(sources)));
    if (c == nullptr)
        return nullptr;
    c->layout = layout;
    c->sources = sources;
    shpool->data = c;
    return c;
}

ngx_int_t init_zone(ngx_shm_zone_t* zone, void* old) noexcept {
    auto* mcf = static_cast<MainConf*>(zone->data);
    auto* shpool = reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr);
    uint64_t layout = layout_hash(*mcf);
    size_t sources = mcf->sources.size();
    Counters* c = nullptr;
    if (old != nullptr) {
        // nginx hands the previous cycle's zone back only when its size is unchanged, and the size
        // is a function of the number of sources (zone_size()): the block has room for exactly
        // these sources. Workers of the old cycle still count into it until they exit: they bound
        // their index by `sources`, read from the block, so they never write past it either.
        c = static_cast<Counters*>(old);
        if (c->sources != sources) {
            // Cannot happen with zone_size(); never write past the old block if it ever does.
            c = allocate(shpool, sources, layout);
        } else if (c->layout != layout) {
            ngx_memzero(c->source, sizeof(SourceCounters) * sources);
            c->layout = layout;
        }
    } else if (zone->shm.exists) {  // Windows only; kept for form
        c = static_cast<Counters*>(shpool->data);
    } else {
        c = allocate(shpool, sources, layout);
    }
    if (c == nullptr) {
        ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0,
                      "hookq: no room for %uz sources' counters in the hookq_status zone", sources);
        return NGX_ERROR;
    }
    g_counters = c;
    zone->data = c;  // what the next reload is handed as `old`
    return NGX_OK;
}

// Room for the slab allocator's own pages plus the counters, and strictly increasing in the number
// of sources: a reload that adds or removes one gets a fresh zone from nginx (the old one stays
// mapped for the old workers until they exit) instead of the old block, sized for fewer sources.
size_t zone_size(size_t sources) {
    return 8 * ngx_pagesize + 2 * ngx_align(counters_size(sources), ngx_pagesize) +
           sources * sizeof(SourceCounters);
}

ngx_chain_t* append(ngx_http_request_t* r, ngx_chain_t** tail, std::string_view text) {
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, text.size());
    if (b == nullptr)
        return nullptr;
    b->last = ngx_cpymem(b->last, text.data(), text.size());
    auto* cl = ngx_alloc_chain_link(r->pool);
    if (cl == nullptr)
        return nullptr;
    cl->buf = b;
    cl->next = nullptr;
    *tail = cl;
    return cl;
}

}  // namespace

ngx_int_t status_init_zone(ngx_conf_t* cf) noexcept {
    auto* mcf =
        static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_hookq_module));
    static ngx_str_t name = ngx_string("hookq_status");
    ngx_shm_zone_t* zone =
        ngx_shared_memory_add(cf, &name, zone_size(mcf->sources.size()), &ngx_http_hookq_module);
    if (zone == nullptr)
        return NGX_ERROR;
    zone->init = init_zone;
    zone->data = mcf;
    return NGX_OK;
}

void count(int source, Outcome outcome) noexcept {
    if (g_counters == nullptr || source < 0 || static_cast<size_t>(source) >= g_counters->sources)
        return;
    ngx_atomic_fetch_add(&g_counters->source[source].outcomes[static_cast<size_t>(outcome)], 1);
}

std::string_view outcome_name(Outcome outcome) noexcept {
    return kOutcomeNames[static_cast<size_t>(outcome)];
}

void count_unverified(int source, Outcome reason) noexcept {
    if (g_counters == nullptr || source < 0 || static_cast<size_t>(source) >= g_counters->sources)
        return;
    ngx_atomic_fetch_add(&g_counters->source[source].unverified[static_cast<size_t>(reason)], 1);
}

void count_loop(int source, bool held) noexcept {
    if (g_counters == nullptr || source < 0 || static_cast<size_t>(source) >= g_counters->sources)
        return;
    ngx_atomic_fetch_add(&g_counters->source[source].loop[held ? 1 : 0], 1);
}

void observe_latency(int source, uint64_t elapsed_us) noexcept {
    if (g_counters == nullptr || source < 0 || static_cast<size_t>(source) >= g_counters->sources)
        return;
    SourceCounters& s = g_counters->source[source];
    size_t b = 0;
    while (b < kBucketsUs.size() && elapsed_us > kBucketsUs[b])
        b++;
    ngx_atomic_fetch_add(&s.buckets[b], 1);
    ngx_atomic_fetch_add(&s.latency_sum_us, elapsed_us);
}

ngx_int_t status_handler(ngx_http_request_t* r) noexcept {
    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)))
        return NGX_HTTP_NOT_ALLOWED;
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK)
        return rc;
    auto* mcf = static_cast<MainConf*>(ngx_http_get_module_main_conf(r, ngx_http_hookq_module));

    std::string text;
    try {
        text.reserve(1024 + mcf->sources.size() * 2048);
        text +=
            "# HELP hookq_edge_requests_total Webhook requests answered by the edge, by outcome.\n"
            "# TYPE hookq_edge_requests_total counter\n";
        size_t n = g_counters ? g_counters->sources : 0;
        // Source names are free text (a quoted nginx argument may hold " or \\).
        std::vector<std::string> names;
        names.reserve(mcf->sources.size());
        for (const auto& name : mcf->sources)
            names.push_back(prometheus::escape_label(name));
        for (size_t s = 0; s < n && s < mcf->sources.size(); s++) {
            for (size_t o = 0; o < kOutcomes; o++) {
                text += "hookq_edge_requests_total{source=\"" + names[s] + "\",outcome=\"";
                text += kOutcomeNames[o];
                text += "\"} " + std::to_string(g_counters->source[s].outcomes[o]) + "\n";
            }
        }
        text +=
            "# HELP hookq_edge_latency_seconds The edge's own time per request: body read "
            "to answer, Redis round trip included.\n"
            "# TYPE hookq_edge_latency_seconds histogram\n";
        for (size_t s = 0; s < n && s < mcf->sources.size(); s++) {
            const SourceCounters& c = g_counters->source[s];
            const std::string label = "{source=\"" + names[s] + "\",le=\"";
            uint64_t cumulative = 0;
            for (size_t b = 0; b < kBuckets; b++) {
                cumulative += c.buckets[b];
                text += "hookq_edge_latency_seconds_bucket" + label;
                text += b < kBucketLabels.size() ? kBucketLabels[b] : "+Inf";
                text += "\"} " + std::to_string(cumulative) + "\n";
            }
            char sum[64];
            snprintf(sum, sizeof sum, "%.6f", static_cast<double>(c.latency_sum_us) / 1e6);
            text += "hookq_edge_latency_seconds_sum{source=\"" + names[s] + "\"} " + sum + "\n";
            text += "hookq_edge_latency_seconds_count{source=\"" + names[s] + "\"} " +
                    std::to_string(cumulative) + "\n";
        }
        text +=
            "# HELP hookq_edge_unverified_total Requests that failed verification and were "
            "accepted anyway (hookq_verify report_only), by reason.\n"
            "# TYPE hookq_edge_unverified_total counter\n";
        for (size_t s = 0; s < n && s < mcf->sources.size(); s++) {
            for (Outcome o : {Outcome::missing_signature, Outcome::bad_signature,
                              Outcome::stale_timestamp, Outcome::malformed}) {
                text += "hookq_edge_unverified_total{source=\"" + names[s] + "\",reason=\"";
                text += kOutcomeNames[static_cast<size_t>(o)];
                text += "\"} " +
                        std::to_string(g_counters->source[s].unverified[static_cast<size_t>(o)]) +
                        "\n";
            }
        }
        text +=
            "# HELP hookq_edge_loop_total Requests over their location's hookq_loop_limit (the "
            "same entity repeating), queued and counted or held.\n"
            "# TYPE hookq_edge_loop_total counter\n";
        for (size_t s = 0; s < n && s < mcf->sources.size(); s++) {
            for (int held = 0; held < 2; held++)
                text += "hookq_edge_loop_total{source=\"" + names[s] + "\",action=\"" +
                        (held ? "held" : "counted") + "\"} " +
                        std::to_string(g_counters->source[s].loop[held]) + "\n";
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq_status: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq_status: cannot build the page");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = static_cast<off_t>(text.size());
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only)
        return rc;
    ngx_chain_t* out = nullptr;
    if (append(r, &out, text) == nullptr) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "hookq_status: out of memory");
        return NGX_ERROR;  // the header is out: close the connection
    }
    out->buf->last_buf = (r == r->main) ? 1 : 0;
    out->buf->last_in_chain = 1;
    return ngx_http_output_filter(r, out);
}

}  // namespace hookq::edge
