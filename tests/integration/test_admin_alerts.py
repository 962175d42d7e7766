"""The operator side of alerting (issue #7) against a real worker, Redis and PostgreSQL: alerts and
their transitions as the engine leaves them (seeded by SQL here), silences created and expired
through the API, hookqctl and the dashboard, each audited; hookqctl --json printing what the API
answers; the 400s that name what is wrong; viewers refused writes; and a source-limited token
seeing and silencing only what belongs to its sources."""

import json
import os
import subprocess

import pytest

import harness
from test_admin_api import (ADMIN, STRIPE_ONLY, VIEWER, Api, _alive, admin_config,
                            assert_json_error)
from test_admin_ui import Browser, _screenshot_dir
from worker_fixtures import (route, rows, sql, wait_until, worker_env,  # noqa: F401
                             pg_migrated, sink, workers)

# The engine's rows: what GET /api/v1/alerts must show, in its order (firing, pending, resolved;
# then severity), and what it must leave out (resolved three days ago).
ALERTS = [
    # fingerprint, rule, labels, severity, state, value, threshold, summary, runbook, ages (min)
    ("redis_down{}", "redis_down", {}, "P0", "firing", None, None, "Redis unreachable",
     "redis-down", dict(pending=12, firing=10)),
    ("failure_ratio{route=st}", "failure_ratio", {"route": "st"}, "P1", "firing", 0.08, 0.05,
     "route st fails 8% of deliveries", "payment-webhooks-failing", dict(pending=7, firing=5)),
    ("queue_age{queue=github}", "queue_age", {"queue": "github"}, "P2", "pending", 412.5, 300,
     "oldest webhook in github waits 412 s", "queue-overload", dict(pending=1)),
    ("dead_letters{source=stripe}", "dead_letters", {"source": "stripe"}, "P1", "resolved", 0, 0,
     "no new dead letters", "dead-letters-growing", dict(pending=200, firing=190, resolved=120)),
    ("breaker_open{route=app}", "breaker_open", {"route": "app"}, "P2", "resolved", 0, 0,
     "closed", "destination-down", dict(pending=5000, firing=4990, resolved=4320)),
]
SHOWN = ["redis_down{}", "failure_ratio{route=st}", "queue_age{queue=github}",
         "dead_letters{source=stripe}"]
STRIPE_SEES = ["failure_ratio{route=st}", "dead_letters{source=stripe}"]


def seed(pg):
    for fp, rule, labels, sev, state, value, thr, summary, runbook, ages in ALERTS:
        ts = {k: f"now() - interval '{v} minutes'" for k, v in ages.items()}
        rows(pg, "INSERT INTO alerts (fingerprint, rule, labels, severity, state, value, threshold,"
                 " summary, runbook, pending_since, firing_since, resolved_at, updated_at) "
                 "VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, "
                 f"{ts.get('pending', 'NULL')}, {ts.get('firing', 'NULL')}, "
                 f"{ts.get('resolved', 'NULL')}, now()) RETURNING 1",
             fp, rule, json.dumps(labels), sev, state, value, thr, summary, runbook)
        # The transitions that led there, oldest first.
        for st in ("pending", "firing", "resolved"):
            if st in ages:
                rows(pg, "INSERT INTO alert_events (at, fingerprint, rule, labels, severity, "
                         "state, value, threshold, notified) VALUES (now() - %s * interval "
                         "'1 minute', %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb) RETURNING 1",
                     ages[st], fp, rule, json.dumps(labels), sev, st, value, thr,
                     json.dumps({"slack": "sent"} if st != "pending" else {}))


def start(redis_server, pg, sink, workers, tmp_path):
    port = harness.free_port()
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    w = workers(admin_config(redis_server, pg, routes, tmp_path, port))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    seed(pg)
    return w, api


def ctl(w, *args, user="carol", rc=0):
    env = worker_env()
    env.pop("SUDO_USER", None)
    env["USER"] = user
    r = subprocess.run([harness.CTL_PATH, "--config", w.config_path, *args], capture_output=True,
                       text=True, env=env)
    assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
    return r


