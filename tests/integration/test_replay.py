"""Replay (issue #8): recorded webhooks sent again as a paced job, against real Redis, PostgreSQL,
sink and workers. Selectors, dry run, pacing, open breakers, cancel/resume, a kill -9 of the
worker running the job, and never a second delivery to a route that had succeeded."""

import collections
import json
import subprocess
import time

import envelope
import harness
import test_admin_api as base
from worker_fixtures import (config_text, event_status, route, rows, wait_until,  # noqa: F401
                             worker_env, pg_migrated, sink, workers)

A = base.ADMIN


def routes(sink):
    # github goes to two routes: "app" (made to fail) and "app2" (always fine).
    return (route("app", "github", sink.url("/app")) +
            route("app2", "github", sink.url("/app2")) +
            route("st", "stripe", sink.url("/st")) +
            '\n[sources.github]\nevent_header = "X-GitHub-Event"\n')


def start(redis_server, pg, sink, workers, tmp_path, name="worker", worker_id="w1",
          extra_worker="", retry=""):
    port = harness.free_port()
    cfg = base.admin_config(redis_server, pg, routes(sink), tmp_path, port)
    cfg = cfg.replace('id = "w1"', f'id = "{worker_id}"\n{extra_worker}', 1)
    cfg = cfg.replace("[retry]\n", f"[retry]\n{retry}\n", 1)
    # A breaker opened by hand half-opens, and closes on one good probe, quickly.
    cfg = cfg.replace("[breaker]\n", '[breaker]\nopen_for = "1s"\nclose_after = 1\n', 1)
    w = workers(cfg, name=name)
    api = base.Api(port)
    wait_until(lambda: base._alive(api), 15, what="admin API listening")
    return w, api


def ctl(worker, *args, check=True):
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=worker_env(), timeout=60)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def push(redis_server, source, n=1, event=None):
    r = redis_server.client()
    ids = []
    for _ in range(n):
        hdrs = [("X-GitHub-Event", event)] if event else []
        rid, env = envelope.make(source, headers=hdrs)
        r.lpush(f"hookq:{{{source}}}:queue", env)
        ids.append(rid)
    return ids


def settled(pg, ids, status):
    st = event_status(pg)
    return all(st.get(i) == status for i in ids)


def count_by_id(sink, path, since=0.0):
    return collections.Counter(r.headers.get("x-request-id") for r in sink.received(path)
                               if r.at >= since)


def job(pg, jid):
    return dict(zip(["state", "total", "sent", "skipped", "failed", "lease_owner"],
                    rows(pg, "SELECT state, total, sent, skipped, failed, lease_owner "
                         "FROM replay_jobs WHERE id = %s", jid)[0]))


def wait_done(pg, jid, timeout=30):
    wait_until(lambda: job(pg, jid)["state"] == "done", timeout, what=f"replay {jid} done")
    return job(pg, jid)


def audit(pg, action):
    return rows(pg, "SELECT actor, target, details, remote_addr FROM audit_log WHERE action = %s "
                "ORDER BY id", action)


