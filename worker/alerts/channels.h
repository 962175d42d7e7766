// Where alert messages go: a Slack-compatible incoming webhook, a generic webhook signed with
// hookq's Standard Webhooks signature, and email over SMTP, all through libcurl. Each channel has
// its own sender thread and bounded queue, so a channel that hangs delays only its own messages:
// never the evaluation, never another channel, never a delivery.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "worker/alerts/rules.h"
#include "worker/config.h"

namespace hookq::alerts {

struct AlertInfo {
    std::string fingerprint;
    std::string rule;
    Labels labels;
    std::string severity;
    bool resolved = false;
    double value = 0;
    double threshold = 0;
    std::string summary;
    int64_t since_ms = 0;  // firing: firing_since; resolved: resolved_at
};

// One group of one rule, as it goes out on one channel.
struct Message {
    std::string rule;
    std::string severity;  // the highest of the group
    bool resolved = false;
    std::vector<AlertInfo> alerts;
    size_t folded = 0;  // messages the rate limit held back on this channel since the last one
};

// What the texts name besides the alerts.
struct MessageContext {
    std::string instance;
    std::string runbook_url;  // docs/runbooks.md, the rule's anchor is appended
    std::string dashboard_url;
};

std::string rfc5322_date(int64_t ms);
std::string runbook_link(const MessageContext& ctx, const std::string& rule);
// The plain text of a message: Slack's "text" and the email's body.
std::string message_text(const Message& m, const MessageContext& ctx);
std::string email_subject(const Message& m, const MessageContext& ctx);
// The generic webhook's JSON: the first alert's fields at the top, every alert in "alerts".
std::string webhook_body(const Message& m, const MessageContext& ctx, const std::string& id,
                         int64_t now_ms);
// A complete RFC 5322 message (CRLF line ends), UTF-8 text/plain.
std::string email_message(const Message& m, const MessageContext& ctx, const AlertChannel& ch,
                          int64_t now_ms, const std::string& message_id);

struct SendResult {
    size_t channel = 0;
    std::vector<uint64_t> event_seqs;
    std::string rule;
    std::string outcome;  // "sent" or "error: ..."
};

class Notifier {
  public:
    using Done = std::function<void(SendResult)>;
    Notifier(const AlertsConfig& cfg, Done done);
    ~Notifier() { stop(); }
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    void start();
    void stop();
    // false when the channel's queue is full (the message is dropped; the caller records why).
    bool submit(size_t channel, Message m, std::vector<uint64_t> event_seqs);

  private:
    struct Job {
        Message m;
        std::vector<uint64_t> seqs;
    };
    struct Lane {
        const AlertChannel* ch = nullptr;
        std::mutex mu;
        std::condition_variable cv;
        std::deque<Job> q;
        std::thread t;
    };
    void run(size_t i);
    std::string send(const AlertChannel& ch, const Message& m);  // "sent" or "error: ..."

    const AlertsConfig& cfg_;
    MessageContext ctx_;
    Done done_;
    std::vector<std::unique_ptr<Lane>> lanes_;
    std::atomic<bool> stopping_{false};
};

}  // namespace hookq::alerts
