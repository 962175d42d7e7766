"""SLO status against a real pipeline (worker, Redis, PostgreSQL): a route whose application
answers 500 to every other webhook goes degraded, then unhealthy as its failures pile up, by the
thresholds of [slo] and its per-route and per-source overrides; GET /api/v1/slo ==
hookqctl slo --json; /metrics carries the hookq_slo_status StateSet; GET /api/v1/health judges by
the same thresholds."""

import json
import subprocess
import time

import envelope
import harness
from test_admin_api import STRIPE_ONLY, VIEWER, Api, _alive, admin_config
from test_admin_ui import browser  # noqa: F401
from worker_fixtures import (enqueue, route, rows, wait_until, worker_env,  # noqa: F401
                             pg_migrated, sink, workers)

ONE_TRY = "[routes.retry]\nmax_attempts = 1\n"
SLO = """
[slo]
failures_degraded = 3
failures_unhealthy = 6
[slo.routes.bad]
error_rate_degraded = 0.4
error_rate_unhealthy = 0.9
failures_degraded = 1
failures_unhealthy = 4
[slo.sources.b]
error_rate_degraded = 0.6
error_rate_unhealthy = 0.9
failures_degraded = 10
failures_unhealthy = 20
"""


def finished(pg, ids):
    return rows(pg, "SELECT count(*) FROM webhook_events WHERE id = ANY(%s::uuid[]) AND "
                "status IN ('delivered', 'dead')", ids)[0][0] == len(ids)