def test_selectors_dry_run_and_succeeded_routes(redis_server, pg_migrated, sink, workers,
                                                tmp_path):
    pg = pg_migrated
    w, api = start(redis_server, pg, sink, workers, tmp_path)
    sink.set("/app", "400")  # app: dead at once; app2 and st: delivered
    push_ids = push(redis_server, "github", 3, "push")
    issue_ids = push(redis_server, "github", 3, "issues")
    st_ok = push(redis_server, "stripe", 2)
    wait_until(lambda: (settled(pg, push_ids + issue_ids, "dead") and
                        settled(pg, st_ok, "delivered")), 20, what="github dead, stripe delivered")
    sink.set("/st", "400")
    st_dead = push(redis_server, "stripe", 1)
    wait_until(lambda: settled(pg, st_dead, "dead"), 20, what="stripe dead")
    sink.set("/app", "200")
    sink.set("/st", "200")
    t0 = time.time()

    # Dry run: counts, per route, a sample; nothing changed (no job, no audit, nothing queued).
    r = api.call("POST", "/api/v1/replays", A, json={"status": "dead", "dry_run": True})
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["total"], p["to_send"], p["deliveries"]) == (7, 7, 7), p
    assert p["routes"] == {"app": 6, "st": 1}, p  # app2 delivered: not part of it
    assert p["sample"][0] == push_ids[0] and len(p["sample"]) == 7
    assert p["confirmation_required"] is False
    cli = json.loads(ctl(w, "replay", "--status", "dead", "--dry-run", "--json").stdout)
    for k in ("total", "to_send", "routes", "sample", "routes_mode"):
        assert cli[k] == p[k], k
    assert rows(pg, "SELECT count(*) FROM replay_jobs")[0][0] == 0
    assert audit(pg, "replay.create") == []
    rc = redis_server.client()
    assert rc.llen("hookq:{github}:queue") == 0 and rc.llen("hookq:{stripe}:queue") == 0

    # Bad selections: 400 with the reason.
    for body, word in (({}, "empty selection"), ({"status": "lost"}, "status"),
                       ({"source": "github", "rate": 0}, "rate"),
                       ({"request_ids": ["nope"]}, "request_ids"),
                       ({"source": "github", "colour": 1}, "unknown field"),
                       ({"since": "1h", "from": "2026-01-01"}, "since")):
        base.assert_json_error(api.call("POST", "/api/v1/replays", A, json=body), 400, word)

    # By request id (API): only its dead route; app2 (delivered) gets nothing.
    r = api.call("POST", "/api/v1/replays", A, json={"request_ids": [issue_ids[0]]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["state"] == "pending" and created["total"] == 1
    assert created["selection"]["request_ids"] == [issue_ids[0]]
    j1 = wait_done(pg, created["id"])
    assert (j1["sent"], j1["skipped"], j1["failed"]) == (1, 0, 0)
    wait_until(lambda: event_status(pg)[issue_ids[0]] == "delivered", 20, what="replayed")
    a = audit(pg, "replay.create")
    assert len(a) == 1 and a[0][0] == "ops-admin" and a[0][3] == "127.0.0.1"
    assert a[0][2]["selection"]["request_ids"] == [issue_ids[0]] and a[0][2]["via"] == "api"

    # By source and event type (hookqctl, waiting until done).
    out = ctl(w, "replay", "--source", "github", "--event-type", "push", "--rate", "100").stdout
    assert "done" in out and "sent 3" in out, out
    wait_until(lambda: settled(pg, push_ids, "delivered"), 20, what="pushes replayed")
    # By route and status (that route's status).
    out = ctl(w, "replay", "--route", "st", "--status", "dead", "--json").stdout
    j = json.loads(out)
    assert j["state"] == "done" and j["sent"] == 1 and j["selection"]["route"] == "st"
    wait_until(lambda: settled(pg, st_dead, "delivered"), 20, what="stripe replayed")
    # By time range (from/to) and status: the two issues still dead; the replayed one is
    # delivered now, so it is not selected again.
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - 3600))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 3600))
    out = ctl(w, "replay", "--from", frm, "--to", to, "--status", "dead", "--json").stdout
    j = json.loads(out)
    assert (j["total"], j["sent"]) == (2, 2), j
    wait_until(lambda: settled(pg, push_ids + issue_ids + st_dead, "delivered"), 20,
               what="all delivered")
    # Every selected webhook once per route that had not succeeded; nothing to app2 or to the
    # stripe webhooks that were delivered.
    app = count_by_id(sink, "/app", t0)
    assert app == {i: 1 for i in push_ids + issue_ids}, app
    assert count_by_id(sink, "/app2", t0) == {}
    assert count_by_id(sink, "/st", t0) == {st_dead[0]: 1}
    # Their dead letters are marked requeued, as `dlq retry` marks them.
    assert rows(pg, "SELECT count(*), count(requeued_at) FROM dead_letters") == [(7, 7)]

    # Since and status=delivered: every route succeeded, so by default nothing is sent...
    j = json.loads(ctl(w, "replay", "--since", "1h", "--status", "delivered", "--source",
                       "github", "--json").stdout)
    assert (j["total"], j["sent"], j["skipped"]) == (6, 0, 6), j
    # ... and with --all-routes, one webhook goes to both of its routes again.
    j = json.loads(ctl(w, "replay", "--id", push_ids[0], "--all-routes", "--json").stdout)
    assert j["routes_mode"] == "all" and j["sent"] == 1
    wait_until(lambda: count_by_id(sink, "/app2", t0) == {push_ids[0]: 1}, 20, what="app2 again")
    assert count_by_id(sink, "/app", t0)[push_ids[0]] == 2
    # The original request id travels with it.
    assert all(r.headers.get("x-request-id") in push_ids + issue_ids
               for r in sink.received("/app") if r.at >= t0)

    # list / show, hookqctl --json identical to the API.
    lst = api.get("/api/v1/replays", A).json()
    assert len(lst["replays"]) == 6 and lst["replays"][0]["id"] > lst["replays"][-1]["id"]
    one = api.get(f"/api/v1/replays/{created['id']}", base.VIEWER).json()
    assert one == json.loads(ctl(w, "replay", "show", str(created["id"]), "--json").stdout)
    assert one["state"] == "done" and one["progress"] == 1.0
    listed = ctl(w, "replay", "list").stdout.splitlines()
    assert listed[0].split()[:2] == ["ID", "STATE"] and len(listed) == 7, listed
    # A token limited to stripe: names a source it may see, and sees only such jobs.
    S = base.STRIPE_ONLY
    base.assert_json_error(api.call("POST", "/api/v1/replays", S, json={"status": "dead"}),
                           400, "limited")
    base.assert_json_error(api.call("POST", "/api/v1/replays", S, json={"source": "github"}),
                           400, "may not see")
    r = api.call("POST", "/api/v1/replays", S, json={"source": "stripe", "dry_run": True})
    assert r.status_code == 200 and r.json()["selection"]["scope"] == ["stripe"], r.text
    seen = api.get("/api/v1/replays", S).json()["replays"]
    assert seen == [], seen  # every job so far names github or no source
    assert api.get(f"/api/v1/replays/{created['id']}", S).status_code == 404
    # Viewer tokens read but do not write.
    base.assert_json_error(api.call("POST", "/api/v1/replays", base.VIEWER,
                                    json={"source": "github"}), 403, "admin")
    # hookq_replay_events_total counted what this worker's runner did.
    m = api.get("/metrics", A).text
    assert 'hookq_replay_events_total{result="enqueued"} 8' in m, m
    assert 'hookq_replay_events_total{result="skipped"} 6' in m
    assert w.stop() == 0


