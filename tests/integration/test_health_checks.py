"""Destination health checks against a real worker and Redis: a local application whose /healthz
answers, fails or hangs on demand. The probe's status, response time and consecutive failures land
in the route's Redis hash, in GET /api/v1/destinations/health (== hookqctl health-checks --json)
and in /metrics; it recovers; two workers probe once per interval between them; a hanging health
URL does not hold up deliveries; the probe carries nothing of the route's secret."""

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from test_admin_api import VIEWER, Api, _alive, admin_config
from worker_fixtures import (SECRET, config_text, enqueue, route, rows, wait_until,  # noqa: F401
                             worker_env, pg_migrated, sink, workers)


class HealthApp:
    """GET /healthz answers `mode`: a status ("200", "500") or "hang" (until released)."""

    def __init__(self):
        self.mode = "200"
        self.requests = []  # (time, headers)
        self.lock = threading.Lock()
        self.release = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with app.lock:
                    app.requests.append((time.time(), dict(self.headers.items()), self.path))
                    mode = app.mode
                if mode == "hang":
                    app.release.wait(60)
                    self.close_connection = True
                    return
                self.send_response(int(mode))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.release.set()
        self.server.shutdown()


def hc(redis_server, name):
    return {k.decode(): v.decode()
            for k, v in redis_server.client().hgetall(f"hookq:hc:{{{name}}}").items()}


def ctl(worker, *args):
    return subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                          capture_output=True, text=True, env=worker_env())


def test_status_failures_recovery_api_and_metrics(redis_server, pg_migrated, sink, workers,
                                                  tmp_path):
    app = HealthApp()
    try:
        port = harness.free_port()
        base = f"127.0.0.1:{app.port}/healthz"
        routes = (route("app", "github", sink.url("/app"),
                        f'health_url = "http://probe:pw0rd@{base}?token=abc"\n'
                        'health_interval = "1s"\nhealth_timeout = "1s"\n') +
                  route("steady", "stripe", sink.url("/st"),
                        f'health_url = "http://{base}"\nhealth_interval = "1h"\n') +
                  route("none", "stripe", sink.url("/st")))
        w = workers(admin_config(redis_server, pg_migrated, routes, tmp_path, port))
        api = Api(port)
        wait_until(lambda: _alive(api), 15, what="admin API listening")

        wait_until(lambda: hc(redis_server, "app").get("status") == "ok", 10, what="first probe")
        h = hc(redis_server, "app")
        assert h["http_status"] == "200" and h["consecutive_failures"] == "0", h
        assert float(h["duration_ms"]) > 0 and h["last_error"] == ""
        assert abs(int(h["checked_at_ms"]) / 1000 - time.time()) < 10
        assert h["last_ok_at_ms"] == h["checked_at_ms"]
        # The probe is a plain GET: nothing of the route's secret, no webhook header.
        for _, headers, path in app.requests:
            assert path in ("/healthz?token=abc", "/healthz")
            low = {k.lower(): v for k, v in headers.items()}
            assert not any(k.startswith("webhook-") or k.startswith("x-hookq") for k in low), low
            assert not any(SECRET[6:] in v or SECRET in v for v in headers.values()), headers
            assert low["user-agent"].startswith("hookq-health-check")

        # Failing: counted in a row, the last success kept.
        ok_at = h["last_ok_at_ms"]
        app.mode = "500"
        wait_until(lambda: int(hc(redis_server, "app").get("consecutive_failures", 0)) >= 3, 15,
                   what="three failed probes in a row")
        h = hc(redis_server, "app")
        assert h["status"] == "failing" and h["http_status"] == "500", h
        assert h["last_error"] == "HTTP 500 (expected 200..399)" and h["last_ok_at_ms"] == ok_at

        res = api.get("/api/v1/destinations/health", VIEWER)
        assert res.status_code == 200, res.text
        by = {r["route"]: r for r in res.json()["routes"]}
        assert list(by) == ["app", "steady"]  # routes without a health_url are not listed
        a = by["app"]
        assert a["url"] == f"http://{base}?token=REDACTED", a
        assert "pw0rd" not in res.text and "abc" not in res.text
        assert (a["status"], a["http_status"], a["interval_seconds"]) == ("failing", 500, 1)
        assert a["consecutive_failures"] >= 3 and a["checked_at"].endswith("Z")
        assert a["last_ok_at"].endswith("Z") and a["last_error"].startswith("HTTP 500")
        s = by["steady"]
        assert (s["status"], s["http_status"], s["consecutive_failures"]) == ("ok", 200, 0)
        assert s["interval_seconds"] == 3600 and s["duration_ms"] >= 0

        # hookqctl prints what the API answers (the fast route moves between the two calls).
        r = ctl(w, "health-checks", "--json")
        assert r.returncode == 1, r.stdout + r.stderr  # a check is failing
        c = {x["route"]: x for x in json.loads(r.stdout)["routes"]}
        a2 = {x["route"]: x for x in api.get("/api/v1/destinations/health", VIEWER).json()["routes"]}
        assert c["steady"] == s == a2["steady"]
        moving = ("duration_ms", "checked_at", "consecutive_failures")
        assert {k: v for k, v in c["app"].items() if k not in moving} == \
            {k: v for k, v in a.items() if k not in moving}

        # /metrics, from the admin server's background snapshot.
        def metric(text, name, route):
            for line in text.splitlines():
                if line.startswith(f'{name}{{route="{route}"}} '):
                    return float(line.split()[-1])
            return None

        def scraped():
            t = api.get("/metrics", VIEWER).text
            return t if metric(t, "hookq_destination_health_up", "app") == 0 else None
        wait_until(scraped, 15, what="health gauges in /metrics")
        t = scraped()
        assert metric(t, "hookq_destination_health_consecutive_failures", "app") >= 3
        assert metric(t, "hookq_destination_health_duration_seconds", "app") >= 0
        assert metric(t, "hookq_destination_health_up", "steady") == 1
        assert metric(t, "hookq_destination_health_up", "none") is None
        assert "# TYPE hookq_destination_health_up gauge" in t

        # Recovery: the count starts over.
        app.mode = "200"
        wait_until(lambda: hc(redis_server, "app").get("status") == "ok", 10, what="recovered")
        h = hc(redis_server, "app")
        assert h["consecutive_failures"] == "0" and int(h["last_ok_at_ms"]) > int(ok_at)
        assert ctl(w, "health-checks").returncode == 0
        assert w.stop() == 0
    finally:
        app.close()


