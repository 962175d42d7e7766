"""Each outcome path of a delivery: delivered, retried (5xx, 429 + Retry-After, hang, reset),
dead-lettered (4xx, 410 + route flag, attempts exhausted, no route), and what reaches the sink."""

import base64
import hashlib
import hmac
import time

import envelope
from worker_fixtures import (SECRET, config_text, enqueue, event_status, route, rows, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "github"


def inflight_and_queue_empty(r, worker_id="w1"):
    return (r.llen(f"hookq:{{{Q}}}:queue") == 0 and
            r.llen(f"hookq:{{{Q}}}:inflight:{worker_id}") == 0)


def fast_retry(max_attempts=3):
    return f'[routes.retry]\nmax_attempts = {max_attempts}\ninitial = "50ms"\nmax_delay = "200ms"\n'


def test_delivered_with_headers_and_signature(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    cfg = config_text(redis_server, pg_migrated, route("gh", Q, sink.url("/ok")),
                      sources='[sources.github]\nevent_header = "X-GitHub-Event"\n')
    w = workers(cfg)
    body = b'{"action":"opened","n":1,"bin":"\x00\xff"}'
    rid, env = envelope.make(Q, body=body, headers=[("X-GitHub-Event", "push")])
    r.lpush(f"hookq:{{{Q}}}:queue", env)

    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 20, what="delivered row")
    [req] = sink.received("/ok")
    h = req.headers
    assert req.body == body
    assert h["content-type"] == "application/json"
    assert h["x-request-id"] == rid
    assert h["x-hookq-source"] == Q
    assert h["x-retry-attempt"] == "1"
    assert h["x-max-attempts"] == "3"
    assert h["x-timeout-ms"] == "10000"
    assert h["webhook-id"] == rid
    key = base64.b64decode(SECRET[len("whsec_"):])
    signed = f"{rid}.{h['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == expected
    assert h["x-hookq-signature"] == expected
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60

    [(status, attempts, etype, stored_body, delivered)] = rows(
        pg_migrated, "SELECT status, attempts, event_type, body, delivered_at IS NOT NULL "
        "FROM webhook_events WHERE id = %s", rid)
    assert (status, attempts, etype, bytes(stored_body), delivered) == (
        "delivered", 1, "push", body, True)
    att = rows(pg_migrated, "SELECT attempt, http_status, outcome FROM delivery_attempts "
               "WHERE event_id = %s", rid)
    assert att == [(1, 200, "delivered")]
    wait_until(lambda: inflight_and_queue_empty(r), 5, what="inflight acked")

    logs = [l for l in w.lines() if l.get("msg") == "delivered"]
    assert logs and logs[0]["request_id"] == rid and logs[0]["source"] == Q
    assert SECRET not in open(w.log_path).read()
    assert w.stop() == 0


def test_outcome_paths(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    routes = "".join([
        route("r400", "s400", sink.url("/400"), fast_retry()),
        route("r410", "s410", sink.url("/410"), fast_retry()),
        route("r5xx", "s5xx", sink.url("/5xx"), fast_retry()),
        route("r429", "s429", sink.url("/429"), fast_retry(3).replace('"200ms"', '"5s"')),
        route("rhang", "shang", sink.url("/hang"), 'timeout = "1s"\n' + fast_retry(2)),
        # Its own host name, hence its own connection pool: curl silently resends a request whose
        # *reused* keep-alive connection dies unanswered, which would hide the reset from us.
        route("rreset", "sreset", sink.url("/reset").replace("127.0.0.1", "localhost"),
              fast_retry()),
        route("rdead", "sdead", sink.url("/dead"), fast_retry(2)),
    ])
    cfg = config_text(redis_server, pg_migrated, routes,
                      worker_extra='queues = ["outcomes"]',
                      breaker="failure_threshold = 1000")
    sink.set("/400", "400")
    sink.set("/410", "410")
    sink.script("/5xx", ["500", "503"])  # then 200
    sink.script("/429", ["429:1"])
    sink.script("/hang", ["hang"])
    sink.script("/reset", ["reset"])
    sink.set("/dead", "502")
    workers(cfg)

    ids = {}
    for src in ("s400", "s410", "s5xx", "s429", "shang", "sreset", "sdead", "nowhere"):
        [ids[src]] = enqueue(r, "outcomes", 1, source=src)

    want = {"s400": "dead", "s410": "dead", "s5xx": "delivered", "s429": "delivered",
            "shang": "delivered", "sreset": "delivered", "sdead": "dead", "nowhere": "dead"}
    wait_until(lambda: all(event_status(pg_migrated).get(ids[s]) == st for s, st in want.items()),
               30, what="every outcome recorded")

    def attempts(src):
        return rows(pg_migrated, "SELECT attempt, http_status, outcome FROM delivery_attempts "
                    "WHERE event_id = %s ORDER BY attempt", ids[src])

    assert attempts("s400") == [(1, 400, "dead")]
    assert attempts("s410") == [(1, 410, "dead")]
    assert attempts("s5xx") == [(1, 500, "retry"), (2, 503, "retry"), (3, 200, "delivered")]
    assert attempts("s429") == [(1, 429, "retry"), (2, 200, "delivered")]
    assert [a[2] for a in attempts("shang")] == ["retry", "delivered"]
    reset = [a[2] for a in attempts("sreset")]
    assert reset[0] == "retry" and reset[-1] == "delivered", reset
    assert attempts("sdead") == [(1, 502, "retry"), (2, 502, "dead")]
    assert attempts("nowhere") == []

    # Retry-After: 1 was honoured (the policy alone would have retried within 200 ms).
    t429 = [q.at for q in sink.received("/429")]
    assert t429[1] - t429[0] >= 0.9
    # X-Retry-Attempt counts attempts; the id is stable across them.
    assert [q.headers["x-retry-attempt"] for q in sink.received("/5xx")] == ["1", "2", "3"]
    assert {q.headers["x-request-id"] for q in sink.received("/5xx")} == {ids["s5xx"]}

    dead = dict(rows(pg_migrated, "SELECT route, reason FROM dead_letters"))
    assert set(dead) == {"r400", "r410", "rdead", "-"}
    assert "HTTP 400" in dead["r400"]
    assert "attempts exhausted" in dead["rdead"]
    assert "no route" in dead["-"]
    assert rows(pg_migrated, "SELECT route FROM route_flags") == [("r410",)]
    wait_until(lambda: r.llen("hookq:{outcomes}:inflight:w1") == 0 and
               r.zcard("hookq:{outcomes}:retry") == 0, 5, what="all acked")


def test_poison_and_retry_record_claim(redis_server, pg_migrated, sink, workers):
    """Garbage is kept aside (never lost, never wedging the queue); a due retry record queued as
    HQR1 bytes is delivered with its attempt number."""
    r = redis_server.client()
    cfg = config_text(redis_server, pg_migrated, route("gh", Q, sink.url("/ok")))
    workers(cfg)
    r.lpush(f"hookq:{{{Q}}}:queue", b"HQE1 definitely not an envelope")
    rid, env = envelope.make(Q)
    import struct
    rec = b"HQR1" + struct.pack("<IQ", 2, int(time.time() * 1e6)) + struct.pack("<I", 2) + b"gh" + env
    r.lpush(f"hookq:{{{Q}}}:queue", rec)
    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 20)
    assert sink.received("/ok")[0].headers["x-retry-attempt"] == "2"
    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:poison") == 1, 5)
    assert r.lrange(f"hookq:{{{Q}}}:poison", 0, -1) == [b"HQE1 definitely not an envelope"]
    wait_until(lambda: inflight_and_queue_empty(r), 5)


def test_event_type_routing(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    routes = (route("push", "github", sink.url("/push"), 'events = ["push"]') +
              route("all", "github", sink.url("/all")) +
              route("paid", "stripe", sink.url("/paid"), 'events = ["invoice.paid"]') +
              route("ms", "moysklad", sink.url("/ms"), 'events = ["CREATE"]'))
    sources = ('[sources.github]\nevent_header = "X-GitHub-Event"\n'
               '[sources.stripe]\nevent_field = "type"\n'
               '[sources.moysklad]\nevent_field = "events[].action"\n')
    cfg = config_text(redis_server, pg_migrated, routes, sources=sources)
    workers(cfg)
    [push] = enqueue(r, "github", headers=[("X-GitHub-Event", "push")])
    [issue] = enqueue(r, "github", headers=[("X-GitHub-Event", "issues")])
    [paid] = enqueue(r, "stripe", body=b'{"type":"invoice.paid","id":"evt_1"}')
    [other] = enqueue(r, "stripe", body=b'{"type":"charge.failed"}')
    [ms] = enqueue(r, "moysklad", body=b'{"events":[{"meta":{},"action":"CREATE"}]}')
    wait_until(lambda: len(event_status(pg_migrated)) == 5, 20)
    assert sink.ids("/push") == {push}
    assert sink.ids("/all") == {push, issue}
    assert sink.ids("/paid") == {paid}
    assert sink.ids("/ms") == {ms}
    st = event_status(pg_migrated)
    assert st[other] == "dead" and st[paid] == "delivered" and st[push] == "delivered"
    types = dict(rows(pg_migrated, "SELECT id::text, event_type FROM webhook_events"))
    assert types[ms] == "CREATE" and types[paid] == "invoice.paid" and types[issue] == "issues"


def test_status_line_decides_and_bodies_are_not_read(redis_server, pg_migrated, sink, workers):
    """A 2xx is delivered once its headers are in: a body trickling past the timeout used to turn it
    into a timeout (a duplicate delivery, then a false dead letter), and a 1 GiB body was read to
    the end. Of a non-2xx body only a bounded prefix is kept, for the attempt row."""
    from sink import BODY_PREFIX
    r = redis_server.client()
    gib = 1 << 30
    routes = "".join([
        route("trickle", "strickle", sink.url("/trickle"), 'timeout = "1s"\n' + fast_retry(2)),
        route("huge", "shuge", sink.url("/huge"), 'timeout = "5s"\n' + fast_retry(2)),
        route("err", "serr", sink.url("/err"), fast_retry(1)),
        # Same destination as the others: a cut connection must not be reused for it.
        route("after", "safter", sink.url("/after"), fast_retry(1)),
    ])
    cfg = config_text(redis_server, pg_migrated, routes, worker_extra='queues = ["bodies"]',
                      breaker="failure_threshold = 1000")
    sink.set("/trickle", "trickle:100")  # 100 bytes over 10 s
    sink.set("/huge", f"body:200:{gib}")
    sink.set("/err", f"body:500:{64 << 20}")
    workers(cfg)

    ids = {src: enqueue(r, "bodies", 1, source=src)[0] for src in ("strickle", "shuge", "serr")}
    want = {"strickle": "delivered", "shuge": "delivered", "serr": "dead"}
    wait_until(lambda: all(event_status(pg_migrated).get(ids[s]) == st for s, st in want.items()),
               30, what="outcomes recorded")

    def attempts(src):
        return rows(pg_migrated, "SELECT attempt, http_status, outcome, error, duration_ms "
                    "FROM delivery_attempts WHERE event_id = %s ORDER BY attempt", ids[src])

    [(n, status, outcome, error, ms)] = attempts("strickle")
    assert (n, status, outcome, error) == (1, 200, "delivered", None)
    assert ms < 1000, ms  # decided without waiting for the route's timeout
    assert len(sink.received("/trickle")) == 1

    [(n, status, outcome, error, _)] = attempts("shuge")
    assert (n, status, outcome, error) == (1, 200, "delivered", None)
    assert len(sink.received("/huge")) == 1
    [(_, sent, done)] = wait_until(lambda: [s for s in sink.sent if s[0] == "/huge"], 30,
                                   what="sink saw the transfer end")
    assert not done and sent < 64 << 20, sent

    [(n, status, outcome, error, _)] = attempts("serr")
    assert (n, status, outcome) == (1, 500, "dead")
    assert error.startswith("oops: backend exploded <db=primary>"), error
    assert len(error.encode()) <= 1024 and "\r" not in error and "\x01" not in error
    [(_, sent, done)] = wait_until(lambda: [s for s in sink.sent if s[0] == "/err"], 30,
                                   what="sink saw the transfer end")
    assert not done and sent < 64 << 20, sent
    dead = dict(rows(pg_migrated, "SELECT route, reason FROM dead_letters"))
    assert dead == {"err": "attempts exhausted (1), last: HTTP 500"}

    # The destination's cut connections were closed, not reused: the next delivery is clean.
    [after] = enqueue(r, "bodies", 1, source="safter")
    wait_until(lambda: event_status(pg_migrated).get(after) == "delivered", 20, what="after")
    assert rows(pg_migrated, "SELECT attempt, http_status, outcome FROM delivery_attempts "
                "WHERE event_id = %s", after) == [(1, 200, "delivered")]
    wait_until(lambda: r.llen("hookq:{bodies}:inflight:w1") == 0, 5, what="all acked")
