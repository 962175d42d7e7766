"""`hookqctl dlq list|show|retry|delete` with a real worker: a webhook the application refused is
dead-lettered, listed, requeued once the application is fixed, and delivered again under the same
request id, to the route that failed only. Every write is audited; --dry-run writes nothing."""

import json
import subprocess
import time

import envelope
from worker_fixtures import (config_text, event_status, route, rows, wait_until, worker_env,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

import harness

Q = "github"


def ctl(worker, *args, check=True, user="bob"):
    env = worker_env()
    env.pop("SUDO_USER", None)
    env["USER"] = user
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def dead_letter(pg, rid):
    got = rows(pg, "SELECT id, route, requeued_at FROM dead_letters WHERE event_id = %s", rid)
    return got[0] if got else None


def test_dead_letter_round_trip(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    routes = route("app", Q, sink.url("/app")) + route("audit", Q, sink.url("/audit"))
    sink.set("/app", "400")
    w = workers(config_text(redis_server, pg_migrated, routes))
    body = b'{"action":"opened","bin":"\x00\xff"}'
    rid, env = envelope.make(Q, body=body, headers=[("X-GitHub-Event", "push")])
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: dead_letter(pg_migrated, rid), 20, what="dead letter")
    wait_until(lambda: len(sink.received("/audit")) == 1, 10, what="other route delivered")
    dl_id, dl_route, requeued = dead_letter(pg_migrated, rid)
    assert dl_route == "app" and requeued is None

    # list: text and JSON.
    out = ctl(w, "dlq", "list").stdout
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["ID", "EVENT", "SOURCE", "ROUTE"]
    assert [l.split()[:4] for l in lines] == [[str(dl_id), rid, Q, "app"]]
    [item] = json.loads(ctl(w, "dlq", "list", "--json", "--source", Q).stdout)
    assert item["id"] == dl_id and item["event_id"] == rid and "HTTP 400" in item["reason"]
    assert json.loads(ctl(w, "dlq", "list", "--json", "--source", "stripe").stdout) == []

    # show: the event with its headers and body size, and the attempts.
    shown = json.loads(ctl(w, "dlq", "show", str(dl_id), "--json").stdout)
    assert shown["event_id"] == rid and shown["body_size"] == len(body)
    assert shown["headers"]["X-GitHub-Event"] == "push"
    app_attempts = [a for a in shown["delivery_attempts"] if a["route"] == "app"]
    assert [(a["http_status"], a["outcome"]) for a in app_attempts] == [(400, "dead")]
    text = ctl(w, "dlq", "show", str(dl_id)).stdout
    assert rid in text and "400" in text
    assert pg_migrated.dsn not in text

    # --dry-run: nothing requeued, nothing recorded.
    out = ctl(w, "dlq", "retry", str(dl_id), "--dry-run").stdout
    assert "would requeue" in out
    time.sleep(0.5)
    assert len(sink.received("/app")) == 1
    assert dead_letter(pg_migrated, rid)[2] is None
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(0,)]

    # The application is fixed; the retry delivers the same webhook under the same id.
    sink.set("/app", "200")
    out = ctl(w, "dlq", "retry", str(dl_id)).stdout
    assert "requeued" in out
    wait_until(lambda: len(sink.received("/app")) == 2, 20, what="redelivery")
    again = sink.received("/app")[1]
    assert again.headers["x-request-id"] == rid and again.body == body
    # Only the route that failed: the one that had succeeded is not sent a duplicate.
    time.sleep(0.3)
    assert len(sink.received("/audit")) == 1
    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 10, what="row delivered")
    assert dead_letter(pg_migrated, rid)[2] is not None
    [(actor, action, target, details)] = rows(
        pg_migrated, "SELECT actor, action, target, details FROM audit_log")
    assert (actor, action, target) == ("bob", "dlq.retry", str(dl_id))
    assert details["event_id"] == rid and details["queue"] == Q and details["route"] == "app"
    # The worker's upsert found the original row: one event, not two.
    assert rows(pg_migrated, "SELECT count(*) FROM webhook_events") == [(1,)]

    # Requeued already: refused unless forced; the default list no longer shows it.
    r2 = ctl(w, "dlq", "retry", str(dl_id), check=False)
    assert r2.returncode == 1 and "already requeued" in r2.stdout
    assert json.loads(ctl(w, "dlq", "list", "--json").stdout) == []
    assert len(json.loads(ctl(w, "dlq", "list", "--json", "--all").stdout)) == 1

    # delete: gone, audited.
    ctl(w, "dlq", "delete", str(dl_id))
    assert rows(pg_migrated, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert rows(pg_migrated, "SELECT action, target FROM audit_log ORDER BY id") == [
        ("dlq.retry", str(dl_id)), ("dlq.delete", str(dl_id))]
    r3 = ctl(w, "dlq", "delete", str(dl_id), check=False)
    assert r3.returncode == 1 and "not found" in r3.stdout
    assert w.stop() == 0


def test_no_route_dead_letter_is_routed_afresh(redis_server, pg_migrated, sink, workers):
    """A webhook dead for want of a route goes back as the bare envelope, so a route added since
    picks it up."""
    r = redis_server.client()
    cfg = config_text(redis_server, pg_migrated, route("gh", Q, sink.url("/gh")),
                      worker_extra='queues = ["github"]')
    w = workers(cfg)
    rid, env = envelope.make("stray")
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: dead_letter(pg_migrated, rid), 20, what="dead letter")
    dl_id = dead_letter(pg_migrated, rid)[0]
    assert w.stop() == 0
    out = ctl(w, "dlq", "retry", str(dl_id), "--json").stdout
    [res] = json.loads(out)
    assert res["result"] == "requeued" and res["queue"] == Q and res["route"] == "-"
    [elem] = r.lrange(f"hookq:{{{Q}}}:queue", 0, -1)
    dec = envelope.decode(elem)
    assert dec["id"] == rid and dec["source"] == "stray" and dec["body"] == b'{"hello":"world"}'
    assert dict((k.lower(), v) for k, v in dec["headers"])[b"content-type"] == b"application/json"
    assert dec["received_at_us"] == envelope.decode(env)["received_at_us"]


