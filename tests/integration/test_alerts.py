"""The in-worker alerting engine against real servers: rules fire and resolve on a real pipeline,
notifications reach a local Slack-style receiver, a signed generic webhook and a local SMTP server;
grouping, the per-channel rate limit, silences, the lease (two workers notify once, taken once
Redis is up when the worker started without it), and a hanging channel that does not slow
deliveries."""

import base64
import email
import email.policy
import email.utils
import hashlib
import hmac
import json
import threading
import time

import pytest

import harness
from sink import Sink
from worker_fixtures import (config_text, enqueue, event_status, route, rows, sql, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

ALERT_SECRET = "whsec_" + base64.b64encode(b"alert-signing-key-0123456789").decode()


@pytest.fixture
def receiver():
    """Stands in for Slack's incoming webhook and the generic webhook's endpoint."""
    s = Sink()
    yield s
    s.close()


def alerts_config(channels, rules="", extra="", interval="1s", group_wait="0s"):
    return f"""
[alerts]
interval = "{interval}"
group_wait = "{group_wait}"
instance = "test-instance"
dashboard_url = "http://127.0.0.1:9187/ui/"
runbook_url = "https://docs.example/runbooks.md"
{extra}
{channels}
{rules}
"""


def slack_channel(url, name="slack", extra=""):
    return f'[[alerts.channels]]\nname = "{name}"\ntype = "slack"\nurl = "{url}"\n{extra}\n'


def texts(receiver, path, needle=""):
    return [json.loads(r.body)["text"] for r in receiver.received(path)
            if needle in json.loads(r.body)["text"]]


def events(pg, rule):
    return rows(pg, "SELECT state, notified FROM alert_events WHERE rule = %s ORDER BY id", rule)


def verify_standard_webhooks(req, secret):
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, ts = req.headers["webhook-id"], req.headers["webhook-timestamp"]
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + req.body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert hmac.compare_digest(req.headers["webhook-signature"], expected)
    assert abs(int(ts) - time.time()) < 60


def test_breaker_open_fires_then_recovery_on_slack_and_signed_webhook(
        redis_server, pg_migrated, sink, receiver, workers):
    r = redis_server.client()
    retry = '[routes.retry]\nmax_attempts = 20\ninitial = "50ms"\nmax_delay = "100ms"\n'
    channels = (slack_channel(receiver.url("/slack")) +
                f'[[alerts.channels]]\nname = "hook"\ntype = "webhook"\n'
                f'url = "{receiver.url("/wh")}"\nsecret = "literal:{ALERT_SECRET}"\n')
    port = harness.free_port()
    admin = f'[admin]\nlisten = "127.0.0.1:{port}"\nmetrics_public = true\n'
    config = config_text(redis_server, pg_migrated,
                         alerts_config(channels) + admin +
                         route("app", "brk", sink.url("/app"), retry),
                         breaker='failure_threshold = 2\nwindow = "1m"\nopen_for = "1s"\n'
                                 'close_after = 1')
    sink.set("/app", "503")  # the application is down
    w = workers(config)
    ids = enqueue(r, "brk", 3)

    firing = wait_until(lambda: texts(receiver, "/slack", "[FIRING P1] breaker_open"), 30,
                        what="breaker_open firing on slack")[0]
    dest = "http://127.0.0.1:%d" % sink.port
    assert f"destination={dest}" in firing
    assert "on test-instance" in firing and "against threshold 1, since 20" in firing
    assert "Runbook: https://docs.example/runbooks.md#destination-down-breaker-open" in firing
    assert "Dashboard: http://127.0.0.1:9187/ui/" in firing

    def hooks(kind):
        return [q for q in receiver.received("/wh")
                if json.loads(q.body)["type"] == kind and json.loads(q.body)["rule"] ==
                "breaker_open"]
    hook = wait_until(lambda: hooks("alert.firing"), 20, what="signed webhook")[0]
    verify_standard_webhooks(hook, ALERT_SECRET)
    body = json.loads(hook.body)
    assert body["labels"] == {"destination": dest} and body["severity"] == "P1"
    assert body["instance"] == "test-instance" and body["value"] == 1
    assert body["runbook"].endswith("#destination-down-breaker-open")
    assert body["id"] == hook.headers["webhook-id"]

    import urllib.request
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'hookq_alerts_active{rule="breaker_open",severity="P1",state="firing"} 1' in metrics

    sink.set("/app", "200")  # the application is back
    resolved = wait_until(lambda: texts(receiver, "/slack", "[RESOLVED P1] breaker_open"), 30,
                          what="recovery message")[0]
    assert "resolved at" in resolved and "circuit breaker closed" in resolved
    verify_standard_webhooks(wait_until(lambda: hooks("alert.resolved"), 20,
                                        what="resolved webhook")[0], ALERT_SECRET)
    wait_until(lambda: all(event_status(pg_migrated).get(i) == "delivered" for i in ids), 30,
               what="all delivered")
    # The state and the transitions are recorded, with each channel's outcome.
    fp = "breaker_open{destination=%s}" % dest
    wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = %s",
                            fp) == [("resolved",)], 10, what="alerts row resolved")
    ev = wait_until(lambda: [e for e in events(pg_migrated, "breaker_open")
                             if e[1].get("slack") == "sent" and e[1].get("hook") == "sent"]
                    if len(events(pg_migrated, "breaker_open")) >= 2 else None, 10,
                    what="both transitions notified")
    assert [e[0] for e in events(pg_migrated, "breaker_open")][-2:] == ["firing", "resolved"]
    assert len(ev) == 2
    # Exactly one firing and one resolved message: no repeats while it stayed open.
    assert len(texts(receiver, "/slack", "breaker_open")) == 2
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for ch in ("slack", "hook"):
        assert f'hookq_alerts_sent_total{{rule="breaker_open",channel="{ch}",result="sent"}} 2' \
            in metrics, metrics
    assert "hookq_alerts_leader 1" in metrics
    assert w.proc.poll() is None


