"""The admin HTTP API inside hookq-worker, against a real worker, Redis and PostgreSQL: bearer
tokens and roles, source-limited tokens, browser safety, bounded requests, /readyz following the
backends, and the same operations (and JSON) as hookqctl, audited with the token's identity."""

import http.client
import json
import os
import socket
import subprocess
import time

import requests

import envelope
import harness
from worker_fixtures import (config_text, event_status, route, rows, wait_until, worker_env,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

ADMIN = "a" * 40
VIEWER = "v" * 40
STRIPE_ONLY = "s" * 40
CSP = "default-src 'none'; frame-ancestors 'none'"
# /api/v1/status is computed at most once a second per scope (kStatusCacheMs in worker/admin/api_status.cc).
STATUS_CACHE_S = 1.1


class Api:
    def __init__(self, port):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, token=None, headers=None, **kw):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=h, timeout=10, **kw)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, token, **kw)


def admin_config(redis, pg, routes, tmp_path, port, extra="", listen=None):
    def token_file(name, value):
        p = tmp_path / f"{name}.token"
        p.write_text(value + "\n")
        os.chmod(p, 0o600)
        return f"file:{p}"
    return config_text(redis, pg, routes) + f"""
[admin]
listen = "{listen or f'127.0.0.1:{port}'}"
[[admin.tokens]]
name = "ops-admin"
role = "admin"
token = "{token_file('admin', ADMIN)}"
[[admin.tokens]]
name = "ops-viewer"
role = "viewer"
token = "{token_file('viewer', VIEWER)}"
[[admin.tokens]]
name = "stripe-team"
role = "admin"
token = "{token_file('stripe', STRIPE_ONLY)}"
sources = ["stripe"]
{extra}
"""


def start(redis_server, pg, sink, workers, tmp_path, routes=None):
    port = harness.free_port()
    routes = routes or (route("app", "github", sink.url("/app")) +
                        route("st", "stripe", sink.url("/st")))
    w = workers(admin_config(redis_server, pg, routes, tmp_path, port))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    return w, api


def _alive(api):
    try:
        return api.get("/healthz").status_code == 200
    except requests.ConnectionError:
        return False


def ctl(worker, *args):
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def dead_letter_of(pg, rid):
    got = rows(pg, "SELECT id FROM dead_letters WHERE event_id = %s", rid)
    return got[0][0] if got else None


def make_dead(redis_server, pg, sink, source="github", path="/app"):
    sink.set(path, "400")
    rid, env = envelope.make(source, body=b'{"n":1}', headers=[("X-GitHub-Event", "push")])
    redis_server.client().lpush(f"hookq:{{{source}}}:queue", env)
    return rid, wait_until(lambda: dead_letter_of(pg, rid), 20, what="dead letter")


def assert_json_error(r, status, *words):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    for w in words:
        assert w in body["detail"] or w in body["error"], body