def test_slo_transitions_overrides_api_ctl_metrics(redis_server, pg_migrated, sink, workers,
                                                   tmp_path, browser):  # noqa: F811
    port = harness.free_port()
    # The sink answers GET with 501: good's health check fails (shown in the dashboard below).
    routes = (route("good", "stripe", sink.url("/good"),
                    f'health_url = "{sink.url("/healthz")}"\nhealth_interval = "1h"\n') +
              route("bad", "b", sink.url("/bad"), ONE_TRY) +
              route("stk", "stuck", sink.url("/stk")))
    cfg = admin_config(redis_server, pg_migrated, routes, tmp_path, port, extra=SLO)
    # Nobody consumes "stuck": its queue's oldest webhook ages (judged against the lag thresholds).
    cfg = cfg.replace('drain_timeout = "20s"\n',
                      'drain_timeout = "20s"\nqueues = ["stripe", "b"]\n', 1)
    w = workers(cfg)
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    r = redis_server.client()

    def slo():
        res = api.get("/api/v1/slo", VIEWER)
        assert res.status_code == 200, res.text
        body = res.json()
        return body, {x["name"]: x for x in body["routes"]}, {x["name"]: x for x in body["sources"]}

    body, by_route, by_source = slo()
    assert body["thresholds"] == {
        "error_rate_degraded": 0.01, "error_rate_unhealthy": 0.05, "lag_degraded_seconds": 120,
        "lag_unhealthy_seconds": 600, "failures_degraded": 3, "failures_unhealthy": 6,
        "window_seconds": 300}
    assert by_route["good"]["thresholds"] == body["thresholds"]
    assert by_route["bad"]["thresholds"] == dict(
        body["thresholds"], error_rate_degraded=0.4, error_rate_unhealthy=0.9,
        failures_degraded=1, failures_unhealthy=4)
    assert by_source["b"]["thresholds"]["failures_degraded"] == 10
    assert all(x["status"] == "healthy" and x["deliveries"] == 0
               for x in body["routes"] + body["sources"]), body

    _, env = envelope.make("stuck", received_at_us=int((time.time() - 700) * 1_000_000))
    r.lpush("hookq:{stuck}:queue", env)
    stuck = slo()[2]["stuck"]
    assert stuck["status"] == "unhealthy" and stuck["queue_age_seconds"] >= 700, stuck
    assert any(x.startswith("oldest queued webhook waits 7") for x in stuck["reasons"]), stuck

    # One 500 of two: 50% and one failure, degraded for the route (its override), healthy for
    # its source (whose override tolerates up to 60%).
    sink.script("/bad", ["500", "200"])
    ids = enqueue(r, "b", 2)
    good = enqueue(r, "stripe", 3)
    wait_until(lambda: finished(pg_migrated, ids + good), 20, what="first webhooks done")
    wait_until(lambda: slo()[1]["bad"]["deliveries"] == 2, 10, what="rollups")
    _, by_route, by_source = slo()
    bad = by_route["bad"]
    assert bad["status"] == "degraded", bad
    assert (bad["failures"], bad["error_rate"]) == (1, 0.5)
    assert "error rate 50.0% over 5m (1 of 2 attempts failed)" in bad["reasons"], bad
    assert "1 failed attempts over 5m" in bad["reasons"], bad
    assert by_source["b"]["status"] == "healthy", by_source["b"]
    assert by_route["good"]["status"] == "healthy" and by_route["good"]["deliveries"] == 3
    assert by_route["good"]["lag_seconds"] is not None

    # Three more failures: unhealthy by count, while the rate stays under 90%.
    sink.script("/bad", ["500", "200"] * 3)
    ids = enqueue(r, "b", 6)
    wait_until(lambda: finished(pg_migrated, ids), 20, what="more webhooks done")
    wait_until(lambda: slo()[1]["bad"]["deliveries"] == 8, 10, what="rollups")
    body, by_route, by_source = slo()
    bad = by_route["bad"]
    assert bad["status"] == "unhealthy" and bad["failures"] == 4, bad
    assert "4 failed attempts over 5m" in bad["reasons"], bad
    assert by_source["b"]["status"] == "healthy"  # 4 failures, 50%: within its override
    assert by_route["good"]["status"] == "healthy"

    # GET /api/v1/health judges sources by the same [slo] thresholds: with the old constants
    # (unhealthy at 50%) source b would not be healthy.
    h = {x["source"]: x for x in api.get("/api/v1/health", VIEWER).json()["sources"]}
    assert h["b"]["status"] == "healthy" and h["b"]["error_rate_5m"] == 0.5, h["b"]

    # hookqctl slo --json prints what the API answers (exit 1: not all healthy).
    c = subprocess.run([harness.CTL_PATH, "--config", w.config_path, "slo", "--json"],
                       capture_output=True, text=True, env=worker_env())
    assert c.returncode == 1, c.stdout + c.stderr
    printed = json.loads(c.stdout)
    body = slo()[0]
    for doc in (printed, body):
        doc.pop("generated_at")
        for x in doc["sources"] + doc["routes"]:
            x.pop("lag_seconds")  # moves as the window slides (the p95 of what is in it)
            x.pop("queue_age_seconds")
    assert printed == body
    text = subprocess.run([harness.CTL_PATH, "--config", w.config_path, "slo"],
                          capture_output=True, text=True, env=worker_env())
    assert text.returncode == 1 and "4 failed attempts over 5m" in text.stdout, text
    assert [line.split()[:3] for line in text.stdout.splitlines()][1:] == [
        ["source", "b", "healthy"], ["source", "stripe", "healthy"],
        ["source", "stuck", "unhealthy"], ["route", "good", "healthy"],
        ["route", "bad", "unhealthy"], ["route", "stk", "healthy"]], text.stdout

    # /metrics: a StateSet per source and route, from the admin server's background snapshot.
    def state(text, kind, name):
        out = {}
        for line in text.splitlines():
            prefix = f'hookq_slo_status{{kind="{kind}",name="{name}",status="'
            if line.startswith(prefix):
                out[line[len(prefix):].split('"')[0]] = float(line.split()[-1])
        return out

    def scraped():
        t = api.get("/metrics", VIEWER).text
        return t if state(t, "route", "bad").get("unhealthy") == 1 else None
    wait_until(scraped, 15, what="hookq_slo_status in /metrics")
    t = scraped()
    assert state(t, "route", "bad") == {"healthy": 0, "degraded": 0, "unhealthy": 1}
    assert state(t, "route", "good") == {"healthy": 1, "degraded": 0, "unhealthy": 0}
    assert state(t, "source", "b") == {"healthy": 1, "degraded": 0, "unhealthy": 0}
    assert "# TYPE hookq_slo_status gauge" in t

    # The dashboard's view: every source and route with its status, and the health checks.
    b = browser
    b.goto(f"http://127.0.0.1:{port}/ui/")
    b.login(VIEWER)
    b.wait("!document.getElementById('nav').hidden", what="logged in")
    b.js("location.hash = 'slo'")
    b.wait("document.querySelector('#slo-table tr[data-name=bad] .pill') && "
           "document.querySelector('#hc-table tr[data-route=good]')", what="the SLO view")
    assert b.js("document.getElementById('view-overview').hidden") is True
    assert b.js("document.getElementById('view-slo').hidden") is False
    assert b.text("#slo-table tr[data-name=bad] .pill") == "unhealthy"
    assert b.text("#slo-table tr[data-kind=route][data-name=good] .pill") == "healthy"
    assert "4 failed attempts" in b.text("#slo-table tr[data-name=bad]")
    assert b.text("#hc-table tr[data-route=good] .pill") in ("failing", "unknown")
    assert b.js("document.querySelector('#nav a.active').dataset.view") == "slo"
    b.js("location.hash = 'overview'")
    b.wait("!document.getElementById('view-overview').hidden && "
           "document.getElementById('view-slo').hidden", what="back to the overview")
    assert b.errors() == []

    # A token limited to stripe sees stripe and the routes serving it, nothing of b.
    scoped = api.get("/api/v1/slo", STRIPE_ONLY).json()
    assert [x["name"] for x in scoped["sources"]] == ["stripe"]
    assert [x["name"] for x in scoped["routes"]] == ["good"]
    checks = api.get("/api/v1/destinations/health", STRIPE_ONLY).json()
    assert [x["route"] for x in checks["routes"]] == ["good"]
    assert api.get("/api/v1/slo?x=1", VIEWER).status_code == 400
    assert api.get("/api/v1/slo").status_code == 401
    assert w.stop() == 0


def test_bad_slo_config_stops_the_worker(redis_server, pg_migrated, sink, tmp_path):
    cfg = tmp_path / "w.toml"
    cfg.write_text(admin_config(redis_server, pg_migrated, route("good", "stripe", sink.url("/g")),
                                tmp_path, harness.free_port(),
                                extra="[slo.routes.nope]\nfailures_degraded = 1\n"))
    r = subprocess.run([harness.WORKER_PATH, "--config", str(cfg),
                        "--check-config"], capture_output=True, text=True, env=worker_env())
    assert r.returncode == 2
    assert "[slo.routes.nope]: no route 'nope' is configured" in r.stderr, r.stderr