def test_large_selection_needs_confirmation(redis_server, pg_migrated, sink, workers, tmp_path):
    pg = pg_migrated
    w, api = start(redis_server, pg, sink, workers, tmp_path)
    # 1,001 dead webhooks, written as the recorder would.
    conn = pg.connect()
    with conn, conn.cursor() as cur:
        cur.execute("""
            WITH ins AS (INSERT INTO webhook_events (id, received_at, source, body, status, headers)
              SELECT gen_random_uuid(), now() - (g || ' ms')::interval, 'stripe', '\\x7b7d', 'dead',
                     '{"content-type": "application/json"}' FROM generate_series(1, 1001) g
              RETURNING id, received_at)
            INSERT INTO webhook_routes (event_id, received_at, route, status)
              SELECT id, received_at, 'st', 'dead' FROM ins""")
    conn.close()
    r = api.call("POST", "/api/v1/replays", A, json={"source": "stripe", "dry_run": True})
    assert r.json()["total"] == 1001 and r.json()["confirmation_required"] is True
    r = api.call("POST", "/api/v1/replays", A, json={"source": "stripe"})
    assert r.status_code == 409 and r.json()["error"] == "confirmation required", r.text
    assert r.json()["count"] == 1001 and "1001" in r.json()["detail"]
    bad = ctl(w, "replay", "--source", "stripe", check=False)
    assert bad.returncode == 2 and "confirmation required" in bad.stderr, bad.stderr
    assert rows(pg, "SELECT count(*) FROM replay_jobs")[0][0] == 0
    # A limit is always possible, and confirm takes the whole selection.
    r = api.call("POST", "/api/v1/replays", A, json={"source": "stripe", "limit": 5})
    assert r.status_code == 201 and r.json()["total"] == 5
    j = wait_done(pg, r.json()["id"])
    assert j["sent"] == 5
    wait_until(lambda: len(sink.received("/st")) == 5, 20, what="five delivered")
    r = api.call("POST", "/api/v1/replays", A,
                 json={"source": "stripe", "confirm": True, "rate": 1})
    assert r.status_code == 201 and r.json()["total"] == 1001
    r = api.call("POST", f"/api/v1/replays/{r.json()['id']}/cancel", A)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert w.stop() == 0