class SmtpServer:
    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages = []
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with outer.lock:
                    outer.messages.append(envelope)
                return "250 OK"

        self.port = harness.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def received(self, needle=""):
        with self.lock:
            return [e for e in self.messages if needle.encode() in e.content]

    def close(self):
        self.controller.stop()


def test_failure_ratio_and_dead_letters_by_email(redis_server, pg_migrated, sink, workers):
    smtp = SmtpServer()
    try:
        channels = (f'[[alerts.channels]]\nname = "mail"\ntype = "smtp"\n'
                    f'url = "smtp://127.0.0.1:{smtp.port}"\nstarttls = false\n'
                    f'from = "hookq@example.com"\nto = ["oncall@example.com", "ops@example.com"]\n')
        rules = ('[alerts.rules.failure_ratio]\nthreshold = 0.5\nwarn_threshold = 0.1\n'
                 'min_count = 4\nwindow = "1m"\nfor = "0s"\n')
        retry = '[routes.retry]\nmax_attempts = 1\n'
        config = config_text(redis_server, pg_migrated,
                             alerts_config(channels, rules) +
                             route("pay", "stripe", sink.url("/pay"), retry),
                             breaker="failure_threshold = 1000")
        sink.set("/pay", "500")
        workers(config)
        r = redis_server.client()
        enqueue(r, "stripe", 5)

        mail = wait_until(lambda: smtp.received("FIRING failure_ratio"), 30,
                          what="failure_ratio email")[0]
        assert mail.mail_from == "hookq@example.com"
        assert sorted(mail.rcpt_tos) == ["oncall@example.com", "ops@example.com"]
        msg = email.message_from_bytes(mail.content, policy=email.policy.default)
        assert not msg.defects
        assert msg["Subject"] == "[hookq P1] FIRING failure_ratio on test-instance {route=pay}"
        assert msg["From"].addresses[0].addr_spec == "hookq@example.com"
        assert [a.addr_spec for a in msg["To"].addresses] == ["oncall@example.com",
                                                             "ops@example.com"]
        assert abs(email.utils.parsedate_to_datetime(msg["Date"]).timestamp() - time.time()) < 120
        assert msg["Message-ID"].startswith("<") and "@" in msg["Message-ID"]
        assert msg.get_content_type() == "text/plain"
        assert msg.get_content_charset() == "utf-8"
        text = msg.get_content()
        assert "value 1 against threshold 0.5" in text and "5 of 5 attempts failed" in text
        assert "#payment-webhooks-failing" in text

        # Dead letters of a payment source: P1 by default.
        dl = wait_until(lambda: smtp.received("FIRING dead_letters"), 30, what="dead letters")[0]
        dmsg = email.message_from_bytes(dl.content, policy=email.policy.default)
        assert dmsg["Subject"].startswith("[hookq P1] FIRING dead_letters")
        assert "route=pay, source=stripe" in dmsg.get_content()

        # The application recovers: 20 good deliveries bring the ratio to 5/25 < 0.5.
        sink.set("/pay", "200")
        enqueue(r, "stripe", 20)
        res = wait_until(lambda: smtp.received("RESOLVED failure_ratio"), 30,
                         what="failure_ratio resolved email")[0]
        rmsg = email.message_from_bytes(res.content, policy=email.policy.default)
        assert rmsg["Subject"] == "[hookq P1] RESOLVED failure_ratio on test-instance {route=pay}"
        # 20 % is still above the warning level (0.1): that alert fires, with its own severity.
        warn = wait_until(lambda: smtp.received("FIRING failure_ratio on test-instance {level"),
                          30, what="the warning level")[0]
        wmsg = email.message_from_bytes(warn.content, policy=email.policy.default)
        assert wmsg["Subject"] == ("[hookq P2] FIRING failure_ratio on test-instance "
                                   "{level=warning, route=pay}")
        assert "value 0.2 against threshold 0.1" in wmsg.get_content()
        assert len(smtp.received("[hookq P1] FIRING failure_ratio")) == 1
    finally:
        smtp.close()


