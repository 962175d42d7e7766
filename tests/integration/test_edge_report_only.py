"""`hookq_verify report_only`, for wiring up a provider: a request that fails verification is
queued and delivered anyway, marked for the application (X-Hookq-Unverified: <reason>), counted
(hookq_edge_unverified_total) and logged; `nginx -t` warns. The mark is one no client can forge."""

import edge
import harness
from worker_fixtures import (config_text, event_status, route, wait_until, pg_migrated,  # noqa: F401
                             sink, workers)

QUEUE = "hookq:{github}:queue"


def conf(paths, mode="report_only"):
    return f"""
    hookq_redis {{redis}};
    server {{
        listen 127.0.0.1:{{port}};
        location = /hooks/github {{ hookq github; hookq_secret file:{paths['github']};
                                   hookq_verify {mode}; }}
        location = /hookq/status {{ hookq_status; }}
    }}
"""


def unverified_counters(port):
    _, _, text = edge.post(port, "/hookq/status", method="GET")
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("hookq_edge_unverified_total{"):
            labels, value = line[len("hookq_edge_unverified_total{"):].split("} ")
            parts = dict(p.split("=", 1) for p in labels.split(","))
            out[parts["reason"].strip('"')] = int(value)
    return out


def queued_marks(redis):
    marks = {}
    for raw in redis.client().lrange(QUEUE, 0, -1):
        env = edge.decode_envelope(raw)
        marks[env["request_id"]] = edge.header_of(env, ":hookq-unverified")
    return marks


def test_failures_are_queued_marked_counted_and_logged(redis_server, tmp_path):
    paths = edge.secret_files(str(tmp_path))
    nginx = harness.Nginx(conf(paths), redis_port=redis_server.port)
    try:
        good = b'{"zen":"good"}'
        bad = b'{"zen":"bad"}'
        s1, h1, _ = edge.post(nginx.port, "/hooks/github", good, edge.github_headers(good))
        wrong = dict(edge.github_headers(bad), **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
        s2, h2, _ = edge.post(nginx.port, "/hooks/github", bad, wrong)
        unsigned = {k: v for k, v in edge.github_headers(b"{}").items()
                    if k != "X-Hub-Signature-256"}
        s3, h3, _ = edge.post(nginx.port, "/hooks/github", b"{}", unsigned)
        assert (s1, s2, s3) == (202, 202, 202)
        marks = queued_marks(redis_server)
        assert marks[h1["x-request-id"]] is None
        assert marks[h2["x-request-id"]] == b"bad_signature"
        assert marks[h3["x-request-id"]] == b"missing_signature"
        assert unverified_counters(nginx.port) == {"missing_signature": 1, "bad_signature": 1,
                                                   "stale_timestamp": 0, "malformed": 0}
        counters = edge.status_counters(nginx.port)
        assert counters[("github", "accepted")] == 3 and counters[("github", "bad_signature")] == 0
        assert 'verification failed (bad_signature), accepted because of "hookq_verify ' \
               'report_only"' in nginx.log()
    finally:
        nginx.close()


def test_enforce_is_the_default_and_still_refuses(redis_server, tmp_path):
    paths = edge.secret_files(str(tmp_path))
    nginx = harness.Nginx(conf(paths, "enforce"), redis_port=redis_server.port)
    try:
        wrong = dict(edge.github_headers(b"{}"), **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
        status, _, _ = edge.post(nginx.port, "/hooks/github", b"{}", wrong)
        assert status == 401
        assert unverified_counters(nginx.port)["bad_signature"] == 0
    finally:
        nginx.close()


def test_the_application_is_told_and_a_client_cannot_forge_the_mark(
        redis_server, pg_migrated, sink, workers, tmp_path):
    paths = edge.secret_files(str(tmp_path))
    nginx = harness.Nginx(conf(paths), redis_port=redis_server.port)
    try:
        workers(config_text(redis_server, pg_migrated, route("gh", "github", sink.url("/gh"))))
        bad = b'{"n":1}'
        wrong = dict(edge.github_headers(bad), **{"X-Hub-Signature-256": "sha256=" + "0" * 64})
        _, h_bad, _ = edge.post(nginx.port, "/hooks/github", bad, wrong)
        good = b'{"n":2}'
        # A verified request claiming to be something else: neither spelling reaches the app.
        forged = dict(edge.github_headers(good), **{"X-Hookq-Unverified": "none"})
        _, h_good, _ = edge.post(nginx.port, "/hooks/github", good, forged)
        wait_until(lambda: all(event_status(pg_migrated).get(h["x-request-id"]) == "delivered"
                               for h in (h_bad, h_good)), 20, what="both delivered")
        by_body = {r.body: r for r in sink.received("/gh")}
        marks = {body: [v for k, v in r.raw if k.lower() == "x-hookq-unverified"]
                 for body, r in by_body.items()}
        assert marks == {bad: ["bad_signature"], good: []}
    finally:
        nginx.close()


def test_nginx_t_warns_and_refuses_what_makes_no_sense(tmp_path):
    paths = edge.secret_files(str(tmp_path))
    code, out = harness.nginx_test_config(conf(paths))
    assert code == 0, out
    assert "hookq_verify report_only: requests that fail verification are queued" in out
    code, out = harness.nginx_test_config(conf(paths, "maybe"))
    assert code != 0 and 'hookq_verify: "maybe" is neither "enforce" nor "report_only"' in out
    code, out = harness.nginx_test_config("""
    hookq_redis {redis};
    server { listen 127.0.0.1:{port}; location = /h { hookq none; hookq_verify report_only; } }
""")
    assert code != 0 and '"hookq none" verifies nothing' in out, out
