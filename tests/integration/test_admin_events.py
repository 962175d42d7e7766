"""Event search and detail through the admin API and hookqctl, against a real worker, Redis and
PostgreSQL: every filter narrows, keyset pages walk each row once while new rows arrive, bodies come
back as text or base64, source-limited tokens see only their sources, bad input is a 400 naming the
parameter, and `hookqctl events --json` prints what the API returns."""

import base64
import datetime
import json
import os
import subprocess

import envelope
import harness
from test_admin_api import ADMIN, VIEWER, Api, admin_config, assert_json_error, ctl, _alive
from test_ctl_breaker import open_breaker
from worker_fixtures import (SECRET, event_status, route, rows, wait_until, worker_env,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

STRIPE_VIEWER = "w" * 40
SOURCES = '[sources.github]\nevent_header = "X-GitHub-Event"\n'


def start(redis_server, pg, sink, workers, tmp_path):
    port = harness.free_port()
    p = tmp_path / "stripe-viewer.token"
    p.write_text(STRIPE_VIEWER + "\n")
    os.chmod(p, 0o600)
    extra = f"""
[[admin.tokens]]
name = "stripe-viewer"
role = "viewer"
token = "file:{p}"
sources = ["stripe"]

{SOURCES}
"""
    routes = (route("app", "github", sink.url("/app")) +
              route("issues", "github", sink.url("/issues"), 'events = ["issues"]') +
              route("st", "stripe", sink.url("/st")))
    w = workers(admin_config(redis_server, pg, routes, tmp_path, port, extra))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    return w, api


def push(redis_server, source, **kw):
    rid, env = envelope.make(source, **kw)
    redis_server.client().lpush(f"hookq:{{{source}}}:queue", env)
    return rid


def ids(page):
    return [e["id"] for e in page["items"]]


def iso(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).isoformat()


def test_filters_detail_scope_and_bad_input(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    sink.set("/st", "400")
    now_us = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1e6)
    # Delivered to app, refused by issues: dead as a webhook, delivered for route app.
    sink.set("/issues", "400")
    mixed = push(redis_server, "github", headers=[("X-GitHub-Event", "issues")],
                 received_at_us=now_us - 3 * 3600 * 1_000_000)
    wait_until(lambda: event_status(pg_migrated).get(mixed) == "dead", 20, what="mixed dead")
    sink.set("/issues", "200")
    old = push(redis_server, "github", headers=[("X-GitHub-Event", "push")],
               received_at_us=now_us - 2 * 3600 * 1_000_000)
    push_ev = push(redis_server, "github", body=b'{"ref":"main"}',
                   headers=[("X-GitHub-Event", "push")])
    issue = push(redis_server, "github", headers=[("X-GitHub-Event", "issues")])
    raw = b"\xff\xfe{not utf-8}\x00"
    st = push(redis_server, "stripe", body=raw, content_type="application/octet-stream")
    want = {old: "delivered", push_ev: "delivered", issue: "delivered", st: "dead",
            mixed: "dead"}
    wait_until(lambda: all(event_status(pg_migrated).get(k) == v for k, v in want.items()), 20,
               what="all recorded")

    everything = api.get("/api/v1/events", VIEWER).json()
    assert set(ids(everything)) == set(want) and everything["next_cursor"] is None
    assert ids(everything)[-2:] == [old, mixed]  # newest first

    def only(query):
        r = api.get("/api/v1/events?" + query, VIEWER)
        assert r.status_code == 200, r.text
        return sorted(ids(r.json()))

    assert only("source=stripe") == [st]
    assert only("source=github") == sorted([old, push_ev, issue, mixed])
    assert only("route=issues") == sorted([issue, mixed])
    assert only("route=st") == [st]
    assert only("status=dead") == sorted([st, mixed])
    # With a route, the status is that route's own.
    assert only("route=issues&status=dead") == [mixed]
    assert only("route=app&status=dead") == []
    assert only("route=app&status=delivered") == sorted([old, push_ev, issue, mixed])
    assert only("event_type=push") == sorted([old, push_ev])
    assert only("event_type=issues&route=app") == sorted([issue, mixed])
    assert only(f"request_id={push_ev}") == [push_ev]
    assert only(f"dedup_key={issue}") == [issue]  # envelope.make uses the id as the dedup key
    cut = iso(now_us - 3600 * 1_000_000)
    assert only("to=" + cut.replace("+", "%2B")) == sorted([old, mixed])
    assert only("from=" + cut.replace("+", "%2B")) == sorted([push_ev, issue, st])
    assert only("source=stripe&status=delivered") == []

    # One event: text body, headers, per-route state and the attempts timeline.
    one = api.get(f"/api/v1/events/{issue}", VIEWER).json()
    assert one["id"] == issue and one["event_type"] == "issues" and one["status"] == "delivered"
    assert one["body_encoding"] == "utf-8" and one["body"] == '{"hello":"world"}'
    assert one["headers"]["X-GitHub-Event"] == "issues"
    assert sorted((r["route"], r["status"]) for r in one["routes"]) == [
        ("app", "delivered"), ("issues", "delivered")]
    assert sorted((a["route"], a["outcome"], a["http_status"]) for a in one["attempts"]) == [
        ("app", "delivered", 200), ("issues", "delivered", 200)]
    assert one["dead_letters"] == []

    # Bytes that are not UTF-8 come back as base64, exactly; its dead letter is listed.
    dead = api.get(f"/api/v1/events/{st}", VIEWER).json()
    assert dead["body_encoding"] == "base64" and base64.b64decode(dead["body"]) == raw
    assert dead["body_size"] == len(raw)
    assert [(d["route"], d["reason"] != "") for d in dead["dead_letters"]] == [("st", True)]
    assert [(a["outcome"], a["http_status"]) for a in dead["attempts"]] == [("dead", 400)]
    assert [(r["route"], r["status"]) for r in dead["routes"]] == [("st", "dead")]

    # hookqctl prints exactly what the API returns, and a readable table otherwise.
    assert json.loads(ctl(w, "events", "--json")) == everything
    assert json.loads(ctl(w, "events", "--source", "github", "--event-type", "push",
                          "--json")) == api.get("/api/v1/events?source=github&event_type=push",
                                                VIEWER).json()
    assert json.loads(ctl(w, "events", "show", st, "--json")) == dead
    table = ctl(w, "events")
    assert table.splitlines()[0].split()[:3] == ["ID", "RECEIVED_AT", "SOURCE"]
    assert st in table and old in table
    shown = ctl(w, "events", "show", st)
    assert "base64" in shown and "attempts:" in shown and "dead letters:" in shown

    # A viewer limited to stripe sees stripe's events only; another source's is absent.
    assert ids(api.get("/api/v1/events", STRIPE_VIEWER).json()) == [st]
    assert_json_error(api.get(f"/api/v1/events/{issue}", STRIPE_VIEWER), 404, issue)
    assert api.get(f"/api/v1/events/{st}", STRIPE_VIEWER).status_code == 200
    assert_json_error(api.get("/api/v1/events?source=github", STRIPE_VIEWER), 403, "github")
    assert ids(api.get(f"/api/v1/events?request_id={issue}", STRIPE_VIEWER).json()) == []

    # Bad input: a 400 naming what is wrong, never a 500.
    for query, word in [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
                        ("cursor=zz", "cursor"), ("cursor=" + "A" * 60, "cursor"),
                        ("status=lost", "status"), ("from=yesterday", "from"),
                        ("to=2026-02-31", "to"), ("request_id=42", "request_id"),
                        ("sorce=github", "sorce"),
                        ("from=2026-12-01&to=2026-11-01", "before")]:
        assert_json_error(api.get("/api/v1/events?" + query, VIEWER), 400, word)
    assert_json_error(api.get("/api/v1/events/not-a-uuid", VIEWER), 400, "not-a-uuid")
    assert_json_error(api.get(f"/api/v1/events/{issue}?x=1", VIEWER), 400, "x")
    assert_json_error(api.get("/api/v1/events/01936f4e-8a2b-7c3d-9e4f-0123456789ab", VIEWER),
                      404)
    assert_json_error(api.call("POST", "/api/v1/events", ADMIN), 405)
    r = harness_ctl_fail(w, "events", "--limit", "0")
    assert r.returncode != 0 and "limit" in r.stderr
    assert w.stop() == 0


def harness_ctl_fail(w, *args):
    return subprocess.run([harness.CTL_PATH, "--config", w.config_path, *args],
                          capture_output=True, text=True, env=worker_env())


def test_pages_walk_every_row_once_while_rows_arrive(redis_server, pg_migrated, sink, workers,
                                                     tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    client = redis_server.client()
    now_us = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1e6) - 60_000_000
    first = []
    # Ten share one microsecond: the id breaks the tie, across page boundaries too.
    for i in range(25):
        rid, env = envelope.make("github", received_at_us=now_us if i < 10 else now_us + i)
        client.lpush("hookq:{github}:queue", env)
        first.append(rid)
    count = lambda: rows(pg_migrated, "SELECT count(*) FROM webhook_events")[0][0]  # noqa: E731
    wait_until(lambda: count() == 25, 20, what="25 recorded")

    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/v1/events?source=github&limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(q, VIEWER).json()
        seen += ids(page)
        pages += 1
        # New webhooks arrive between pages: they are newer than the walk, so they neither
        # shift it nor show up in it.
        total = count()
        for _ in range(3):
            push(redis_server, "github")
        wait_until(lambda: count() == total + 3, 20, what="3 more recorded")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 25 and set(seen) == set(first)

    # hookqctl pages with the same cursor.
    p1 = api.get("/api/v1/events?limit=5", VIEWER).json()
    assert json.loads(ctl(w, "events", "--limit", "5", "--cursor", p1["next_cursor"],
                          "--json")) == api.get(f"/api/v1/events?limit=5&cursor="
                                                f"{p1['next_cursor']}", VIEWER).json()
    assert w.stop() == 0


def execute(pg, sql, *args):
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    finally:
        conn.close()


DEST = "http://127.0.0.1:9"


def test_breakers_and_routes_through_the_api(redis_server, pg_migrated, sink, workers, tmp_path):
    port = harness.free_port()
    p = tmp_path / "stripe-viewer.token"
    p.write_text(STRIPE_VIEWER + "\n")
    os.chmod(p, 0o600)
    extra = (f'[[admin.tokens]]\nname = "stripe-viewer"\nrole = "viewer"\ntoken = "file:{p}"\n'
             'sources = ["stripe"]\n')
    routes = (route("app", "github", sink.url("/app")) +
              route("down", "github", "http://hook:pa55word@127.0.0.1:9/in?token=s3cret&v=2") +
              route("st", "stripe", sink.url("/st")))
    w = workers(admin_config(redis_server, pg_migrated, routes, tmp_path, port, extra))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    r = redis_server.client()
    open_breaker(r, DEST)
    # Parked on a queue no worker consumes, so what the reset releases stays there to be seen.
    r.zadd(f"hookq:{{qa}}:parked:{DEST}", {b"p2": 2, b"p1": 1})
    r.sadd("hookq:{qa}:parked_destinations", DEST)

    listed = api.get("/api/v1/breakers", VIEWER).json()
    assert [(b["destination"], b["state"]) for b in listed] == [(DEST, "open")]
    assert json.loads(ctl(w, "breaker", "list", "--json")) == listed
    enc = "/api/v1/breakers/http%3A%2F%2F127.0.0.1%3A9"
    assert api.get(enc, VIEWER).json() == listed[0]
    assert_json_error(api.get("/api/v1/breakers/http%3A%2F%2F127.0.0.1%3A10", VIEWER), 404)
    # The stripe team's routes do not send to DEST: its breaker is not theirs to see or reset.
    assert api.get("/api/v1/breakers", STRIPE_VIEWER).json() == []
    assert_json_error(api.get(enc, STRIPE_VIEWER), 404)

    # Routes: where each sends, with no credential, query secret or signing secret in sight.
    rt = api.get("/api/v1/routes", VIEWER)
    assert rt.status_code == 200, rt.text
    by_name = {x["name"]: x for x in rt.json()}
    assert list(by_name) == ["app", "down", "st"]
    assert by_name["down"]["url"] == "http://127.0.0.1:9/in?token=REDACTED&v=REDACTED"
    assert by_name["down"]["destination"] == DEST and by_name["down"]["breaker"] == "open"
    assert by_name["app"]["breaker"] == "closed" and by_name["app"]["flag"] is None
    for secret in ("pa55word", "s3cret", SECRET, SECRET[6:]):
        assert secret not in rt.text
    execute(pg_migrated, "INSERT INTO route_flags (route, reason, flagged_at) "
                         "VALUES ('st', '410 Gone', now())")
    st = {x["name"]: x for x in api.get("/api/v1/routes", STRIPE_VIEWER).json()}
    assert list(st) == ["st"] and st["st"]["flag"]["reason"] == "410 Gone"
    assert json.loads(ctl(w, "routes", "--json")) == api.get("/api/v1/routes", VIEWER).json()
    assert "down" in ctl(w, "routes") and "pa55word" not in ctl(w, "routes")

    # Reset: admins only, audited with the token, closes the breaker, releases what was parked.
    assert_json_error(api.call("POST", enc + "/reset", VIEWER), 403, "viewer")
    assert_json_error(api.call("POST", enc + "/reset", STRIPE_VIEWER), 403)
    assert_json_error(api.call("GET", enc + "/reset", ADMIN), 405)
    res = api.call("POST", enc + "/reset", ADMIN, headers={"User-Agent": "ops-console/2"})
    assert res.status_code == 200, res.text
    assert res.json() == {"destination": DEST, "from_state": "open", "state": "closed",
                          "parked_released": 2}
    assert r.hget(f"hookq:breaker:{DEST}", "state") == b"closed"
    assert r.lrange("hookq:{qa}:queue", 0, -1) == [b"p2", b"p1"]
    assert r.exists(f"hookq:{{qa}}:parked:{DEST}") == 0
    [(actor, action, target, addr, details)] = rows(
        pg_migrated, "SELECT actor, action, target, remote_addr, details FROM audit_log")
    assert (actor, action, target, addr) == ("ops-admin", "breaker.reset", DEST, "127.0.0.1")
    assert details == {"from_state": "open", "role": "admin", "user_agent": "ops-console/2",
                       "via": "api"}
    assert rows(pg_migrated, "SELECT from_state, to_state, reason FROM breaker_transitions") == [
        ("open", "closed", "reset by ops-admin (api)")]
    assert api.get("/api/v1/routes", VIEWER).json()[1]["breaker"] == "closed"
    assert_json_error(api.call("POST", "/api/v1/breakers/http%3A%2F%2Fnowhere%3A1/reset", ADMIN),
                      404, "no breaker")
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(1,)]
    assert w.stop() == 0