def test_queue_alerts_grouped_rate_limited_and_silences_hold(
        redis_server, pg_migrated, sink, receiver, workers):
    # One delivery at a time into a hanging application: both queues back up.
    routes = (route("a", "qa", sink.url("/slow"), '[routes.retry]\nmax_attempts = 1\n') +
              route("b", "qb", sink.url("/slow"), '[routes.retry]\nmax_attempts = 1\n') +
              route("quiet", "quiet", sink.url("/ok")))
    routes = routes.replace('url = "%s"' % sink.url("/slow"),
                            'url = "%s"\ntimeout = "1s"' % sink.url("/slow"))
    rules = ('[alerts.rules.queue_depth]\nthreshold = 5\nfor = "0s"\n'
             '[alerts.rules.queue_age]\nthreshold = 1\nfor = "0s"\n'
             '[alerts.rules.dead_letters]\nenabled = false\n'
             '[alerts.rules.failure_ratio]\nenabled = false\n')
    config = config_text(
        redis_server, pg_migrated,
        alerts_config(slack_channel(receiver.url("/slack"), extra='rate_limit = "1/h"'), rules,
                      extra='[alerts.silent_after]\nquiet = "2s"\n', group_wait="2s") + routes,
        worker_id="w1", worker_extra="max_inflight = 1", breaker="failure_threshold = 1000")
    sink.set("/slow", "hang")
    r = redis_server.client()
    # A silence for source_silent, inserted as the API would.
    sql(pg_migrated, "INSERT INTO alert_silences (matchers, ends_at, comment, created_by) "
                     "VALUES ('{\"rule\": \"source_silent\"}', now() + interval '1 hour', "
                     "'maintenance', 'pytest')")
    enqueue(r, "qa", 12)
    enqueue(r, "qb", 12)
    workers(config)

    # Both queues' alerts of one rule go out as one message (one group); the rate limit (1/h,
    # burst 1) then holds back the other rule's group.
    msg = wait_until(lambda: texts(receiver, "/slack", "queue_"), 30, what="a queue alert")[0]
    assert "(2 alerts)" in msg and "queue=qa" in msg and "queue=qb" in msg, msg
    sent_rule = "queue_depth" if "FIRING P2] queue_depth" in msg else "queue_age"
    other_rule = "queue_age" if sent_rule == "queue_depth" else "queue_depth"
    wait_until(lambda: [e for e in events(pg_migrated, other_rule)
                        if e[1].get("slack") == "rate_limited"], 30, what="rate limited")
    # The silenced source_silent alert fires (recorded) but is not sent.
    wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = "
                                         "'source_silent{source=quiet}'") == [("firing",)], 20,
               what="source_silent firing")
    wait_until(lambda: [e for e in events(pg_migrated, "source_silent")
                        if e[0] == "firing" and e[1] == {"slack": "silenced"}], 10,
               what="silenced recorded")
    assert len(receiver.received("/slack")) == 1
    assert texts(receiver, "/slack", "source_silent") == []

    # A webhook from the quiet source resolves it; the application comes back and the queues
    # drain, resolving their alerts (recorded, the channel still rate limited).
    sink.set("/slow", "200")
    enqueue(r, "quiet", 1)
    for fp in ("source_silent{source=quiet}", "queue_depth{queue=qa}", "queue_depth{queue=qb}"):
        wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = %s",
                                fp) == [("resolved",)], 40, what=f"{fp} resolved")


