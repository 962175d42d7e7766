"""Delivery statistics and per-source health (GET /api/v1/stats, /api/v1/health, hookqctl stats and
health) against a real worker, Redis and PostgreSQL: the rollups the recorder writes with each
batch give exact counts, rates and percentiles of known sink delays, agree with delivery_attempts
row for row and bucket for bucket, and a source-limited token sees only its source."""

import json
import subprocess
import time
from datetime import datetime

import envelope
import harness
from test_admin_api import ADMIN, STRIPE_ONLY, VIEWER, Api, _alive, admin_config
from worker_fixtures import (enqueue, route, rows, sql, wait_until, worker_env,  # noqa: F401
                             pg_migrated, sink, workers)

RETRY = '[routes.retry]\nmax_attempts = 3\ninitial = "50ms"\nmax_delay = "200ms"\n'
# Every first attempt starts (and takes its mode from the sink's script) long before any retry.
SLOW_RETRY = ('[routes.retry]\nmax_attempts = 3\ninitial = "1500ms"\nmax_delay = "2s"\n'
              'jitter = false\n')


def ctl(worker, *args, check=True):
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=worker_env())
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def start(redis_server, pg, sink, workers, tmp_path):
    """github -> app (30 ms), stripe -> st (500, 500, a hang past the 1 s timeout, then 100 ms);
    "stuck" is routed but no worker consumes its queue."""
    port = harness.free_port()
    routes = (route("app", "github", sink.url("/app"), RETRY) +
              route("st", "stripe", sink.url("/st"), 'timeout = "1s"\n' + SLOW_RETRY) +
              route("stk", "stuck", sink.url("/stk")))
    cfg = admin_config(redis_server, pg, routes, tmp_path, port)
    cfg = cfg.replace('drain_timeout = "20s"\n',
                      'drain_timeout = "20s"\nqueues = ["github", "stripe"]\n', 1)
    cfg = cfg.replace("[breaker]\n", "[breaker]\nfailure_threshold = 1000\n", 1)
    w = workers(cfg)
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    return w, api


def deliver_known_traffic(redis_server, pg, sink):
    sink.set("/app", "sleep:30")
    sink.set("/st", "sleep:100")
    sink.script("/st", ["500", "500", "hang"])
    r = redis_server.client()
    app_ids = enqueue(r, "github", 10)
    st_ids = enqueue(r, "stripe", 4)
    every = app_ids + st_ids
    wait_until(lambda: rows(pg, "SELECT count(*) FROM webhook_events WHERE id = ANY(%s::uuid[]) "
                            "AND status = 'delivered'", every)[0][0] == len(every),
               40, what="every webhook delivered")
    # 10 + 4 first attempts, 3 retries (two 500s, one timeout).
    wait_until(lambda: rows(pg, "SELECT count(*) FROM delivery_attempts")[0][0] == 17, 10,
               what="17 attempts recorded")