def test_pacing_breaker_cancel_and_resume(redis_server, pg_migrated, sink, workers, tmp_path):
    pg = pg_migrated
    w, api = start(redis_server, pg, sink, workers, tmp_path)
    sink.set("/st", "400")
    paced = push(redis_server, "stripe", 50)
    wait_until(lambda: settled(pg, paced, "dead"), 30, what="50 dead")
    sink.set("/st", "200")

    # Pacing: 50 at 25/s take at least 49/25 s between the first and the last delivery.
    t0 = time.time()
    r = api.call("POST", "/api/v1/replays", A, json={"source": "stripe", "status": "dead",
                                                     "rate": 25})
    jid = r.json()["id"]
    j = wait_done(pg, jid)
    assert j["sent"] == 50
    wait_until(lambda: len(count_by_id(sink, "/st", t0)) == 50, 20, what="50 delivered")
    times = sorted(x.at for x in sink.received("/st") if x.at >= t0)
    span = times[-1] - times[0]
    assert span >= 49 / 25 * 0.85, span
    assert span < 49 / 25 * 3, span  # and it is not far slower than asked
    assert count_by_id(sink, "/st", t0) == {i: 1 for i in paced}

    # An open breaker: nothing is sent before it may half-open.
    sink.set("/st", "400")
    held = push(redis_server, "stripe", 3)
    wait_until(lambda: settled(pg, held, "dead"), 30, what="3 dead")
    sink.set("/st", "200")
    rc = redis_server.client()
    now_ms = int(rc.time()[0] * 1000 + rc.time()[1] / 1000)
    until = now_ms + 2000
    rc.hset(f"hookq:breaker:http://127.0.0.1:{sink.port}",
            mapping={"state": "open", "open_until": str(until), "fails": "", "successes": "0",
                     "probe_until": "0", "changed_at": str(now_ms)})
    t1 = time.time()
    r = api.call("POST", "/api/v1/replays", A, json={"request_ids": held, "rate": 100})
    wait_done(pg, r.json()["id"])
    wait_until(lambda: len(count_by_id(sink, "/st", t1)) == 3, 20, what="held delivered")
    first = min(x.at for x in sink.received("/st") if x.at >= t1)
    assert first * 1000 >= until - 50, (first * 1000, until)

    # Cancel, then resume: every webhook delivered exactly once in the end.
    sink.set("/st", "400")
    slow = push(redis_server, "stripe", 30)
    wait_until(lambda: settled(pg, slow, "dead"), 30, what="30 dead")
    sink.set("/st", "200")
    t2 = time.time()
    r = api.call("POST", "/api/v1/replays", A, json={"request_ids": slow, "rate": 5})
    jid = r.json()["id"]
    wait_until(lambda: job(pg, jid)["sent"] >= 3, 20, what="some sent")
    r = api.call("POST", f"/api/v1/replays/{jid}/cancel", A)
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    # The runner lets go of the job once it notices.
    wait_until(lambda: rows(pg, "SELECT lease_expires IS NULL FROM replay_jobs WHERE id = %s",
                            jid)[0][0], 10, what="lease released")
    n = len(count_by_id(sink, "/st", t2))
    assert n < 30
    assert api.call("POST", f"/api/v1/replays/{jid}/cancel", A).status_code == 409
    r = api.call("POST", f"/api/v1/replays/{jid}/resume", A)
    assert r.status_code == 200 and r.json()["state"] == "pending", r.text
    j = wait_done(pg, jid, 30)
    assert (j["sent"], j["skipped"], j["failed"]) == (30, 0, 0), j
    wait_until(lambda: len(count_by_id(sink, "/st", t2)) == 30, 20, what="30 delivered")
    assert count_by_id(sink, "/st", t2) == {i: 1 for i in slow}
    assert api.call("POST", f"/api/v1/replays/{jid}/resume", A).status_code == 409
    assert [x[1] for x in audit(pg, "replay.cancel")] == [str(jid)]
    assert [x[1] for x in audit(pg, "replay.resume")] == [str(jid)]
    assert w.stop() == 0