def test_two_workers_notify_once(redis_server, pg_migrated, sink, receiver, workers):
    alerts = alerts_config(slack_channel(receiver.url("/slack")),
                           extra='[alerts.silent_after]\nnever = "1s"\n')
    ws = [workers(config_text(redis_server, pg_migrated,
                              alerts + route("r", "never", sink.url("/in")), worker_id=wid),
                  name=wid) for wid in ("w1", "w2")]
    wait_until(lambda: texts(receiver, "/slack", "source_silent"), 20, what="one notification")
    holder = redis_server.client().get("hookq:alerts:lease").decode()
    assert holder in ("w1", "w2")
    leaders = [w.name for w in ws if w.find("alerting lease taken")]
    assert leaders == [holder]
    # Both keep evaluating for a few rounds (1 s each): still one message, one firing event.
    n_before = len(receiver.received("/slack"))
    time.sleep(3)
    assert len(receiver.received("/slack")) == n_before == 1
    assert [e[0] for e in events(pg_migrated, "source_silent")] == ["firing"]

    # The leader stops: the other takes over and carries on (no second firing message).
    leader = next(w for w in ws if w.name == holder)
    other = next(w for w in ws if w.name != holder)
    assert leader.stop() == 0
    wait_until(lambda: other.find("alerting lease taken"), 30, what="takeover")
    time.sleep(2)
    assert len(texts(receiver, "/slack", "source_silent")) == 1


def test_hanging_channel_does_not_slow_deliveries(redis_server, pg_migrated, sink, receiver,
                                                  workers):
    receiver.set("/hang", "hang")  # the channel never answers
    alerts = alerts_config(
        slack_channel(receiver.url("/hang"), extra='timeout = "30s"\nrate_limit = "60/min"'),
        extra='[alerts.silent_after]\nq1 = "1s"\nq2 = "1s"\nq3 = "1s"\n')
    sources = "[sources.q1]\n[sources.q2]\n[sources.q3]\n"  # known, never heard from
    config = config_text(redis_server, pg_migrated,
                         alerts + sources + route("r", "load", sink.url("/in")))
    w = workers(config)
    wait_until(lambda: receiver.received("/hang"), 20, what="the channel is hanging")
    r = redis_server.client()
    start = time.monotonic()
    ids = enqueue(r, "load", 500)
    wait_until(lambda: sum(1 for v in event_status(pg_migrated).values() if v == "delivered")
               == len(ids), 20, interval=0.1, what="500 delivered while the channel hangs")
    took = time.monotonic() - start
    # The send is still stuck in its first 30 s try: deliveries did not wait for it.
    assert took < 10, took
    # One message for the three silent sources (one group), still queued on the channel.
    assert [e[1] for e in events(pg_migrated, "source_silent")] == [{"slack": "queued"}] * 3
    assert len(receiver.received("/hang")) == 1
    # Nor does a stop wait out the hanging send; its outcome is recorded on the way out.
    start = time.monotonic()
    assert w.stop() == 0
    assert time.monotonic() - start < 10
    for _, notified in events(pg_migrated, "source_silent"):
        assert notified["slack"].startswith("error: "), notified