def test_auth_roles_and_browser_safety(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)

    r = api.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "alive"}
    for path in ("/healthz", "/readyz", "/api/v1/status", "/nope"):
        h = api.get(path).headers
        assert h["Content-Security-Policy"] == CSP, path
        assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in h

    # No token, a wrong token, a token in the wrong scheme: 401 with a Bearer challenge.
    r = api.get("/api/v1/status")
    assert_json_error(r, 401, "Authorization: Bearer")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = api.get("/api/v1/status", "x" * 40)
    assert_json_error(r, 401, "not one of")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = api.get("/api/v1/status", headers={"Authorization": "Basic " + ADMIN})
    assert r.status_code == 401
    # Unauthenticated requests learn nothing about which endpoints exist.
    assert api.get("/api/v1/nothing-here").status_code == 401

    assert api.get("/api/v1/status", VIEWER).status_code == 200
    assert_json_error(api.get("/api/v1/nothing-here", VIEWER), 404)

    # A viewer reads but does not write.
    assert_json_error(api.call("POST", "/api/v1/dead-letters/1/retry", VIEWER), 403, "viewer")
    assert_json_error(api.call("DELETE", "/api/v1/dead-letters/1", VIEWER), 403, "viewer")
    r = api.call("PUT", "/api/v1/dead-letters/1", ADMIN)
    assert_json_error(r, 405)
    assert "DELETE" in r.headers["Allow"]
    # A method is one of those allowed, not a piece of one: "ET" is neither GET nor a write.
    for m in ("ET", "DELE"):
        r = api.call(m, "/api/v1/dead-letters/1", ADMIN)
        assert_json_error(r, 405)

    # Writes a browser on another site could have sent are refused, whatever the token.
    r = api.call("POST", "/api/v1/dead-letters/1/retry", ADMIN,
                 headers={"Origin": "http://evil.example"})
    assert_json_error(r, 403, "evil.example")
    r = api.call("DELETE", "/api/v1/dead-letters/1", ADMIN,
                 headers={"Sec-Fetch-Site": "cross-site"})
    assert_json_error(r, 403, "cross-site")
    # Its own origin passes the check (and finds nothing to retry).
    r = api.call("POST", "/api/v1/dead-letters/1/retry", ADMIN,
                 headers={"Origin": api.base, "Sec-Fetch-Site": "same-origin"})
    assert_json_error(r, 404, "no dead letter 1")

    # Bad input: clear 400s.
    assert_json_error(api.get("/api/v1/dead-letters?limit=0", VIEWER), 400, "limit")
    assert_json_error(api.get("/api/v1/dead-letters?limit=abc", VIEWER), 400, "limit")
    assert_json_error(api.get("/api/v1/dead-letters?cursor=zz", VIEWER), 400, "cursor")
    assert_json_error(api.get("/api/v1/dead-letters?sorce=github", VIEWER), 400, "sorce")
    assert_json_error(api.get("/api/v1/dead-letters/abc", VIEWER), 400, "abc")
    r = api.call("POST", "/api/v1/dead-letters/1/retry", ADMIN, data="queue=x",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_json_error(r, 415)
    r = api.call("POST", "/api/v1/dead-letters/1/retry", ADMIN, json={"queue": 3})
    assert_json_error(r, 400, "queue")

    # A body past the limit is refused from its Content-Length, before it is read.
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("POST", "/api/v1/dead-letters/1/retry", body=b"{" + b" " * 100_000 + b"}",
                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 413 and "too large" in json.loads(resp.read())["error"]
    conn.close()
    assert w.stop() == 0


def test_dead_letters_through_the_api(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    rid, dl_id = make_dead(redis_server, pg_migrated, sink)

    page = api.get("/api/v1/dead-letters", VIEWER).json()
    assert [d["id"] for d in page["items"]] == [dl_id] and page["next_cursor"] is None
    # The same items as hookqctl prints.
    assert page["items"] == json.loads(ctl(w, "dlq", "list", "--json"))
    one = api.get(f"/api/v1/dead-letters/{dl_id}", VIEWER).json()
    assert one == json.loads(ctl(w, "dlq", "show", str(dl_id), "--json"))
    assert one["event_id"] == rid and one["headers"]["X-GitHub-Event"] == "push"
    # The body as GET /api/v1/events/{id} shows it.
    ev = api.get(f"/api/v1/events/{rid}", VIEWER).json()
    assert (one["body"], one["body_encoding"]) == ('{"n":1}', "utf-8")
    assert (one["body"], one["body_encoding"]) == (ev["body"], ev["body_encoding"])

    # A token limited to stripe neither sees nor touches github's dead letter.
    assert api.get("/api/v1/dead-letters", STRIPE_ONLY).json()["items"] == []
    assert_json_error(api.get("/api/v1/dead-letters?source=github", STRIPE_ONLY), 403, "github")
    assert_json_error(api.get(f"/api/v1/dead-letters/{dl_id}", STRIPE_ONLY), 404)
    assert_json_error(api.call("POST", f"/api/v1/dead-letters/{dl_id}/retry", STRIPE_ONLY), 404)
    assert_json_error(api.call("DELETE", f"/api/v1/dead-letters/{dl_id}", STRIPE_ONLY), 404)
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(0,)]

    # Fixed application: retried through the API, redelivered under the same id, audited with
    # the token's name and role and the client's address and user agent.
    sink.set("/app", "200")
    r = api.call("POST", f"/api/v1/dead-letters/{dl_id}/retry", ADMIN,
                 headers={"User-Agent": "ops-console/1.0"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": dl_id, "event_id": rid, "route": "app", "queue": "github",
                        "result": "requeued"}
    wait_until(lambda: len(sink.received("/app")) == 2, 20, what="redelivery")
    assert sink.received("/app")[1].headers["x-request-id"] == rid
    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 10, what="delivered")
    [(actor, action, target, addr, details)] = rows(
        pg_migrated, "SELECT actor, action, target, remote_addr, details FROM audit_log")
    assert (actor, action, target, addr) == ("ops-admin", "dlq.retry", str(dl_id), "127.0.0.1")
    assert details["role"] == "admin" and details["user_agent"] == "ops-console/1.0"
    assert details["via"] == "api" and details["event_id"] == rid and details["queue"] == "github"

    # Once requeued: a conflict, unless forced; the default list no longer shows it.
    assert_json_error(api.call("POST", f"/api/v1/dead-letters/{dl_id}/retry", ADMIN), 409,
                      "already requeued")
    assert api.get("/api/v1/dead-letters", VIEWER).json()["items"] == []
    assert len(api.get("/api/v1/dead-letters?include_requeued=true",
                       VIEWER).json()["items"]) == 1
    r = api.call("POST", f"/api/v1/dead-letters/{dl_id}/retry", ADMIN,
                 json={"force": True, "dry_run": True})
    assert r.status_code == 200 and r.json()["result"] == "would requeue"

    # Delete: admin only, audited; the webhook's row stays.
    assert_json_error(api.call("DELETE", f"/api/v1/dead-letters/{dl_id}"), 401)
    assert_json_error(api.call("DELETE", f"/api/v1/dead-letters/{dl_id}", VIEWER), 403)
    r = api.call("DELETE", f"/api/v1/dead-letters/{dl_id}", ADMIN)
    assert r.status_code == 200 and r.json() == {"deleted": dl_id}
    assert rows(pg_migrated, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert rows(pg_migrated, "SELECT count(*) FROM webhook_events WHERE id = %s", rid) == [(1,)]
    assert_json_error(api.call("DELETE", f"/api/v1/dead-letters/{dl_id}", ADMIN), 404,
                      f"no dead letter {dl_id}")
    assert rows(pg_migrated, "SELECT actor, action, remote_addr FROM audit_log ORDER BY id") == [
        ("ops-admin", "dlq.retry", "127.0.0.1"), ("ops-admin", "dlq.delete", "127.0.0.1")]
    assert w.stop() == 0


def test_delete_is_hookqctl_dlq_delete(redis_server, pg_migrated, sink, workers, tmp_path):
    """One operation behind both: hookqctl --json prints what the API answers, and a token
    limited to a source deletes that source's letters only."""
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    _, gh_id = make_dead(redis_server, pg_migrated, sink)
    _, gh_id2 = make_dead(redis_server, pg_migrated, sink)
    _, st_id = make_dead(redis_server, pg_migrated, sink, "stripe", "/st")

    assert_json_error(api.call("DELETE", f"/api/v1/dead-letters/{gh_id}", STRIPE_ONLY), 404)
    r = api.call("DELETE", f"/api/v1/dead-letters/{st_id}", STRIPE_ONLY)
    assert r.status_code == 200 and r.json() == {"deleted": st_id}
    via_api = api.call("DELETE", f"/api/v1/dead-letters/{gh_id}", ADMIN).json()
    via_ctl = json.loads(ctl(w, "dlq", "delete", str(gh_id2), "--json"))
    assert via_api == {"deleted": gh_id} and via_ctl == {"deleted": gh_id2}
    # Not found: the API's 404 body, exit status 1.
    again = api.call("DELETE", f"/api/v1/dead-letters/{gh_id}", ADMIN).json()
    r = subprocess.run([harness.CTL_PATH, "--config", w.config_path, "dlq", "delete", str(gh_id),
                        "--json"], capture_output=True, text=True, env=worker_env())
    assert r.returncode == 1 and json.loads(r.stdout) == again
    assert again == {"error": "not found", "detail": f"no dead letter {gh_id}"}
    audit = rows(pg_migrated, "SELECT actor, action, target, details FROM audit_log ORDER BY id")
    assert [a[1:3] for a in audit] == [("dlq.delete", str(st_id)), ("dlq.delete", str(gh_id)),
                                       ("dlq.delete", str(gh_id2))]
    assert [a[0] for a in audit[:2]] == ["stripe-team", "ops-admin"]
    assert [a[3]["via"] for a in audit] == ["api", "api", "hookqctl"]
    assert w.stop() == 0


def test_token_file_others_can_read_is_a_warning_at_start(redis_server, pg_migrated, sink,
                                                          workers, tmp_path):
    port = harness.free_port()
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    cfg = admin_config(redis_server, pg_migrated, routes, tmp_path, port)
    os.chmod(tmp_path / "viewer.token", 0o644)
    w = workers(cfg)
    [line] = w.find("configuration")
    assert line["level"] == "warning", line
    assert str(tmp_path / "viewer.token") in line["warning"] and "'ops-viewer'" in line["warning"]
    with open(w.log_path) as f:
        assert VIEWER not in f.read()
    assert w.stop() == 0


def test_pagination_by_cursor(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    ids = sorted(make_dead(redis_server, pg_migrated, sink)[1] for _ in range(3))
    _, stripe_id = make_dead(redis_server, pg_migrated, sink, "stripe", "/st")

    p1 = api.get("/api/v1/dead-letters?source=github&limit=2", VIEWER).json()
    assert [d["id"] for d in p1["items"]] == ids[::-1][:2] and p1["next_cursor"]
    p2 = api.get(f"/api/v1/dead-letters?source=github&limit=2&cursor={p1['next_cursor']}",
                 VIEWER).json()
    assert [d["id"] for d in p2["items"]] == [ids[0]] and p2["next_cursor"] is None
    assert [d["id"] for d in api.get("/api/v1/dead-letters?route=st",
                                     VIEWER).json()["items"]] == [stripe_id]
    assert [d["id"] for d in api.get("/api/v1/dead-letters",
                                     STRIPE_ONLY).json()["items"]] == [stripe_id]
    assert w.stop() == 0


def test_status_is_hookqctl_status(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    rid, _ = make_dead(redis_server, pg_migrated, sink)
    wait_until(lambda: event_status(pg_migrated).get(rid) == "dead", 10, what="recorded")
    # Idle now: nothing changes between the two reads but the rates' window, which a webhook
    # recorded seconds ago does not leave.
    via_api = api.get("/api/v1/status", VIEWER).json()
    via_ctl = json.loads(ctl(w, "status", "--json"))
    # Ages grow between the two reads: the same keys, values within a few seconds; the rest equal.
    def ages(s):
        out = {}
        for q in s["queues"]:
            for k in [k for k in q if k.endswith("_age_s") or k.endswith("_overdue_s")]:
                out[(q["queue"], k)] = q.pop(k)
        out["dead"] = s["database"].pop("dead_letters_oldest_s_by_source")
        return out
    a, c = ages(via_api), ages(via_ctl)
    # The 5-minute rates are over the seconds their minute buckets cover, which grow too.
    for k in ("delivered_per_s_5m", "failed_attempts_per_s_5m"):
        x, y = via_api["database"].pop(k), via_ctl["database"].pop(k)
        assert abs(x - y) <= 0.05 * max(x, y, 1e-9), k
    # Redis's memory moves between the two reads too: the same node, both reachable.
    ra, rc = via_api.pop("redis"), via_ctl.pop("redis")
    assert [(n["node"], n["reachable"]) for n in ra] == [(n["node"], n["reachable"]) for n in rc] \
        == [(f"127.0.0.1:{redis_server.port}", True)]
    assert a.keys() == c.keys() and a["dead"].keys() == c["dead"].keys() == {"github"}
    assert all(abs(a[k] - c[k]) < 5 for k in a if k != "dead")
    assert abs(a["dead"]["github"] - c["dead"]["github"]) < 5
    assert via_api == via_ctl
    assert [q["queue"] for q in via_api["queues"]] == ["github", "stripe"]
    assert via_api["database"]["dead_letters_by_source"] == {"github": 1}

    scoped = api.get("/api/v1/status", STRIPE_ONLY).json()
    assert [q["queue"] for q in scoped["queues"]] == ["stripe"]
    assert scoped["database"]["dead_letters"] == 0
    assert scoped["database"]["events_last_hour"]["dead"] == 0
    assert "redis" not in scoped  # fleet-wide: not for a token limited to some sources
    assert w.stop() == 0


def test_readyz_follows_redis(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    r = api.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "redis": "ok", "postgres": "ok"}
    redis_server.stop()
    # (A requests.Response is falsy for an error status: wrap it.)
    [r] = wait_until(lambda: (lambda x: [x] if x.status_code == 503 else None)(api.get("/readyz")),
                     15, what="readyz 503")
    assert r.json() == {"status": "not ready", "redis": "unavailable", "postgres": "ok"}
    # The API still answers what it can, and says why it cannot (once the status it computed
    # before, kept for a second for the dashboards polling it, has expired).
    assert api.get("/healthz").status_code == 200
    time.sleep(STATUS_CACHE_S)
    assert_json_error(api.get("/api/v1/status", VIEWER), 503, "Redis")
    redis_server.start()
    wait_until(lambda: api.get("/readyz").status_code == 200, 15, what="readyz 200 again")
    assert w.stop() == 0


def test_redis_reads_answer_while_postgres_is_down(redis_server, pg_migrated, sink, workers,
                                                   tmp_path):
    # The worker starts on Redis alone (recording waits for PostgreSQL): nothing listens here.
    port = harness.free_port()
    nowhere = f"host=127.0.0.1 port={harness.free_port()} connect_timeout=1"
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    config = admin_config(redis_server, pg_migrated, routes, tmp_path, port)
    assert pg_migrated.dsn in config
    w = workers(config.replace(pg_migrated.dsn, nowhere))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    r = api.get("/readyz")
    assert r.status_code == 503 and r.json()["postgres"] == "unavailable"
    # What lives in Redis only is read; what needs PostgreSQL says so.
    for path in ("/api/v1/breakers", "/api/v1/breakers/http:/127.0.0.1:9", "/api/v1/pauses",
                 "/api/v1/destinations/health"):
        r = api.get(path, VIEWER)
        assert r.status_code in (200, 404), (path, r.status_code, r.text)
        assert r.status_code == 200 or "PostgreSQL" not in r.text, (path, r.text)
    assert api.get("/api/v1/breakers", VIEWER).status_code == 200
    assert_json_error(api.get("/api/v1/status", VIEWER), 503, "PostgreSQL")
    assert_json_error(api.call("POST", "/api/v1/breakers/http:/127.0.0.1:9/reset", ADMIN), 503,
                      "PostgreSQL")
    h = api.get("/api/v1/health", VIEWER)
    assert h.status_code == 200 and h.json()["status"] == "unhealthy", h.text
    w.stop()


def test_slow_clients_do_not_block_others(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    # More half-sent requests than the server has threads.
    slow = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", api.port))
        s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        slow.append(s)
    for _ in range(10):
        t0 = time.monotonic()
        assert api.get("/api/v1/status", VIEWER).status_code == 200
        assert api.get("/healthz").status_code == 200
        assert time.monotonic() - t0 < 5
    # The slow ones were held, not answered: they are still waiting for their request to end.
    for s in slow:
        s.setblocking(False)
        try:
            assert s.recv(1) == b"", "a half-sent request was answered"
        except BlockingIOError:
            pass
        s.close()
    assert w.stop() == 0


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def test_unix_socket(redis_server, pg_migrated, sink, workers, tmp_path):
    path = str(tmp_path / "admin.sock")
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    w = workers(admin_config(redis_server, pg_migrated, routes, tmp_path, 0,
                             listen=f"unix:{path}"))
    wait_until(lambda: os.path.exists(path), 15, what="admin socket")
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o660)
    _, dl_id = make_dead(redis_server, pg_migrated, sink)

    def call(method, target, token=None):
        conn = UnixConnection(path)
        conn.request(method, target,
                     headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        out = resp.status, json.loads(resp.read())
        conn.close()
        return out

    assert call("GET", "/healthz") == (200, {"status": "alive"})
    assert call("GET", "/api/v1/status")[0] == 401
    assert call("POST", f"/api/v1/dead-letters/{dl_id}/retry", ADMIN)[0] == 200
    assert rows(pg_migrated, "SELECT actor, remote_addr FROM audit_log") == [("ops-admin", "unix")]
    assert w.stop() == 0
    # The socket goes with the worker, so the next start can bind it.
    assert not os.path.exists(path)


def test_hung_redis_costs_a_request_a_bounded_wait(redis_server, pg_migrated, sink, workers,
                                                   tmp_path):
    """A Redis that accepts but never answers: the API's own short timeout turns each request
    into a 503 instead of pinning the server's threads."""
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    assert api.get("/api/v1/status", VIEWER).status_code == 200
    redis_server.pause()
    time.sleep(STATUS_CACHE_S)  # past the status kept for the polling dashboards
    try:
        for _ in range(5):  # more requests than threads, one after another
            t0 = time.monotonic()
            assert_json_error(api.get("/api/v1/status", VIEWER), 503, "Redis")
            assert time.monotonic() - t0 < 5
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 503
    finally:
        redis_server.resume()
    wait_until(lambda: api.get("/api/v1/status", VIEWER).status_code == 200, 15,
               what="status again")
    assert w.stop() == 0
