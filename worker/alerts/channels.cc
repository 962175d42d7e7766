#include "worker/alerts/channels.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "shared/crypto.h"
#include "shared/signature.h"
#include "shared/uuid.h"
#include "worker/clock.h"
#include "worker/log.h"
#include "worker/metrics.h"

namespace hookq::alerts {

namespace {

constexpr int kTries = 3;

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string label_text(const Labels& labels) {
    std::string out;
    for (const auto& [k, v] : labels) {
        out += (out.empty() ? "" : ", ") + k + "=" + v;
    }
    return out.empty() ? "-" : out;
}

// Header values must stay on one line: a label value (a route name, a source) is operator input.
std::string one_line(std::string s) {
    for (char& c : s) {
        if (c == '\r' || c == '\n') {
            c = ' ';
        }
    }
    return s;
}

// RFC 2047 for a Subject with anything but printable ASCII.
std::string encode_header(const std::string& s) {
    bool ascii = true;
    for (unsigned char c : s) {
        ascii = ascii && c >= 0x20 && c < 0x7f;
    }
    if (ascii) {
        return s;
    }
    return "=?UTF-8?B?" +
           crypto::base64_encode(reinterpret_cast<const unsigned char*>(s.data()), s.size()) + "?=";
}

size_t discard(char*, size_t size, size_t n, void*) {
    return size * n;
}

struct Upload {
    const std::string* data;
    size_t off = 0;
};
size_t read_upload(char* buf, size_t size, size_t n, void* p) {
    auto* u = static_cast<Upload*>(p);
    size_t len = std::min(size * n, u->data->size() - u->off);
    std::memcpy(buf, u->data->data() + u->off, len);
    u->off += len;
    return len;
}

// A stopping worker does not wait out a hanging channel's timeout.
int abort_when_stopping(void* stopping, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<std::atomic<bool>*>(stopping)->load() ? 1 : 0;
}

}  // namespace

std::string rfc5322_date(int64_t ms) {
    static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t t = ms / 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}

std::string runbook_link(const MessageContext& ctx, const std::string& rule) {
    return ctx.runbook_url + "#" + runbook_anchor(rule);
}

std::string message_text(const Message& m, const MessageContext& ctx) {
    std::string out = std::string(m.resolved ? "[RESOLVED " : "[FIRING ") + m.severity + "] " +
                      m.rule + " on " + ctx.instance + " (" + std::to_string(m.alerts.size()) +
                      (m.alerts.size() == 1 ? " alert)\n" : " alerts)\n");
    for (const auto& a : m.alerts) {
        out += "- " + a.rule + " {" + label_text(a.labels) + "} " + a.severity + ": value " +
               number(a.value) + " against threshold " + number(a.threshold) +
               (a.resolved ? ", resolved at " : ", since ") + rfc3339(a.since_ms * 1000);
        if (!a.summary.empty()) {
            out += " (" + a.summary + ")";
        }
        out += "\n";
    }
    if (m.folded > 0) {
        out += "...and " + std::to_string(m.folded) + " more (rate limited on this channel)\n";
    }
    out += "Runbook: " + runbook_link(ctx, m.rule) + "\n";
    if (!ctx.dashboard_url.empty()) {
        out += "Dashboard: " + ctx.dashboard_url + "\n";
    }
    return out;
}

std::string email_subject(const Message& m, const MessageContext& ctx) {
    std::string s = "[hookq " + m.severity + "] " + (m.resolved ? "RESOLVED " : "FIRING ") +
                    m.rule + " on " + ctx.instance;
    if (m.alerts.size() == 1) {
        s += " {" + label_text(m.alerts[0].labels) + "}";
    } else {
        s += " (" + std::to_string(m.alerts.size()) + " alerts)";
    }
    return one_line(s);
}

std::string webhook_body(const Message& m, const MessageContext& ctx, const std::string& id,
                         int64_t now_ms) {
    auto one = [&](const AlertInfo& a) {
        nlohmann::ordered_json j;
        j["fingerprint"] = a.fingerprint;
        j["rule"] = a.rule;
        j["labels"] = a.labels;
        j["severity"] = a.severity;
        j["state"] = a.resolved ? "resolved" : "firing";
        j["value"] = a.value;
        j["threshold"] = a.threshold;
        j["since"] = rfc3339(a.since_ms * 1000);
        j["summary"] = a.summary;
        return j;
    };
    nlohmann::ordered_json j;
    j["id"] = id;
    j["type"] = m.resolved ? "alert.resolved" : "alert.firing";
    j["time"] = rfc3339(now_ms * 1000);
    j["instance"] = ctx.instance;
    j["rule"] = m.rule;
    const AlertInfo& first = m.alerts.front();
    j["labels"] = first.labels;
    j["severity"] = m.severity;
    j["value"] = first.value;
    j["threshold"] = first.threshold;
    j["since"] = rfc3339(first.since_ms * 1000);
    j["runbook"] = runbook_link(ctx, m.rule);
    j["url"] = ctx.dashboard_url;
    j["alerts"] = nlohmann::ordered_json::array();
    for (const auto& a : m.alerts) {
        j["alerts"].push_back(one(a));
    }
    j["more"] = m.folded;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string email_message(const Message& m, const MessageContext& ctx, const AlertChannel& ch,
                          int64_t now_ms, const std::string& message_id) {
    std::string to;
    for (const auto& t : ch.to) {
        to += (to.empty() ? "" : ", ") + t;
    }
    std::string text = message_text(m, ctx);
    std::string body;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) {
            body += "\r\n";
        } else {
            body += text[i];
        }
    }
    return "Date: " + rfc5322_date(now_ms) + "\r\n" + "From: hookq <" + ch.from + ">\r\n" +
           "To: " + to + "\r\n" + "Message-ID: <" + message_id + ">\r\n" +
           "Subject: " + encode_header(email_subject(m, ctx)) + "\r\n" + "MIME-Version: 1.0\r\n" +
           "Content-Type: text/plain; charset=utf-8\r\n" + "Content-Transfer-Encoding: 8bit\r\n" +
           "Auto-Submitted: auto-generated\r\n\r\n" + body;
}