def test_redis_and_postgres_down_are_announced_and_recover(redis_server, pg_migrated, sink,
                                                           receiver, workers):
    rules = ('[alerts.rules.redis_down]\nfor = "0s"\n'
             '[alerts.rules.postgres_down]\nfor = "0s"\n')
    config = config_text(redis_server, pg_migrated,
                         alerts_config(slack_channel(receiver.url("/slack")), rules) +
                         route("r", "dep", sink.url("/in")))
    workers(config)
    wait_until(lambda: redis_server.client().get("hookq:alerts:lease"), 20, what="leader")

    redis_server.stop()
    msg = wait_until(lambda: texts(receiver, "/slack", "[FIRING P0] redis_down"), 30,
                     what="redis_down")[0]
    assert "Redis unreachable" in msg and "#redis-down" in msg
    redis_server.start()
    wait_until(lambda: texts(receiver, "/slack", "[RESOLVED P0] redis_down"), 30,
               what="redis_down resolved")

    # PostgreSQL away: the alert still goes out (its state cannot be written meanwhile).
    pg_migrated.stop()
    try:
        msg = wait_until(lambda: texts(receiver, "/slack", "[FIRING P0] postgres_down"), 30,
                         what="postgres_down")[0]
        assert "#postgresql-down" in msg
    finally:
        pg_migrated.start()
    wait_until(lambda: texts(receiver, "/slack", "[RESOLVED P0] postgres_down"), 30,
               what="postgres_down resolved")
    # Once it is back, what happened meanwhile is written.
    wait_until(lambda: [e[0] for e in events(pg_migrated, "postgres_down")] ==
               ["firing", "resolved"], 20, what="postgres_down events written")
    assert events(pg_migrated, "postgres_down")[0][1] == {"slack": "sent"}
    assert rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = 'postgres_down{}'") \
        == [("resolved",)]