def by_key(body):
    return {g["key"]: g for g in body["groups"]}


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def at(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_stats_counts_rates_percentiles(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    deliver_known_traffic(redis_server, pg_migrated, sink)

    res = api.get("/api/v1/stats", VIEWER)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["window"] == "1h" and body["by"] == "route" and body["step_seconds"] == 60
    assert body["from"].endswith(":00Z") and body["to"].endswith("Z")
    g = by_key(body)
    assert set(g) == {"app", "st"}
    app, st = g["app"], g["st"]
    assert (app["count"], app["delivered"], app["retried"], app["dead"], app["parked"],
            app["timeouts"]) == (10, 10, 0, 0, 0, 0)
    assert (app["success_rate"], app["timeout_rate"], app["error_rate"]) == (1.0, 0.0, 0.0)
    assert (st["count"], st["delivered"], st["retried"], st["dead"], st["timeouts"]) == (7, 4, 3, 0, 1)
    assert abs(st["success_rate"] - 4 / 7) < 1e-9
    assert abs(st["timeout_rate"] - 1 / 7) < 1e-9
    assert abs(st["error_rate"] - 3 / 7) < 1e-9
    # Known delays, read back from log-scale buckets (within 9%), plus HTTP and scheduling slack.
    assert 27 <= app["duration_ms"]["p50"] <= 150, app["duration_ms"]
    assert app["duration_ms"]["p50"] <= app["duration_ms"]["p95"] <= app["duration_ms"]["p99"]
    assert 27 <= app["end_to_end_ms"]["p50"] <= 5000, app["end_to_end_ms"]
    # stripe: 2 fast 500s, 4 x 100 ms, 1 x the 1 s timeout: p50 is a 100 ms one, p95 the timeout.
    assert 90 <= st["duration_ms"]["p50"] <= 300, st["duration_ms"]
    assert 900 <= st["duration_ms"]["p95"] <= 1500, st["duration_ms"]
    assert st["end_to_end_ms"]["p50"] >= 90
    for grp in (app, st):
        assert grp["series"], grp
        assert sum(p["count"] for p in grp["series"]) == grp["count"]
        assert sum(p["delivered"] for p in grp["series"]) == grp["delivered"]
        for p in grp["series"]:
            assert p["failed"] == p["count"] - p["delivered"]
            # As instants, not strings: "...:00Z" sorts after "...:00.5Z" (the bucket of `to`).
            assert p["t"].endswith(":00Z") and at(body["from"]) <= at(p["t"]) <= at(body["to"])
            assert p["p50_ms"] is not None

    # The hour rollups give the same totals for 24 h and 7 d.
    for window in ("24h", "7d"):
        day = api.get(f"/api/v1/stats?window={window}", VIEWER).json()
        assert day["step_seconds"] == 3600
        for k in ("app", "st"):
            assert without(by_key(day)[k], "series") | {"series": None} == \
                without(g[k], "series") | {"series": None}, window
            assert sum(p["count"] for p in by_key(day)[k]["series"]) == g[k]["count"]

    src = by_key(api.get("/api/v1/stats?by=source", VIEWER).json())
    assert {k: v["count"] for k, v in src.items()} == {"github": 10, "stripe": 7}
    only = api.get("/api/v1/stats?route=st", VIEWER).json()
    assert list(by_key(only)) == ["st"]

    # A source-limited token sees its source only, and may not ask for another.
    scoped = api.get("/api/v1/stats", STRIPE_ONLY).json()
    assert list(by_key(scoped)) == ["st"]
    assert list(by_key(api.get("/api/v1/stats?by=source", STRIPE_ONLY).json())) == ["stripe"]
    assert api.get("/api/v1/stats?source=github", STRIPE_ONLY).status_code == 403

    for bad, why in (("window=2h", "window"), ("by=worker", "by"), ("limit=3", "limit")):
        res = api.get(f"/api/v1/stats?{bad}", VIEWER)
        assert res.status_code == 400, bad
        assert why in res.json()["detail"], res.json()
    assert api.get("/api/v1/stats").status_code == 401

    # hookqctl prints the API's JSON ("to" is the moment of each call).
    def same():
        a = api.get("/api/v1/stats?by=source&window=24h", ADMIN).json()
        c = json.loads(ctl(w, "stats", "--by", "source", "--window", "24h", "--json").stdout)
        return without(a, "to") == without(c, "to")
    wait_until(same, 10, what="hookqctl stats --json == API")
    bad = ctl(w, "stats", "--window", "5m", check=False)
    assert bad.returncode != 0 and "window" in bad.stderr
    assert "app" in ctl(w, "stats").stdout
    assert w.stop() == 0


def test_rollups_match_delivery_attempts(redis_server, pg_migrated, sink, workers, tmp_path):
    w, _ = start(redis_server, pg_migrated, sink, workers, tmp_path)
    deliver_known_traffic(redis_server, pg_migrated, sink)
    pg = pg_migrated
    per_route = ("SELECT route, sum(attempts), sum(delivered), sum(retried), sum(dead), "
                 "sum(timeouts), sum(duration_us_sum) FROM {} GROUP BY route ORDER BY route")
    want = rows(pg, "SELECT route, count(*), count(*) FILTER (WHERE outcome = 'delivered'), "
                "count(*) FILTER (WHERE outcome = 'retry'), "
                "count(*) FILTER (WHERE outcome = 'dead'), "
                "count(*) FILTER (WHERE http_status IS NULL AND error LIKE '%%timed out%%'), "
                "sum(round(duration_ms * 1000)) FROM delivery_attempts GROUP BY route "
                "ORDER BY route")
    assert [(r[0],) + tuple(int(x) for x in r[1:6]) for r in want] == \
        [("app", 10, 10, 0, 0, 0), ("st", 7, 4, 3, 0, 1)]
    for table in ("delivery_stats_minute", "delivery_stats_hour"):
        got = rows(pg, per_route.format(table))
        assert [(r[0],) + tuple(int(x) for x in r[1:]) for r in got] == \
            [(r[0],) + tuple(int(x) for x in r[1:]) for r in want], table
        assert {r[0] for r in rows(pg, f"SELECT worker_id FROM {table}")} == {"w1"}
    # The worker's buckets (C++) are the ones SQL's hookq_stats_bucket gives the same rows.
    # (Subscript = bucket + 1, from the array's own lower bound.)
    hist = ("SELECT route, k - 1, sum(h[k])::bigint FROM (SELECT route, {col} AS h FROM {table}) x, "
            "generate_subscripts(h, 1) k WHERE h[k] > 0 GROUP BY 1, 2 ORDER BY 1, 2")
    sql_dur = rows(pg, "SELECT route, hookq_stats_bucket(round(duration_ms * 1000)::bigint), "
                   "count(*) FROM delivery_attempts GROUP BY 1, 2 ORDER BY 1, 2")
    sql_e2e = rows(pg, "SELECT a.route, hookq_stats_bucket(round(extract(epoch FROM "
                   "a.started_at - e.received_at) * 1000000 + a.duration_ms * 1000)::bigint), "
                   "count(*) FROM delivery_attempts a JOIN webhook_events e ON e.id = a.event_id "
                   "WHERE a.outcome = 'delivered' GROUP BY 1, 2 ORDER BY 1, 2")
    for table in ("delivery_stats_minute", "delivery_stats_hour"):
        assert rows(pg, hist.format(table=table, col="duration_hist")) == sql_dur
        assert rows(pg, hist.format(table=table, col="e2e_hist")) == sql_e2e
    # Compaction (hourly, of the settled hours) merges the workers' hour rows, totals unchanged.
    before = rows(pg, per_route.format("delivery_stats_hour"))
    sql(pg, "SELECT hookq_stats_compact(now() + interval '1 hour')")
    assert rows(pg, per_route.format("delivery_stats_hour")) == before
    assert {r[0] for r in rows(pg, "SELECT worker_id FROM delivery_stats_hour")} == {"*"}
    assert rows(pg, hist.format(table="delivery_stats_hour", col="duration_hist")) == sql_dur
    assert rows(pg, hist.format(table="delivery_stats_hour", col="e2e_hist")) == sql_e2e
    # And the migration's backfill computes the same rows from the attempts.
    before = rows(pg, "SELECT * FROM delivery_stats_minute ORDER BY 1, 2, 3, 4")
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM delivery_stats_minute")
            cur.execute("SELECT hookq_stats_backfill('minute', now() - interval '1 hour')")
            cur.execute("SELECT * FROM delivery_stats_minute ORDER BY 1, 2, 3, 4")
            assert cur.fetchall() == before
            conn.rollback()
    finally:
        conn.close()
    assert w.stop() == 0


def test_health(redis_server, pg_migrated, sink, workers, tmp_path):
    w, api = start(redis_server, pg_migrated, sink, workers, tmp_path)
    deliver_known_traffic(redis_server, pg_migrated, sink)
    # Nobody consumes "stuck": its oldest webhook has waited 700 s.
    _, env = envelope.make("stuck", received_at_us=int((time.time() - 700) * 1_000_000))
    redis_server.client().lpush("hookq:{stuck}:queue", env)

    res = api.get("/api/v1/health", VIEWER)
    assert res.status_code == 200, res.text
    h = res.json()
    assert h["status"] == "unhealthy" and h["generated_at"].endswith("Z")
    s = {x["source"]: x for x in h["sources"]}
    assert list(s) == ["github", "stripe", "stuck"]
    gh, st, stk = s["github"], s["stripe"], s["stuck"]
    assert gh["status"] == "healthy" and gh["reasons"] == []
    assert gh["last_received_at"].endswith("Z")
    assert (gh["queue_depth"], gh["oldest_age_seconds"]) == (0, None)
    assert (gh["deliveries_5m"], gh["error_rate_5m"]) == (10, 0.0)
    assert gh["lag_seconds"] is not None and 0.027 <= gh["lag_seconds"] <= 5
    # stripe: 3 of 7 attempts failed in the last 5 minutes (>= [slo]'s default 5%: unhealthy).
    assert st["status"] == "unhealthy", st
    assert abs(st["error_rate_5m"] - 3 / 7) < 1e-9 and st["deliveries_5m"] == 7
    assert any("error rate" in r for r in st["reasons"]), st
    assert stk["status"] == "unhealthy", stk
    assert stk["queue_depth"] == 1 and stk["oldest_age_seconds"] >= 700
    assert any("oldest queued webhook" in r for r in stk["reasons"]), stk
    assert (stk["last_received_at"], stk["lag_seconds"], stk["error_rate_5m"]) == (None, None, None)

    scoped = api.get("/api/v1/health", STRIPE_ONLY).json()
    assert [x["source"] for x in scoped["sources"]] == ["stripe"]
    assert scoped["status"] == "unhealthy"
    assert api.get("/api/v1/health?x=1", VIEWER).status_code == 400

    moving = ("generated_at",)
    a = api.get("/api/v1/health", VIEWER).json()
    r = ctl(w, "health", "--json", check=False)
    assert r.returncode == 1  # not healthy
    c = json.loads(r.stdout)
    for doc in (a, c):
        for x in doc["sources"]:
            x.pop("oldest_age_seconds")
    assert without(a, *moving) == without(c, *moving)

    # Redis gone: every source unhealthy, and the API still answers.
    redis_server.stop()
    h = api.get("/api/v1/health", VIEWER).json()
    assert h["status"] == "unhealthy"
    assert all("Redis unreachable" in x["reasons"] for x in h["sources"]), h