Notifier::Notifier(const AlertsConfig& cfg, Done done)
    : cfg_(cfg), ctx_{cfg.instance, cfg.runbook_url, cfg.dashboard_url}, done_(std::move(done)) {
    for (const auto& ch : cfg_.channels) {
        auto lane = std::make_unique<Lane>();
        lane->ch = &ch;
        lanes_.push_back(std::move(lane));
    }
}

void Notifier::start() {
    for (size_t i = 0; i < lanes_.size(); ++i) {
        lanes_[i]->t = std::thread([this, i] { run(i); });
    }
}

void Notifier::stop() {
    stopping_ = true;
    for (auto& l : lanes_) {
        { std::lock_guard lock(l->mu); }
        l->cv.notify_all();
    }
    for (auto& l : lanes_) {
        if (l->t.joinable()) {
            l->t.join();
        }
    }
}

bool Notifier::submit(size_t channel, Message m, std::vector<uint64_t> seqs) {
    if (channel >= lanes_.size()) {
        return false;
    }
    Lane& l = *lanes_[channel];
    {
        std::lock_guard lock(l.mu);
        if (l.q.size() >= cfg_.queue_size) {
            return false;
        }
        l.q.push_back(Job{std::move(m), std::move(seqs)});
    }
    l.cv.notify_one();
    return true;
}

void Notifier::run(size_t i) {
    Lane& l = *lanes_[i];
    while (true) {
        Job job;
        {
            std::unique_lock lock(l.mu);
            l.cv.wait(lock, [&] { return stopping_ || !l.q.empty(); });
            if (stopping_) {
                return;
            }
            job = std::move(l.q.front());
            l.q.pop_front();
        }
        std::string outcome;
        for (int attempt = 1; attempt <= kTries; ++attempt) {
            outcome = send(*l.ch, job.m);
            if (outcome == "sent" || attempt == kTries) {
                break;
            }
            // 1 s, then 2 s; a stop cuts the wait short.
            std::unique_lock lock(l.mu);
            if (l.cv.wait_for(lock, std::chrono::milliseconds(1000 << (attempt - 1)),
                              [&] { return stopping_.load(); })) {
                break;
            }
        }
        bool ok = outcome == "sent";
        metrics::global().alert_sent(job.m.rule, l.ch->name, ok ? "sent" : "error");
        if (!ok) {
            log::warn("alert not sent", {{"channel", l.ch->name},
                                         {"rule", job.m.rule},
                                         {"tries", kTries},
                                         {"error", outcome}});
        }
        done_(SendResult{i, std::move(job.seqs), job.m.rule, outcome});
    }
}

std::string Notifier::send(const AlertChannel& ch, const Message& m) {
    CURL* c = curl_easy_init();
    if (!c) {
        return "error: curl_easy_init failed";
    }
    curl_slist* headers = nullptr;
    curl_slist* rcpt = nullptr;
    std::string payload;
    int64_t now = static_cast<int64_t>(now_ms());
    curl_easy_setopt(c, CURLOPT_URL, ch.url.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(ch.timeout_ms));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(ch.timeout_ms));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_when_stopping);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &stopping_);
    Upload up{&payload};
    if (ch.type == "smtp") {
        thread_local Uuid7Generator gen;
        std::string mid = gen.next(static_cast<uint64_t>(now)).str() + "@hookq." + cfg_.instance;
        for (char& x : mid) {
            if (x == ' ' || x == '<' || x == '>') {
                x = '-';
            }
        }
        payload = email_message(m, ctx_, ch, now, mid);
        curl_easy_setopt(c, CURLOPT_MAIL_FROM, ("<" + ch.from + ">").c_str());
        for (const auto& t : ch.to) {
            rcpt = curl_slist_append(rcpt, ("<" + t + ">").c_str());
        }
        curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(payload.size()));
        if (ch.url.starts_with("smtp://") && ch.starttls) {
            curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
        }
        if (!ch.username.empty()) {
            curl_easy_setopt(c, CURLOPT_USERNAME, ch.username.c_str());
            curl_easy_setopt(c, CURLOPT_PASSWORD, ch.password.c_str());
        }
    } else {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "User-Agent: hookq-alerts");
        if (ch.type == "slack") {
            payload = nlohmann::json{{"text", message_text(m, ctx_)}}.dump(
                -1, ' ', false, nlohmann::json::error_handler_t::replace);
        } else {
            thread_local Uuid7Generator gen;
            std::string id = "alert_" + gen.next(static_cast<uint64_t>(now)).str();
            payload = webhook_body(m, ctx_, id, now);
            if (!ch.signing_key.empty()) {
                int64_t ts = now / 1000;
                std::string sig = standard_webhooks_signature(ch.signing_key, id, ts, payload);
                headers = curl_slist_append(headers, ("webhook-id: " + id).c_str());
                headers = curl_slist_append(headers,
                                            ("webhook-timestamp: " + std::to_string(ts)).c_str());
                headers = curl_slist_append(headers, ("webhook-signature: " + sig).c_str());
            }
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpt);
    // curl_easy_strerror names the failure without the URL (which may carry a token).
    if (rc != CURLE_OK) {
        return std::string("error: ") + curl_easy_strerror(rc);
    }
    if (ch.type != "smtp" && (status < 200 || status > 299)) {
        return "error: HTTP " + std::to_string(status);
    }
    return "sent";
}

}  // namespace hookq::alerts