def replay_dead_on_a(redis_server, pg, sink, workers, n):
    """n webhooks dead on worker B (stopped then), and a replay of them started on worker A, which
    consumes no queue of these sources: what it enqueues waits for B, so killing A loses no
    delivery of its own (the delivery pipeline has its own at-least-once tests)."""
    b = workers(config_text(redis_server, pg, routes(sink), worker_id="wb",
                            worker_extra="max_connections_per_host = 100"), name="b")
    sink.set("/app", "400")
    ids = push(redis_server, "github", n)
    wait_until(lambda: settled(pg, ids, "dead"), 30, what=f"{n} dead")
    sink.set("/app", "200")
    assert b.stop() == 0
    a = workers(config_text(redis_server, pg, routes(sink), worker_id="wa",
                            worker_extra='queues = ["elsewhere"]'), name="a")
    t0 = time.time()  # the replay's deliveries reach the sink after this
    jid = json.loads(ctl(a, "replay", "--source", "github", "--status", "dead", "--rate", "20",
                         "--detach", "--json").stdout)["id"]
    return a, b, jid, ids, t0


def test_resume_after_kill9(redis_server, pg_migrated, sink, workers, tmp_path):
    """The worker running the job is killed -9; another worker takes the job over once its lease
    lapses and finishes it from the cursor: each webhook reaches the dead route exactly once."""
    pg = pg_migrated
    a, b, jid, ids, t0 = replay_dead_on_a(redis_server, pg, sink, workers, 60)
    wait_until(lambda: job(pg, jid)["sent"] >= 15, 20, what="A sending")
    assert job(pg, jid)["lease_owner"] == "wa"
    a.kill9()
    before = redis_server.client().llen("hookq:{github}:queue")
    assert 15 <= before < 60, before
    # What A enqueued is still being delivered (slowly) when B's runner takes the job over, so
    # those webhooks still read as dead: only the job's record of its pushes (push-once) keeps
    # B from enqueueing them a second time.
    sink.script("/app", ["sleep:6000"] * 60)
    b.start()
    final = wait_done(pg, jid, 40)
    assert final["lease_owner"] is None
    assert final["sent"] + final["skipped"] + final["failed"] == 60, final
    assert b.find("replay: running"), "B took the job over"
    wait_until(lambda: len(count_by_id(sink, "/app", t0)) == 60, 30, what="60 delivered")
    assert count_by_id(sink, "/app", t0) == {i: 1 for i in ids}
    assert count_by_id(sink, "/app2", t0) == {}
    assert b.stop() == 0