class FakeEdge:
    """Serves the edge's hookq_status counters, set by the test."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.counters = {}
        self.scrapes = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.scrapes += 1
                body = "# TYPE hookq_edge_requests_total counter\n" + "".join(
                    f'hookq_edge_requests_total{{source="{s}",outcome="{o}"}} {n}\n'
                    for (s, o), n in sorted(outer.counters.items()))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_signature_failures_health_check_slow_and_fallback(redis_server, pg_migrated, sink,
                                                           receiver, workers):
    edge = FakeEdge()
    try:
        edge.counters = {("stripe", "accepted"): 100, ("stripe", "bad_signature"): 2}
        rules = ('[alerts.rules.signature_failures]\nthreshold = 10\nwindow = "1m"\n'
                 '[alerts.rules.slow_p95]\nthreshold = 0.3\nmin_count = 1\nfor = "0s"\n'
                 '[alerts.rules.slow_delivery]\nthreshold = 0.3\n'
                 '[alerts.rules.dead_letters]\nenabled = false\n')
        extra = f'edge_metrics = ["http://127.0.0.1:{edge.port}/hookq/status"]\n'
        routes = (route("slow", "slow", sink.url("/slow")) +
                  route("fb", "fb", sink.url("/bad"),
                        f'fallback_url = "{sink.url("/fallback")}"\n'
                        '[routes.retry]\nmax_attempts = 1\n'))
        config = config_text(redis_server, pg_migrated,
                             alerts_config(slack_channel(receiver.url("/slack")), rules, extra) +
                             routes, breaker="failure_threshold = 1000")
        sink.set("/slow", "sleep:500")
        sink.set("/bad", "500")
        workers(config)
        r = redis_server.client()
        wait_until(lambda: r.get("hookq:alerts:lease"), 20, what="leader")
        # The engine has seen the counters before the burst (its baseline), even under load.
        wait_until(lambda: edge.scrapes >= 2, 20, what="the edge scraped twice")

        # A burst of bad signatures at the edge (a rotated secret): 2 -> 20 within the window.
        edge.counters[("stripe", "bad_signature")] = 20
        msg = wait_until(lambda: texts(receiver, "/slack", "FIRING P2] signature_failures"), 20,
                         what="signature_failures")[0]
        assert "source=stripe" in msg and "value 18 against threshold 10" in msg

        # The health checker's hash (CONTRACT2) says 3 failures in a row.
        r.hset("hookq:hc:{slow}", mapping={"status": "failing", "consecutive_failures": "3"})
        wait_until(lambda: texts(receiver, "/slack", "FIRING P1] health_check"), 20,
                   what="health_check")
        r.hset("hookq:hc:{slow}", mapping={"status": "ok", "consecutive_failures": "0"})
        wait_until(lambda: texts(receiver, "/slack", "RESOLVED P1] health_check"), 20,
                   what="health_check resolved")

        enqueue(r, "slow", 2)
        enqueue(r, "fb", 1)
        slow = wait_until(lambda: texts(receiver, "/slack", "FIRING P2] slow_p95"), 30,
                          what="slow_p95")[0]
        assert "route=slow" in slow
        wait_until(lambda: texts(receiver, "/slack", "FIRING P2] slow_delivery"), 30,
                   what="slow_delivery")
        fb = wait_until(lambda: texts(receiver, "/slack", "FIRING P2] fallback_used"), 30,
                        what="fallback_used")[0]
        assert "route=fb" in fb and len(sink.received("/fallback")) == 1
    finally:
        edge.close()


def test_retention_deletes_old_alert_events(pg_migrated):
    sql(pg_migrated, "INSERT INTO alert_events (at, fingerprint, rule, severity, state) VALUES "
                     "(now() - interval '40 days', 'redis_down{}', 'redis_down', 'P0', 'firing'), "
                     "(now(), 'redis_down{}', 'redis_down', 'P0', 'resolved')")
    import subprocess
    from worker_fixtures import worker_env
    out = subprocess.run([harness.CTL_PATH, "cleanup", "--dsn", pg_migrated.dsn, "--older-than",
                          "30d", "--json"], capture_output=True, text=True, env=worker_env())
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert {"table": "alert_events", "rows": 1} in plan["deletes"]
    assert rows(pg_migrated, "SELECT state FROM alert_events") == [("resolved",)]


def test_bad_alerts_config_stops_the_worker_naming_the_line(tmp_path):
    import subprocess
    from worker_fixtures import worker_env
    path = tmp_path / "bad.toml"
    path.write_text('[postgres]\ndsn = "dbname=x"\n[[routes]]\nname = "r"\nsource = "s"\n'
                    'url = "http://127.0.0.1:1/x"\n[alerts]\n[alerts.rules.queue_depth]\n'
                    'severity = "P9"\n')
    out = subprocess.run([harness.WORKER_PATH, "--config", str(path)], capture_output=True,
                         text=True, env=worker_env(), timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"{path}:9:12: [alerts.rules.queue_depth]: 'severity' must be "
                                  "P0, P1, P2 or P3")


def test_retry_overdue_fires_and_resolves(redis_server, pg_migrated, sink, receiver, workers):
    """Retries past due by more than the window are a backlog (the worker is not moving them);
    retries merely scheduled are not."""
    rules = ('[alerts.rules.retry_overdue]\nthreshold = 2\nwindow = "1s"\nfor = "0s"\n'
             '[alerts.rules.dead_letters]\nenabled = false\n')
    # retry_poll at its ceiling: this worker moves no due retry back during the test.
    workers(config_text(redis_server, pg_migrated,
                        alerts_config(slack_channel(receiver.url("/slack")), rules)
                        + route("r", "qr", sink.url("/ok"))).replace(
                            'retry_poll = "50ms"', 'retry_poll = "60s"'))
    r = redis_server.client()
    now_ms = int(r.time()[0]) * 1000
    key = "hookq:{qr}:retry"
    time.sleep(1.5)  # past the worker's first look at the retry set
    r.zadd(key, {b"scheduled-later": now_ms + 600_000, b"overdue-1": now_ms - 10_000})
    time.sleep(2.5)  # one overdue retry: under the threshold, and the scheduled one never counts
    assert rows(pg_migrated, "SELECT count(*) FROM alerts WHERE rule = 'retry_overdue' "
                             "AND state = 'firing'") == [(0,)]
    r.zadd(key, {b"overdue-2": now_ms - 10_000})
    msg = wait_until(lambda: texts(receiver, "/slack", "retry_overdue"), 20,
                     what="retry_overdue announced")[0]
    assert "queue=qr" in msg and "2 retries overdue" in msg, msg
    r.zrem(key, b"overdue-1", b"overdue-2", b"scheduled-later")
    wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = "
                                         "'retry_overdue{queue=qr}'") == [("resolved",)], 20,
               what="retry_overdue resolved")


def test_redis_memory_fires_against_maxmemory_and_resolves(redis_server, pg_migrated, sink,
                                                          receiver, workers):
    """redis_memory: each node's used memory as a share of its maxmemory (at 1 the edge answers 503
    to everything on it). A node without maxmemory has no limit to reach."""
    rules = ('[alerts.rules.redis_memory]\nthreshold = 0.5\nfor = "0s"\n'
             '[alerts.rules.dead_letters]\nenabled = false\n')
    workers(config_text(redis_server, pg_migrated,
                        alerts_config(slack_channel(receiver.url("/slack")), rules)
                        + route("r", "qm", sink.url("/ok"))))
    r = redis_server.client()
    firing = ("SELECT count(*) FROM alerts WHERE rule = 'redis_memory' AND state = 'firing'")
    time.sleep(2.5)  # two rounds without maxmemory
    assert rows(pg_migrated, firing) == [(0,)]
    used = r.info("memory")["used_memory"]
    r.config_set("maxmemory", str(used * 3 // 2))  # two thirds used: over 0.5
    msg = wait_until(lambda: texts(receiver, "/slack", "redis_memory"), 20,
                     what="redis_memory announced")[0]
    assert f"node=127.0.0.1:{redis_server.port}" in msg and "% of maxmemory used" in msg, msg
    r.config_set("maxmemory", str(used * 10))
    wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = "
                                         f"'redis_memory{{node=127.0.0.1:{redis_server.port}}}'")
               == [("resolved",)], 20, what="redis_memory resolved")


def test_engine_started_before_redis_takes_the_lease_once_it_is_up(redis_server, pg_migrated,
                                                                   sink, receiver, workers):
    """hookq-worker started while Redis is down waits for it (its pipeline cannot claim anything);
    the alerting engine, already running, retries the lease every round, says once that Redis is
    unreachable rather than every round, and evaluates as soon as it holds the lease."""
    alerts = alerts_config(slack_channel(receiver.url("/slack")),
                           extra='[alerts.silent_after]\nnever = "1s"\n')
    config = config_text(redis_server, pg_migrated,
                         alerts + route("r", "never", sink.url("/in")), worker_id="late")
    redis_server.stop()
    w = workers(config, start=False)
    w.start(wait_ready=False)

    def engine_redis_failures():
        return [l for l in w.lines() if l.get("msg") == "alerting: redis unreachable" or (
            l.get("conn") == "alerts" and l.get("msg") in ("redis unavailable",
                                                           "redis command failed"))]

    # The heartbeat's own retries (backing off to 2 s) tell the time: six of them span several
    # of the engine's 1 s rounds.
    wait_until(lambda: len([l for l in w.find("redis unavailable")
                            if l.get("conn") == "heartbeat"]) >= 6 and engine_redis_failures(),
               30, what="several rounds without Redis")
    assert w.proc.poll() is None, w.stderr()
    assert not w.find("ready")
    failures = engine_redis_failures()
    assert [l["msg"] for l in failures] == ["alerting: redis unreachable"], failures
    assert not w.find("alerting lease taken")

    redis_server.start()
    wait_until(lambda: w.find("alerting lease taken"), 30, what="the lease taken")
    assert redis_server.client().get("hookq:alerts:lease") == b"late"
    wait_until(lambda: texts(receiver, "/slack", "source_silent"), 30, what="an alert sent")
    wait_until(lambda: [e[0] for e in events(pg_migrated, "source_silent")] == ["firing"], 20,
               what="its event written")
    assert len(w.find("alerting: redis reachable")) == 1
    assert len(engine_redis_failures()) == 1

    # An outage while it runs (Redis restarted empty, the lease gone): said once more, and the
    # lease is held again once Redis is back.
    redis_server.stop()

    def heartbeat_failures():
        return len([l for l in w.find("redis unavailable") if l.get("conn") == "heartbeat"])
    seen = heartbeat_failures()
    wait_until(lambda: heartbeat_failures() >= seen + 3 and len(engine_redis_failures()) == 2,
               30, what="several rounds without Redis, again")
    assert [l["msg"] for l in engine_redis_failures()] == ["alerting: redis unreachable"] * 2
    redis_server.start()
    wait_until(lambda: redis_server.client().get("hookq:alerts:lease") == b"late", 30,
               what="the lease held again")
    wait_until(lambda: len(w.find("alerting: redis reachable")) == 2, 10, what="said once")
    assert len(engine_redis_failures()) == 2
    assert w.stop() == 0


def test_alerts_of_a_rule_switched_off_resolve(redis_server, pg_migrated, sink, receiver,
                                               workers):
    """An alert left open by a rule since disabled (or by a rule this version does not have) is
    watched by nothing: the engine resolves it, and says so on a known rule's channels, rather
    than keep it firing in the API, the gauges and the dashboard for ever."""
    sql(pg_migrated,
        "INSERT INTO alerts (fingerprint, rule, labels, severity, state, value, threshold, summary, "
        "pending_since, firing_since, last_notified_at) VALUES "
        "('queue_depth{queue=qd}', 'queue_depth', '{\"queue\": \"qd\"}', 'P2', 'firing', 5000, "
        "1000, '5000 waiting', now() - interval '1 hour', now() - interval '1 hour', "
        "now() - interval '1 hour'), "
        "('gone_rule{x=1}', 'gone_rule', '{\"x\": \"1\"}', 'P3', 'pending', 1, 1, '', now(), "
        "NULL, NULL)")
    rules = ('[alerts.rules.queue_depth]\nenabled = false\n'
             '[alerts.rules.dead_letters]\nenabled = false\n')
    workers(config_text(redis_server, pg_migrated,
                        alerts_config(slack_channel(receiver.url("/slack")), rules)
                        + route("r", "qd", sink.url("/ok"))))
    wait_until(lambda: rows(pg_migrated, "SELECT fingerprint, state FROM alerts ORDER BY 1")
               == [("gone_rule{x=1}", "resolved"), ("queue_depth{queue=qd}", "resolved")], 20,
               what="both alerts resolved")
    msg = wait_until(lambda: texts(receiver, "/slack", "[RESOLVED P2] queue_depth"), 20,
                     what="queue_depth's resolution on its channel")[0]
    assert "queue=qd" in msg, msg
    assert [e[0] for e in events(pg_migrated, "queue_depth")] == ["resolved"]
    assert [e[0] for e in events(pg_migrated, "gone_rule")] == ["resolved"]
    time.sleep(1.5)  # another round: nothing more for either
    assert len(texts(receiver, "/slack", "queue_depth")) == 1
    assert len(events(pg_migrated, "gone_rule")) == 1
