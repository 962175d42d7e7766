#include "worker/pipeline/decide.h"

#include <algorithm>

#include "worker/pipeline/retry.h"

namespace hookq {

std::string_view to_string(OutcomeKind k) noexcept {
    switch (k) {
        case OutcomeKind::delivered:
            return "delivered";
        case OutcomeKind::retry:
            return "retry";
        case OutcomeKind::dead:
            return "dead";
        case OutcomeKind::parked:
            return "parked";
        case OutcomeKind::split:
            return "split";
        case OutcomeKind::waiting:
            return "waiting";
        case OutcomeKind::coalesced:
            return "coalesced";
    }
    return "?";
}

bool retryable_status(int s) noexcept {
    return s == 408 || s == 425 || s == 429 || (s >= 500 && s <= 599);
}

AttemptResult attempt_result(Transport transport, int final_status, std::string transport_error) {
    AttemptResult r;
    if (final_status > 0) {
        r.http_status = final_status;
        return r;
    }
    r.transport = transport == Transport::ok ? Transport::other_error : transport;
    r.error = std::move(transport_error);
    return r;
}

std::string body_excerpt(std::string_view body, size_t max) {
    if (body.size() > max) {
        size_t cut = max;
        // Back off continuation bytes, then the lead byte whose sequence no longer fits.
        while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        body = body.substr(0, cut);
    }
    std::string out(body);
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            c = ' ';
        }
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

Decision decide(const AttemptResult& r, uint32_t attempt, const RetryPolicy& p, double u01) {
    Decision d;
    if (r.transport == Transport::ok && r.http_status >= 200 && r.http_status <= 299) {
        return d;
    }
    if (r.transport == Transport::ok && !retryable_status(r.http_status)) {
        // The application understood the request and refused it: trying again cannot help, and
        // it says nothing about the destination's health, so the breaker is not told.
        d.kind = OutcomeKind::dead;
        d.flag_route = r.http_status == 410;
        d.reason = "HTTP " + std::to_string(r.http_status);
        if (r.http_status < 100) {
            d.reason = "invalid HTTP status " + std::to_string(r.http_status);
        }
        return d;
    }
    d.breaker_failure = true;
    switch (r.transport) {
        case Transport::ok:
            d.reason = "HTTP " + std::to_string(r.http_status);
            break;
        case Transport::timeout:
            d.reason = "timeout";
            break;
        case Transport::connect_error:
            d.reason = "connection failed";
            break;
        case Transport::other_error:
            d.reason = "transport error";
            break;
    }
    if (!r.error.empty()) {
        d.reason += ": " + r.error;
    }
    if (attempt >= p.max_attempts) {
        d.kind = OutcomeKind::dead;
        d.reason = "attempts exhausted (" + std::to_string(attempt) + "), last: " + d.reason;
        return d;
    }
    d.kind = OutcomeKind::retry;
    d.delay_ms = backoff_delay_ms(p, attempt, u01);
    if (r.retry_after_ms) {
        // Honour the server's wish but never beyond the route's cap: a hostile or buggy
        // Retry-After of a week must not park a webhook for a week.
        d.delay_ms = std::min(std::max(d.delay_ms, *r.retry_after_ms), p.max_delay_ms);
    }
    return d;
}

}  // namespace hookq