def test_copies_delivered_before_the_takeover_are_requeued(redis_server, pg_migrated, sink,
                                                           workers, tmp_path):
    """A is killed -9 mid-replay before it writes what it pushed; B delivers those copies before
    its runner takes the job over (A's lease is 5 s). Their dead letters must still read as
    requeued: B finds them in the job's record of pushes, though they no longer match."""
    pg = pg_migrated
    a, b, jid, _, _ = replay_dead_on_a(redis_server, pg, sink, workers, 40)
    wait_until(lambda: redis_server.client().llen("hookq:{github}:queue") >= 10, 20,
               what="A pushing")
    a.kill9()
    b.start()
    final = wait_done(pg, jid, 40)
    assert final["sent"] + final["skipped"] + final["failed"] == 40, final
    wait_until(lambda: rows(pg, "SELECT count(*) FILTER (WHERE requeued_at IS NULL) FROM "
                                "dead_letters")[0][0] == 0, 10, what="every dead letter requeued")
    assert b.stop() == 0


def test_dashboard_replay(redis_server, pg_migrated, sink, workers, tmp_path):
    """The event search's "Replay these": preview (nothing changed), confirm, then the Replays
    view shows the job's progress; a slow one is cancelled from there. Text only, no errors."""
    from test_admin_ui import Browser
    pg = pg_migrated
    w, api = start(redis_server, pg, sink, workers, tmp_path)
    sink.set("/app", "400")
    ids = push(redis_server, "github", 4, "<b>push</b>")
    wait_until(lambda: settled(pg, ids, "dead"), 20, what="dead")
    sink.set("/app", "200")
    t0 = time.time()
    b = Browser()
    try:
        b.goto(api.base + "/ui/")
        b.login(A)
        b.wait("!document.getElementById('nav-events').hidden", what="events tab")
        b.js("location.hash = 'events'")
        b.wait("!document.getElementById('view-events').hidden")
        b.js("document.getElementById('ev-source').value = 'github';"
             "document.getElementById('ev-status').value = 'dead';"
             "document.getElementById('rp-these').click()")
        b.wait("/4 to send/.test(document.getElementById('rp-preview').innerText)",
               what="the preview")
        assert "app" in b.text("#rp-preview") and "<b>push</b>" not in b.text("#rp-preview")
        assert rows(pg, "SELECT count(*) FROM replay_jobs")[0][0] == 0  # a preview changes nothing
        b.js("[...document.querySelectorAll('#rp-preview button')].pop().click()")
        b.wait("document.getElementById('confirm').open", what="the confirmation")
        b.js("document.getElementById('confirm-ok').click()")
        b.wait("location.hash === '#replays' && !document.getElementById('view-replays').hidden",
               what="the replays view")
        b.wait("/done/.test(document.getElementById('rp-table').innerText)", 20,
               what="the job done in the list")
        assert "100%" in b.text("#rp-table")
        wait_until(lambda: len(count_by_id(sink, "/app", t0)) == 4, 20, what="replayed")
        assert count_by_id(sink, "/app2", t0) == {}
        # A slow job, cancelled from the list.
        slow = api.call("POST", "/api/v1/replays", A,
                        json={"source": "github", "routes": "all", "rate": 0.2}).json()
        b.wait(f"[...document.querySelectorAll('#rp-table tbody tr')].some(r => "
               f"r.cells[0].innerText === '{slow['id']}' && r.querySelector('button'))", 10,
               what="a cancel button")
        b.js(f"[...document.querySelectorAll('#rp-table tbody tr')].find(r => "
             f"r.cells[0].innerText === '{slow['id']}').querySelector('button').click()")
        b.wait("document.getElementById('confirm').open")
        b.js("document.getElementById('confirm-ok').click()")
        wait_until(lambda: job(pg, slow["id"])["state"] == "cancelled", 10, what="cancelled")
        assert [x[0] for x in audit(pg, "replay.cancel")] == ["ops-admin"]
        assert b.errors() == []
    finally:
        b.close()
    assert w.stop() == 0