def test_retry_refuses_an_unknown_queue(redis_server, pg_migrated, sink, workers):
    """A mistyped --queue would requeue to a list nobody reads and mark the letter requeued."""
    r = redis_server.client()
    sink.set("/app", "400")
    w = workers(config_text(redis_server, pg_migrated, route("app", Q, sink.url("/app"))))
    rid, env = envelope.make(Q)
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: dead_letter(pg_migrated, rid), 20, what="dead letter")
    dl_id = dead_letter(pg_migrated, rid)[0]
    assert w.stop() == 0

    bad = ctl(w, "dlq", "retry", str(dl_id), "--queue", "githb", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "unknown queue 'githb'" in bad.stderr and "known queues: github" in bad.stderr
    assert r.exists("hookq:{githb}:queue") == 0
    assert dead_letter(pg_migrated, rid)[2] is None
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(0,)]

    # A queue the configuration does not name but a worker elsewhere consumes is accepted.
    r.sadd("hookq:{github-eu}:workers", "w9")
    out = json.loads(ctl(w, "dlq", "retry", str(dl_id), "--queue", "github-eu", "--json").stdout)
    assert [(o["result"], o["queue"]) for o in out] == [("requeued", "github-eu")]
    assert r.llen("hookq:{github-eu}:queue") == 1
    assert dead_letter(pg_migrated, rid)[2] is not None
    # The configured queue, named explicitly, is accepted too.
    out = json.loads(ctl(w, "dlq", "retry", str(dl_id), "--queue", Q, "--force", "--json").stdout)
    assert [o["queue"] for o in out] == [Q]
