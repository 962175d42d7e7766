"""Pausing and resuming deliveries per route and per source (issue #9), against a real worker,
Redis, PostgreSQL and sink: a paused route's deliveries stay parked under "paused:<route>" without
spending attempts, being retried or dead-lettered; a resume delivers each exactly once; the pause
holds on every worker; a park decided from a copy read before a resume is not stranded; audited;
the API answers what hookqctl prints; metrics show it."""

import collections
import json
import subprocess

import requests

import envelope
import harness
from test_admin_api import ADMIN, STRIPE_ONLY, VIEWER, Api, admin_config
from worker_fixtures import (config_text, enqueue, route, rows, wait_until, worker_env,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "pz"


def ctl(w, *args, check=True, user="alice"):
    env = worker_env()
    env["SUDO_USER"] = user
    r = subprocess.run([harness.CTL_PATH, "--config", w.config_path, *args], capture_output=True,
                       text=True, env=env)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def route_states(pg, route_name):
    return dict(rows(pg, "SELECT event_id::text, status FROM webhook_routes WHERE route = %s",
                     route_name))


def received_ids(sink, path):
    return [q.headers["x-request-id"] for q in sink.received(path)]


def parked_count(r, route_name, q=Q):
    return r.zcard(f"hookq:{{{q}}}:parked:paused:{route_name}")


def wait_pause_seen(r, pg, sink, path, route_name):
    """Workers read the pauses at most once a second: enqueue probes until one is parked, rather
    than sleeping a second and hoping. Returns the probes (some may have been delivered)."""
    probes = []

    def one_parked():
        probes.extend(enqueue(r, Q, 1))
        st = route_states(pg, route_name)
        return any(st.get(p) == "parked" for p in probes)
    wait_until(one_parked, 15, interval=0.3, what=f"a delivery of {route_name} parked by the pause")
    wait_until(lambda: all(route_states(pg, route_name).get(p) in ("parked", "delivered")
                           for p in probes), 15, what="every probe settled")
    return probes


def routes_ab(sink):
    return route("a", Q, sink.url("/a")) + route("b", Q, sink.url("/b")) + \
        route("st", "stripe", sink.url("/st"))


def start_api(redis_server, pg, sink, workers, tmp_path, name="worker", start=True):
    port = harness.free_port()
    listen = f'listen = "127.0.0.1:{port}"\n'
    cfg = admin_config(redis_server, pg, routes_ab(sink), tmp_path, port)
    cfg = cfg.replace(listen, listen + 'metrics_refresh = "200ms"\n')
    w = workers(cfg, name=name, start=start)
    api = Api(port)
    if start:
        wait_until(lambda: _alive(api), 15, what="admin API listening")
    return w, api


def _alive(api):
    try:
        return api.get("/healthz").status_code == 200
    except requests.RequestException:
        return False


def post(api, path, token=ADMIN, body=None):
    kw = {"json": body} if body is not None else {}
    return api.call("POST", path, token, **kw)


def test_pause_route_holds_its_deliveries_and_resume_delivers_each_once(
        redis_server, pg_migrated, sink, workers, tmp_path):
    r = redis_server.client()
    w, api = start_api(redis_server, pg_migrated, sink, workers, tmp_path)

    out = ctl(w, "pause", "route", "a", "--reason", "deploying app").stdout
    assert "route a paused" in out
    probes = wait_pause_seen(r, pg_migrated, sink, "/a", "a")
    ids = enqueue(r, Q, 6)
    # Route b of the same webhooks still delivers; a holds them all, parked.
    wait_until(lambda: set(ids) <= set(received_ids(sink, "/b")), 20, what="b delivered")
    wait_until(lambda: all(route_states(pg_migrated, "a").get(i) == "parked" for i in ids), 20,
               what="a parked")
    assert not set(ids) & set(received_ids(sink, "/a"))
    held = [p for p in probes if route_states(pg_migrated, "a").get(p) == "parked"] + ids
    assert parked_count(r, "a") == len(held)
    assert r.sismember(f"hookq:{{{Q}}}:parked_destinations", "paused:a")
    # Nothing retried or dead-lettered, no attempt spent, no breaker asked about "paused:a".
    assert r.zcard(f"hookq:{{{Q}}}:retry") == 0
    assert rows(pg_migrated, "SELECT count(*) FROM dead_letters")[0][0] == 0
    attempts = dict(rows(pg_migrated, "SELECT event_id::text, attempts FROM webhook_routes "
                                      "WHERE route = 'a'"))
    assert all(attempts[i] == 0 for i in ids), attempts
    assert not r.exists("hookq:breaker:paused:a")

    # The API, hookqctl --json, status and metrics all say so.
    listed = api.get("/api/v1/pauses", VIEWER).json()
    assert listed == json.loads(ctl(w, "pauses", "--json").stdout)
    [p] = listed["pauses"]
    assert (p["kind"], p["name"], p["reason"], p["routes"]) == ("route", "a", "deploying app",
                                                               ["a"])
    assert p["by"] == "alice (hookqctl)" and p["parked"] == len(held)
    assert "a" in ctl(w, "pauses").stdout
    status = api.get("/api/v1/status", ADMIN).json()
    assert status["routes_paused"] == {"a": True, "b": False, "st": False}

    def gauge(name, label):
        text = api.get("/metrics", ADMIN).text
        for line in text.splitlines():
            if line.startswith(f"{name}{{") and label in line:
                return line.rsplit(" ", 1)[1]
        return None
    wait_until(lambda: gauge("hookq_route_paused", 'route="a"') == "1", 20,
               what="hookq_route_paused{route=a} 1")
    assert gauge("hookq_route_paused", 'route="b"') == "0"

    # Resume: every held delivery comes back and is delivered exactly once.
    out = json.loads(ctl(w, "resume", "route", "a", "--json").stdout)
    assert out["paused"] is False and out["released"] == len(held)
    wait_until(lambda: all(route_states(pg_migrated, "a").get(i) == "delivered" for i in held), 20,
               what="a delivered after the resume")
    counts = collections.Counter(received_ids(sink, "/a"))
    assert all(counts[i] == 1 for i in held), counts
    assert parked_count(r, "a") == 0
    # Each delivery to a is its first attempt: the pause used none.
    for q in sink.received("/a"):
        assert q.headers["x-retry-attempt"] == "1"
    wait_until(lambda: gauge("hookq_route_paused", 'route="a"') == "0", 20,
               what="hookq_route_paused{route=a} 0")

    audit = rows(pg_migrated, "SELECT actor, action, target, details->>'reason' FROM audit_log "
                              "ORDER BY id")
    assert audit == [("alice", "route.pause", "a", "deploying app"),
                     ("alice", "route.resume", "a", None)]
    assert w.stop() == 0


def test_api_pause_source_errors_and_scope(redis_server, pg_migrated, sink, workers, tmp_path):
    r = redis_server.client()
    w, api = start_api(redis_server, pg_migrated, sink, workers, tmp_path)

    # Bad input, unknown names, roles, scope: nothing changes, nothing audited.
    assert post(api, "/api/v1/routes/nope/pause").status_code == 404
    assert post(api, "/api/v1/sources/nope/pause").status_code == 404
    assert post(api, "/api/v1/routes/a/resume").status_code == 409
    bad = post(api, "/api/v1/routes/a/pause", body={"why": "x"})
    assert bad.status_code == 400 and "reason" in bad.json()["detail"]
    assert post(api, "/api/v1/routes/a/pause", VIEWER).status_code == 403
    assert post(api, "/api/v1/routes/a/pause", STRIPE_ONLY).status_code == 404
    assert api.call("GET", "/api/v1/routes/a/pause", ADMIN).status_code == 405
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log")[0][0] == 0
    assert r.hlen("hookq:paused") == 0

    res = post(api, f"/api/v1/sources/{Q}/pause", body={"reason": "provider outage"})
    assert res.status_code == 200, res.text
    assert res.json()["routes"] == ["a", "b"] and res.json()["by"] == "ops-admin (api)"
    assert post(api, f"/api/v1/sources/{Q}/pause").status_code == 409
    # The stripe-only token sees no pause of another source.
    assert api.get("/api/v1/pauses", STRIPE_ONLY).json() == {"pauses": []}
    assert api.get("/api/v1/pauses", VIEWER).json()["pauses"][0]["name"] == Q

    probes = wait_pause_seen(r, pg_migrated, sink, "/a", "a")
    ids = enqueue(r, Q, 4)
    st_ids = enqueue(r, "stripe", 2)
    wait_until(lambda: set(st_ids) <= set(received_ids(sink, "/st")), 20,
               what="another source still delivered")
    wait_until(lambda: all(route_states(pg_migrated, x).get(i) == "parked"
                           for i in ids for x in ("a", "b")), 20, what="both routes parked")
    assert not set(ids) & set(received_ids(sink, "/a") + received_ids(sink, "/b"))
    status = api.get("/api/v1/status", ADMIN).json()
    assert status["sources_paused"][Q] is True and status["routes_paused"]["b"] is True

    res = post(api, f"/api/v1/sources/{Q}/resume")
    assert res.status_code == 200 and res.json()["released"] >= 2 * len(ids)
    wait_until(lambda: all(route_states(pg_migrated, x).get(i) == "delivered"
                           for i in ids + probes for x in ("a", "b")), 20, what="all delivered")
    for path in ("/a", "/b"):
        c = collections.Counter(received_ids(sink, path))
        assert all(c[i] == 1 for i in ids + probes), c
    assert rows(pg_migrated, "SELECT actor, action, target, remote_addr IS NOT NULL FROM audit_log "
                             "ORDER BY id") == [("ops-admin", "source.pause", Q, True),
                                                ("ops-admin", "source.resume", Q, True)]
    assert w.stop() == 0


def test_two_workers_and_a_resume_racing_stale_copies(redis_server, pg_migrated, sink, workers,
                                                      tmp_path):
    """Both workers hold a paused route; pausing, enqueueing and resuming at once leaves nothing
    parked: a park decided from a copy read before the resume goes back to the queue at its ack."""
    r = redis_server.client()
    routes = route("a", Q, sink.url("/a"))
    w1 = workers(config_text(redis_server, pg_migrated, routes, worker_id="w1"), name="w1")
    w2 = workers(config_text(redis_server, pg_migrated, routes, worker_id="w2"), name="w2")
    ctl(w1, "pause", "route", "a")
    probes = wait_pause_seen(r, pg_migrated, sink, "/a", "a")
    ids = enqueue(r, Q, 40)
    wait_until(lambda: all(route_states(pg_migrated, "a").get(i) == "parked" for i in ids), 20,
               what="parked on both workers")
    by_worker = dict(rows(pg_migrated, "SELECT worker_id, count(*) FROM delivery_attempts "
                                       "GROUP BY worker_id"))
    assert not set(ids) & set(received_ids(sink, "/a")), by_worker
    ctl(w1, "resume", "route", "a")
    everything = list(probes) + ids
    # Races: pause, enqueue, resume at once, several times. Whatever copy each worker held, every
    # webhook ends delivered and nothing stays parked.
    for _ in range(5):
        ctl(w1, "pause", "route", "a")
        everything += enqueue(r, Q, 20)
        ctl(w2, "resume", "route", "a")
    wait_until(lambda: all(route_states(pg_migrated, "a").get(i) == "delivered"
                           for i in everything), 30, what="everything delivered")
    assert parked_count(r, "a") == 0
    c = collections.Counter(received_ids(sink, "/a"))
    assert all(c[i] == 1 for i in everything), [i for i in everything if c[i] != 1]
    assert rows(pg_migrated, "SELECT count(*) FROM dead_letters")[0][0] == 0
    assert w1.stop() == 0 and w2.stop() == 0