def pending_markers(redis_server, queue):
    return sorted(redis_server.client().scan_iter(f"hookq:{{{queue}}}:replay_pending:*"))


def test_overlapping_replays_send_once(redis_server, pg_migrated, sink, workers, tmp_path):
    """Two jobs whose selections overlap: a webhook already pushed by one and not yet decided is
    not pushed by the other, which counts it as skipped_pending; the same selection asked again
    while its job runs is refused (409, naming the job, audited). Once the replayed deliveries
    are decided, the same selection is pushed again."""
    pg = pg_migrated
    b_cfg = config_text(redis_server, pg, routes(sink), worker_id="wb")
    b = workers(b_cfg, name="b")
    sink.set("/app", "400")
    ids = push(redis_server, "github", 6)
    wait_until(lambda: settled(pg, ids, "dead"), 30, what="6 dead")
    assert b.stop() == 0
    # Worker A consumes no queue of these sources: what its runner pushes stays in the queue,
    # pushed and undecided, for as long as the test needs.
    a, api = start(redis_server, pg, sink, workers, tmp_path, name="a", worker_id="wa",
                   extra_worker='queues = ["elsewhere"]')
    rc = redis_server.client()
    t0 = time.time()

    sel = {"source": "github", "status": "dead"}
    r = api.call("POST", "/api/v1/replays", A, json={**sel, "rate": 1})
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    # The same selection again (at another pace) while the first job has not finished: refused,
    # by the API and by hookqctl alike, naming the job; nothing created.
    r = api.call("POST", "/api/v1/replays", A, json={**sel, "rate": 50})
    base.assert_json_error(r, 409, f"replay {first} ")
    assert job(pg, first)["state"] in ("pending", "running")  # it was refused while running
    bad = ctl(a, "replay", "--source", "github", "--status", "dead", check=False)
    assert bad.returncode == 2 and f"replay {first} " in bad.stderr, bad.stderr
    refused = audit(pg, "replay.refused")
    assert [x[1] for x in refused] == [str(first)] * 2, refused
    assert refused[0][2]["overlaps"] == first and refused[0][2]["selection"]["source"] == "github"
    assert refused[0][0] == "ops-admin" and refused[1][2]["via"] == "hookqctl"
    assert rows(pg, "SELECT count(*) FROM replay_jobs")[0][0] == 1

    # An overlapping selection that is not the same one (by id) is accepted; its runner meets
    # every webhook with the first job's copy still pending.
    r = api.call("POST", "/api/v1/replays", A, json={"request_ids": ids, "rate": 100})
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    j1 = wait_done(pg, first, 30)
    assert (j1["sent"], j1["skipped"], j1["failed"]) == (6, 0, 0), j1
    j2 = wait_done(pg, second, 30)
    assert (j2["sent"], j2["skipped"], j2["failed"]) == (0, 6, 0), j2
    shown = api.get(f"/api/v1/replays/{second}", A).json()
    assert shown["skipped_pending"] == 6 and shown["progress"] == 1.0, shown
    assert api.get(f"/api/v1/replays/{first}", A).json()["skipped_pending"] == 0
    assert "6 skipped as pending in another replay" in ctl(a, "replay", "show",
                                                           str(second)).stdout
    from test_admin_ui import Browser
    br = Browser()
    try:
        br.goto(api.base + "/ui/")
        br.login(A)
        br.wait("!document.getElementById('nav-events').hidden", what="the dashboard")
        br.js("location.hash = 'replays'")
        br.wait("!document.getElementById('view-replays').hidden", what="the replays view")
        br.wait(f"[...document.querySelectorAll('#rp-table tbody tr')].some(r => "
                f"r.cells[0].innerText === '{second}' && "
                f"/6 \\(6 pending in another replay\\)/.test(r.innerText))", 10,
                what="the second job's skipped_pending in the Replays view")
        assert br.errors() == []
    finally:
        br.close()
    # One copy per webhook in the queue, each marked as the first job's.
    assert rc.llen("hookq:{github}:queue") == 6
    markers = pending_markers(redis_server, "github")
    assert len(markers) == 6 and {rc.get(k) for k in markers} == {str(first).encode()}, markers

    # A worker consuming github delivers them (still failing: dead again): each webhook reaches
    # the route exactly once, and the acks of those final outcomes clear the markers.
    b.start()
    wait_until(lambda: len(count_by_id(sink, "/app", t0)) == 6 and
               pending_markers(redis_server, "github") == [], 30,
               what="the replayed copies decided and their markers cleared")
    wait_until(lambda: settled(pg, ids, "dead"), 20, what="dead again")
    assert count_by_id(sink, "/app", t0) == {i: 1 for i in ids}

    # Decided: the same selection is pushed again, not held off by the first job's markers.
    sink.set("/app", "200")
    j3 = json.loads(ctl(a, "replay", "--source", "github", "--status", "dead", "--json").stdout)
    assert (j3["sent"], j3["skipped"], j3["skipped_pending"]) == (6, 0, 0), j3
    wait_until(lambda: settled(pg, ids, "delivered"), 30, what="delivered")
    assert count_by_id(sink, "/app", t0) == {i: 2 for i in ids}
    assert count_by_id(sink, "/app2", t0) == {}
    wait_until(lambda: pending_markers(redis_server, "github") == [], 10, what="markers cleared")
    assert a.stop() == 0 and b.stop() == 0