def ctl_json(w, *args):
    return json.loads(ctl(w, *args, "--json").stdout)


def audit(pg):
    return rows(pg, "SELECT actor, action, target, details, remote_addr FROM audit_log ORDER BY id")


def silenced_by(api, token):
    return {a["fingerprint"]: a["silenced_by"]
            for a in api.get("/api/v1/alerts", token).json()["alerts"]}


def post_silence(api, token, body, **kw):
    return api.call("POST", "/api/v1/silences", token, json=body, **kw)


def test_alerts_silences_api_cli_and_audit(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    r = api.get("/api/v1/alerts", VIEWER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["fingerprint"] for a in body["alerts"]] == SHOWN
    assert body["evaluator"] == {"leader": None}  # no engine holds the lease
    redis_server.client().set("hookq:alerts:lease", "w-alerts-1")
    body = api.get("/api/v1/alerts", VIEWER).json()
    assert body["evaluator"] == {"leader": "w-alerts-1"}
    fr = body["alerts"][1]
    assert fr["labels"] == {"route": "st"} and fr["severity"] == "P1" and fr["state"] == "firing"
    assert fr["value"] == 0.08 and fr["threshold"] == 0.05
    assert fr["runbook"] == "payment-webhooks-failing" and fr["silenced_by"] == []
    assert fr["firing_since"].endswith("Z") and fr["resolved_at"] is None
    assert body["alerts"][0]["value"] is None
    # hookqctl --json is the API's answer, key for key.
    assert ctl_json(w, "alerts") == body
    human = ctl(w, "alerts").stdout
    assert "STATE" in human and "failure_ratio{route=st}" in human and "w-alerts-1" in human
    for state, want in (("active", SHOWN[:3]), ("firing", SHOWN[:2]),
                        ("pending", SHOWN[2:3]),
                        ("resolved", ["dead_letters{source=stripe}", "breaker_open{route=app}"])):
        got = api.get(f"/api/v1/alerts?state={state}", VIEWER).json()
        assert [a["fingerprint"] for a in got["alerts"]] == want, state
        assert ctl_json(w, "alerts", "--state", state) == got
    assert_json_error(api.get("/api/v1/alerts?state=open", VIEWER), 400, "state", "active")
    assert_json_error(api.get("/api/v1/alerts?x=1", VIEWER), 400, "unknown parameter 'x'")

    # Transitions, newest first, by pages.
    all_ids = [i for (i,) in rows(pg_migrated,
                                     "SELECT id FROM alert_events ORDER BY at DESC, id DESC")]
    page = api.get("/api/v1/alerts/events?limit=3", VIEWER).json()
    assert ctl_json(w, "alerts", "events", "--limit", "3") == page
    seen = [e["id"] for e in page["events"]]
    while page["next_cursor"]:
        cur = page["next_cursor"]
        page = api.get(f"/api/v1/alerts/events?limit=3&cursor={cur}", VIEWER).json()
        assert ctl_json(w, "alerts", "events", "--limit", "3", "--cursor", cur) == page
        seen += [e["id"] for e in page["events"]]
    assert seen == all_ids and len(seen) == 11
    fp = api.get("/api/v1/alerts/events?fingerprint=failure_ratio{route=st}", VIEWER).json()
    assert [e["state"] for e in fp["events"]] == ["firing", "pending"]
    assert fp["events"][0]["notified"] == {"slack": "sent"} and fp["next_cursor"] is None
    assert_json_error(api.get("/api/v1/alerts/events?cursor=abc", VIEWER), 400, "cursor")
    assert_json_error(api.get("/api/v1/alerts/events?limit=0", VIEWER), 400, "limit")

    # A silence from the API: 201, in force, muting the alert it matches and no other; audited.
    r = post_silence(api, ADMIN, {"matchers": {"rule": "failure_ratio", "route": "st"},
                                  "duration": "2h", "comment": "deploying the fix"},
                     headers={"User-Agent": "ops-script/1"})
    assert r.status_code == 201, r.text
    s1 = r.json()
    assert s1["matchers"] == {"rule": "failure_ratio", "route": "st"} and s1["active"] is True
    assert s1["created_by"] == "ops-admin" and s1["expired_at"] is None
    assert s1["comment"] == "deploying the fix"
    span = rows(pg_migrated, "SELECT extract(epoch FROM ends_at - starts_at) FROM alert_silences "
                             "WHERE id = %s", s1["id"])[0][0]
    assert float(span) == 7200
    by = silenced_by(api, VIEWER)
    assert by == {"redis_down{}": [], "failure_ratio{route=st}": [s1["id"]],
                  "queue_age{queue=github}": [], "dead_letters{source=stripe}": []}
    [(actor, action, target, details, addr)] = audit(pg_migrated)
    assert (actor, action, target, addr) == ("ops-admin", "silence.create", str(s1["id"]),
                                             "127.0.0.1")
    assert details["matchers"] == s1["matchers"] and details["comment"] == "deploying the fix"
    assert details["via"] == "api" and details["user_agent"] == "ops-script/1"

    # And one from hookqctl, by label only (every rule of queue github), as the operator.
    s2 = ctl_json(w, "silence", "add", "--match", "queue=github", "--for", "30m", "--comment",
                  "github maintenance")
    assert s2["matchers"] == {"queue": "github"} and s2["created_by"] == "carol"
    actor, action, target, details, addr = audit(pg_migrated)[-1]
    assert (actor, action, target, addr) == ("carol", "silence.create", str(s2["id"]), None)
    assert details["via"] == "hookqctl"
    listed = api.get("/api/v1/silences", VIEWER).json()
    assert [s["id"] for s in listed["silences"]] == [s2["id"], s1["id"]]
    assert ctl_json(w, "silence", "list") == listed
    assert "github maintenance" in ctl(w, "silence", "list").stdout
    by = silenced_by(api, VIEWER)
    assert by["queue_age{queue=github}"] == [s2["id"]]

    # Bad input: 400, naming what is wrong; nothing written.
    n_audit = len(audit(pg_migrated))
    for body, words in (
            ({"matchers": {"rule": "breaker_opened"}, "duration": "1h", "comment": "x"},
             ("unknown rule name", "breaker_opened", "breaker_open")),
            ({"matchers": {}, "duration": "30s", "comment": "x"}, ("duration", "1m", "30d")),
            ({"matchers": {}, "duration": "31d", "comment": "x"}, ("duration", "30d")),
            ({"matchers": {}, "duration": "soon", "comment": "x"}, ("duration",)),
            ({"matchers": {}, "duration": "1h"}, ("comment is required",)),
            ({"matchers": {}, "duration": "1h", "comment": "  "}, ("comment is required",)),
            ({"matchers": ["rule=x"], "duration": "1h", "comment": "x"},
             ("matchers must be an object of strings",)),
            ({"matchers": {"route": 5}, "duration": "1h", "comment": "x"},
             ("object of strings", "route")),
            ({"duration": "1h", "comment": "x"}, ("matchers is required",)),
            ({"matchers": {}, "ends_at": "2020-01-01T00:00:00Z", "comment": "x"},
             ("ends_at", "in the past")),
            ({"matchers": {}, "ends_at": "tomorrow", "comment": "x"}, ("ends_at", "RFC 3339")),
            ({"matchers": {}, "duration": "1h", "ends_at": "2099-01-01T00:00:00Z",
              "comment": "x"}, ("not both",)),
            ({"matchers": {}, "comment": "x"}, ("not neither",)),
            ({"matchers": {}, "duration": "1h", "comment": "x", "by": "me"},
             ("unknown field 'by'",))):
        assert_json_error(post_silence(api, ADMIN, body), 400, *words)
    assert_json_error(api.call("POST", "/api/v1/silences", ADMIN, data="{",
                               headers={"Content-Type": "application/json"}), 400, "not valid JSON")
    assert_json_error(api.call("POST", "/api/v1/silences", ADMIN, data="matchers=x"), 415)
    assert len(audit(pg_migrated)) == n_audit
    r = ctl(w, "silence", "add", "--match", "rule=nope", "--for", "1h", "--comment", "x", rc=2)
    assert "unknown rule name" in r.stderr
    r = ctl(w, "silence", "add", "--match", "route", "--for", "1h", "--comment", "x", rc=2)
    assert "key=value" in r.stderr

    # A viewer reads, never writes.
    assert_json_error(post_silence(api, VIEWER, {"matchers": {}, "duration": "1h",
                                                 "comment": "x"}), 403, "viewer")
    assert_json_error(api.call("DELETE", f"/api/v1/silences/{s1['id']}", VIEWER), 403, "viewer")
    assert len(audit(pg_migrated)) == n_audit

    # Expired from the API, then from hookqctl: gone from the default list, kept with --all.
    r = api.call("DELETE", f"/api/v1/silences/{s1['id']}", ADMIN)
    assert r.status_code == 200 and r.json() == {"expired": s1["id"]}
    actor, action, target, details, _ = audit(pg_migrated)[-1]
    assert (actor, action, target) == ("ops-admin", "silence.expire", str(s1["id"]))
    assert_json_error(api.call("DELETE", f"/api/v1/silences/{s1['id']}", ADMIN), 409,
                      "already expired")
    assert_json_error(api.call("DELETE", "/api/v1/silences/999999", ADMIN), 404, "no silence")
    assert_json_error(api.call("DELETE", "/api/v1/silences/abc", ADMIN), 400, "numbers")
    assert "expired" in ctl(w, "silence", "expire", str(s2["id"])).stdout
    actor, action, target, details, _ = audit(pg_migrated)[-1]
    assert (actor, action, target, details["via"]) == ("carol", "silence.expire", str(s2["id"]),
                                                       "hookqctl")
    assert "already expired" in ctl(w, "silence", "expire", str(s2["id"]), rc=1).stderr
    assert api.get("/api/v1/silences", VIEWER).json() == {"silences": []}
    everything = api.get("/api/v1/silences?all=1", VIEWER).json()
    assert [(s["id"], s["active"], s["expired_at"] is not None)
            for s in everything["silences"]] == [(s2["id"], False, True), (s1["id"], False, True)]
    assert ctl_json(w, "silence", "list", "--all") == everything
    assert all(a["silenced_by"] == [] for a in api.get("/api/v1/alerts", VIEWER).json()["alerts"])
    assert w.stop() == 0


def test_source_limited_token(redis_server, pg_migrated, sink, workers, tmp_path):
    """stripe-team (sources = ["stripe"]; route st serves stripe) sees the alerts of its source,
    queue and route only, and silences only what it pins to them."""
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    got = api.get("/api/v1/alerts", STRIPE_ONLY).json()
    assert [a["fingerprint"] for a in got["alerts"]] == STRIPE_SEES
    # Paged in SQL, so every page of a limited token is full but the last.
    ids, cursor, pages = [], "", 0
    while cursor is not None:
        ev = api.get(f"/api/v1/alerts/events?limit=2&cursor={cursor}", STRIPE_ONLY).json()
        assert len(ev["events"]) == 2 or ev["next_cursor"] is None
        ids += [e["id"] for e in ev["events"]]
        cursor, pages = ev["next_cursor"], pages + 1
    assert pages == 3
    assert ids == [i for (i,) in rows(
        pg_migrated,
        "SELECT id FROM alert_events WHERE fingerprint IN %s ORDER BY at DESC, id DESC",
        tuple(STRIPE_SEES))]

    # The admin silences Redis for everyone; the stripe team cannot see, nor expire, that one.
    glob = post_silence(api, ADMIN, {"matchers": {"rule": "redis_down"}, "duration": "1h",
                                     "comment": "failover"}).json()
    for m in ({"rule": "redis_down"}, {}, {"route": "app"}, {"source": "github"},
              {"route": "st", "queue": "github"}, {"destination": "http://127.0.0.1:1"}):
        assert_json_error(post_silence(api, STRIPE_ONLY, {"matchers": m, "duration": "1h",
                                                          "comment": "x"}), 400, "pin"), m
    mine = []
    for m in ({"rule": "failure_ratio", "route": "st"}, {"source": "stripe"}, {"queue": "stripe"}):
        r = post_silence(api, STRIPE_ONLY, {"matchers": m, "duration": "1h", "comment": "ours"})
        assert r.status_code == 201, (m, r.text)
        mine.append(r.json()["id"])
    assert [s["id"] for s in api.get("/api/v1/silences", STRIPE_ONLY).json()["silences"]] == \
        mine[::-1]
    assert [s["id"] for s in api.get("/api/v1/silences", ADMIN).json()["silences"]] == \
        mine[::-1] + [glob["id"]]
    assert_json_error(api.call("DELETE", f"/api/v1/silences/{glob['id']}", STRIPE_ONLY), 404)
    assert api.call("DELETE", f"/api/v1/silences/{mine[0]}", STRIPE_ONLY).status_code == 200
    actor, action, target, _, _ = audit(pg_migrated)[-1]
    assert (actor, action, target) == ("stripe-team", "silence.expire", str(mine[0]))
    # What it sees of silenced_by: the silences muting its alerts.
    assert silenced_by(api, STRIPE_ONLY) == {"failure_ratio{route=st}": [],
                                             "dead_letters{source=stripe}": [mine[1]]}
    assert w.stop() == 0


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def test_alerts_view_in_a_browser(redis_server, pg_migrated, sink, workers, tmp_path, browser):
    """The Alerts view: alerts with severity, state, value against threshold, runbook; a silence
    made from an alert's row (matchers prefilled) is listed and badges the alert; expired through
    the confirm dialog; a hostile summary stays text; a viewer gets no write controls."""
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    hostile = '<img src=x onerror="window.__pwned=1">'
    rows(pg_migrated, "UPDATE alerts SET summary = %s WHERE fingerprint = 'redis_down{}' "
                      "RETURNING 1", hostile)
    b = browser
    b.goto(api.base + "/ui/#alerts")
    b.login(ADMIN)
    row = "document.querySelector('#al-table tr[data-fingerprint=\"failure_ratio{route=st}\"]')"
    b.wait(row, what="the alerts table")
    cells = b.js(f"[...{row}.cells].map(td => td.innerText)")
    assert cells[:8] == ["P1", "firing", "failure_ratio{route=st}",
                         "route st fails 8% of deliveries", "0.08", "0.05", "5m ago",
                         "docs/runbooks.md#payment-webhooks-failing"], cells
    assert cells[8] == ""  # not silenced
    fps = b.js("[...document.querySelectorAll('#al-table tbody tr')]"
               ".map(r => r.dataset.fingerprint)")
    assert fps == SHOWN
    assert b.js("document.querySelectorAll('#al-events tbody tr').length") == 11
    # Newest first, by time (the engine's rows were seeded alert by alert, not in time order).
    assert b.js("document.querySelector('#al-events tbody tr').cells[1].innerText") == \
        "queue_age{queue=github}"
    assert hostile in b.text("#al-table")
    assert b.js("document.querySelectorAll('img').length") == 0
    assert b.js("window.__pwned === undefined")

    # Silence it from its row: the form comes prefilled with its rule and labels.
    b.js(f"{row}.querySelector('button.al-silence').click()")
    b.wait("!document.getElementById('al-form').hidden")
    assert b.js("document.getElementById('al-f-matchers').value") == "rule=failure_ratio\nroute=st"
    b.js("document.getElementById('al-f-duration').value = '4h';"
         "document.getElementById('al-f-comment').value = 'rolling back';"
         "document.getElementById('al-form').requestSubmit()")
    b.wait("/Silence \\d+ created/.test(document.getElementById('al-result').innerText)")
    [(sid, matchers, comment, by, hours)] = rows(
        pg_migrated, "SELECT id, matchers, comment, created_by, "
                     "extract(epoch FROM ends_at - starts_at) / 3600 FROM alert_silences")
    assert (matchers, comment, by, float(hours)) == (
        {"rule": "failure_ratio", "route": "st"}, "rolling back", "ops-admin", 4.0)
    srow = f"document.querySelector('#al-silences tr[data-id=\"{sid}\"]')"
    b.wait(srow, what="the new silence listed")
    assert "route=st" in b.js(f"{srow}.innerText") and "rolling back" in b.js(f"{srow}.innerText")
    b.wait(f"{row}.cells[8].innerText === 'silenced'", what="the silenced badge")
    actor, action, target, details, _ = audit(pg_migrated)[-1]
    assert (actor, action, target, details["via"]) == ("ops-admin", "silence.create", str(sid),
                                                       "api")

    # A bad silence: the API's reason on the page, nothing created.
    b.js("document.getElementById('al-new').click()")
    b.js("document.getElementById('al-f-matchers').value = 'rule=no_such_rule';"
         "document.getElementById('al-f-comment').value = 'x';"
         "document.getElementById('al-form').requestSubmit()")
    b.wait("/unknown rule name/.test(document.getElementById('al-result').innerText)")
    assert rows(pg_migrated, "SELECT count(*) FROM alert_silences") == [(1,)]
    b.js("document.getElementById('al-f-cancel').click()")

    # Expire, confirmed in the page's dialog.
    b.js(f"{srow}.querySelector('button.al-expire').click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-ok').click()")
    b.wait(f"document.getElementById('al-result').innerText === 'Silence {sid} expired.'")
    b.wait(f"!{srow}", what="the expired silence gone from the list")
    b.wait(f"{row}.cells[8].innerText === ''")
    assert audit(pg_migrated)[-1][1] == "silence.expire"
    b.screenshot(os.path.join(_screenshot_dir(), "alerts.png"))

    # A viewer: the same tables, no button to write with.
    b.js("document.getElementById('logout').click()")
    b.login(VIEWER)
    b.wait("document.getElementById('who').innerText === 'viewer token'")
    b.wait(row)
    assert b.js("document.querySelectorAll('#view-alerts button.write:not([hidden])').length") == 0
    assert b.errors() == []
    assert w.stop() == 0


def exercise_for_document(call, pg, admin, viewer):
    """Every alerting endpoint and status, for test_admin_openapi.py's check of real answers
    against the document (`call` validates each)."""
    seed(pg)
    assert [a["fingerprint"] for a in call("get", "/api/v1/alerts", "/api/v1/alerts")["alerts"]] \
        == SHOWN
    call("get", "/api/v1/alerts", "/api/v1/alerts?state=resolved")
    call("get", "/api/v1/alerts", "/api/v1/alerts?state=x", status=400)
    page = call("get", "/api/v1/alerts/events", "/api/v1/alerts/events?limit=2")
    call("get", "/api/v1/alerts/events", f"/api/v1/alerts/events?cursor={page['next_cursor']}")
    call("get", "/api/v1/alerts/events", "/api/v1/alerts/events?cursor=zz", status=400)
    body = {"matchers": {"rule": "queue_age", "queue": "github"}, "duration": "1h",
            "comment": "checking the document"}
    s = call("post", "/api/v1/silences", "/api/v1/silences", admin, status=201, json=body)
    call("post", "/api/v1/silences", "/api/v1/silences", viewer, status=403, json=body)
    call("post", "/api/v1/silences", "/api/v1/silences", admin, status=400,
         json={**body, "duration": "1s"})
    call("post", "/api/v1/silences", "/api/v1/silences", admin, status=415, data="x")
    assert call("get", "/api/v1/silences", "/api/v1/silences")["silences"][0]["active"]
    call("get", "/api/v1/silences", "/api/v1/silences?all=1")
    call("delete", "/api/v1/silences/{id}", f"/api/v1/silences/{s['id']}", viewer, status=403)
    call("delete", "/api/v1/silences/{id}", f"/api/v1/silences/{s['id']}", admin)
    call("delete", "/api/v1/silences/{id}", f"/api/v1/silences/{s['id']}", admin, status=409)
    call("delete", "/api/v1/silences/{id}", "/api/v1/silences/999999", admin, status=404)
    call("delete", "/api/v1/silences/{id}", "/api/v1/silences/x", admin, status=400)