def test_two_workers_probe_once_per_interval(redis_server, pg_migrated, sink, workers):
    app = HealthApp()
    try:
        routes = route("app", "github", sink.url("/app"),
                       f'health_url = "http://127.0.0.1:{app.port}/healthz"\n'
                       'health_interval = "1s"\nhealth_timeout = "1s"\n')
        ws = [workers(config_text(redis_server, pg_migrated, routes, worker_id=i), name=i)
              for i in ("w1", "w2")]
        holders = set()

        def enough():
            lease = redis_server.client().get("hookq:hc:{app}:lease")
            if lease:
                holders.add(lease.decode())
            return app.count() >= 6
        wait_until(enough, 20, what="six probes")
        times = sorted(t for t, _, _ in app.requests)
        gaps = [b - a for a, b in zip(times, times[1:])]
        # The lease lasts an interval (on Redis's clock): never two probes within one.
        assert min(gaps) >= 0.8, gaps
        assert holders <= {"w1", "w2"} and holders, holders
        for w in ws:
            assert w.stop() == 0
    finally:
        app.close()


def test_hanging_health_url_does_not_slow_deliveries(redis_server, pg_migrated, sink, workers):
    app = HealthApp()
    app.mode = "hang"
    try:
        routes = route("app", "github", sink.url("/app"),
                       f'health_url = "http://127.0.0.1:{app.port}/healthz"\n'
                       'health_interval = "5s"\nhealth_timeout = "5s"\n')
        w = workers(config_text(redis_server, pg_migrated, routes))
        wait_until(lambda: app.count() >= 1, 10, what="the probe hanging")
        ids = enqueue(redis_server.client(), "github", 20)
        wait_until(lambda: rows(pg_migrated, "SELECT count(*) FROM webhook_events WHERE "
                                "id = ANY(%s::uuid[]) AND status = 'delivered'", ids)[0][0] == 20,
                   10, what="deliveries while the probe hangs")
        # Delivered while the probe was still outstanding: nothing recorded for it yet.
        assert "checked_at_ms" not in hc(redis_server, "app"), hc(redis_server, "app")
        wait_until(lambda: hc(redis_server, "app").get("status") == "failing", 10,
                   what="the probe timing out")
        h = hc(redis_server, "app")
        assert h["last_error"] == "timed out after 5000 ms" and h["http_status"] == "0", h
        assert float(h["duration_ms"]) >= 4900
        app.release.set()
        assert w.stop() == 0
    finally:
        app.close()