def test_replayed_copy_pending_while_it_retries(redis_server, pg_migrated, sink, workers,
                                                tmp_path):
    """A replayed copy that failed and waits for its retry has not been decided: another job
    does not push it; once the retry succeeds, its marker is gone."""
    pg = pg_migrated
    w, api = start(redis_server, pg, sink, workers, tmp_path,
                   retry='initial = "60s"\nmax_delay = "60s"\njitter = false')
    sink.set("/app", "400")
    ids = push(redis_server, "github", 3)
    wait_until(lambda: settled(pg, ids, "dead"), 20, what="3 dead")
    sink.set("/app", "500")
    t0 = time.time()
    rc = redis_server.client()
    j1 = json.loads(ctl(w, "replay", "--source", "github", "--status", "dead", "--json").stdout)
    assert j1["sent"] == 3, j1
    # Each copy failed once, was recorded as retrying and acked into the retry set (a minute
    # away): the ack of an outcome that goes on leaves the marker.
    wait_until(lambda: rc.zcard("hookq:{github}:retry") == 3 and
               rows(pg, "SELECT count(*) FROM webhook_routes WHERE route = 'app' AND "
                    "status = 'retrying'")[0][0] == 3, 20, what="3 copies waiting to retry")
    assert len(pending_markers(redis_server, "github")) == 3
    # Every route of them, whatever its status, limited to app: all three pending elsewhere.
    args = [x for i in ids for x in ("--id", i)]
    j2 = json.loads(ctl(w, "replay", *args, "--route", "app", "--all-routes", "--json").stdout)
    assert (j2["sent"], j2["skipped"], j2["skipped_pending"]) == (0, 3, 3), j2
    assert rc.llen("hookq:{github}:queue") == 0
    # The retries come due now rather than in a minute, succeed, and clear the markers.
    sink.set("/app", "200")
    for member in rc.zrange("hookq:{github}:retry", 0, -1):
        rc.zadd("hookq:{github}:retry", {member: 0})
    wait_until(lambda: settled(pg, ids, "delivered") and
               pending_markers(redis_server, "github") == [], 20, what="retried and cleared")
    assert count_by_id(sink, "/app", t0) == {i: 2 for i in ids}  # the failure and its retry
    assert w.stop() == 0
