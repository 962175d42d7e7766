#!/usr/bin/env python3
"""Latency of GET /api/v1/stats (and /api/v1/health) over a realistic rollup size.

Starts its own Redis, PostgreSQL and hookq-worker (tests/integration/harness.py), loads 7 days of
minute and hour rollup rows for ROUTES routes x WORKERS workers directly by SQL (more minute rows
than the worker's 48 h retention keeps: the worst case), compacts the settled hours as the worker's hourly maintenance does (unless --no-compact),
then times N requests per window over a
keep-alive connection and prints p50/p99 in ms.

    HOOKQ_BUILD_DIR=build python3 bench/admin/stats_bench.py [--routes 20] [--workers 2] [-n 200]
"""

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))

import harness  # noqa: E402
from worker_fixtures import Worker, config_text, migrate, route, wait_until  # noqa: E402

TOKEN = "b" * 40

# Duration histograms over 5-200 ms, end-to-end over 10 ms-30 s: 21-23 and 43 non-zero buckets (as
# the recorder writes them, without the zeros at either end), random per row.
LOAD = """
INSERT INTO {table} (bucket, source, route, worker_id, attempts, delivered, retried, dead,
                     parked, timeouts, duration_us_sum, duration_hist, e2e_hist)
SELECT b, 'src' || mod(r, 5), 'route' || r, 'w' || w, 600, 590, 8, 2, 0, 1, 600 * 20000,
       ('[26:' || 46 + mod(r, 3) || ']=' || ARRAY(SELECT 1 + (random() * 60)::bigint
                                                   FROM generate_series(25, 45 + mod(r, 3)))::text
       )::bigint[],
       ('[31:73]=' || ARRAY(SELECT 1 + (random() * 30)::bigint
                            FROM generate_series(30, 72))::text)::bigint[]
FROM generate_series(date_trunc('{unit}', now()) - interval '7 days', now(), interval '1 {unit}') b,
     generate_series(1, %(routes)s) r, generate_series(1, %(workers)s) w
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p * len(xs) + 0.5)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--no-compact", action="store_true",
                    help="keep every worker's hour rows (as before the first hourly maintenance)")
    args = ap.parse_args()

    redis = harness.RedisServer()
    pg = harness.Postgres()
    tmp = tempfile.mkdtemp(prefix="hookq-stats-bench-")
    try:
        migrate(pg)
        conn = pg.connect()
        conn.autocommit = True
        t0 = time.monotonic()
        with conn.cursor() as cur:
            for table, unit in (("delivery_stats_minute", "minute"), ("delivery_stats_hour", "hour")):
                cur.execute(LOAD.format(table=table, unit=unit),
                            {"routes": args.routes, "workers": args.workers})
            if not args.no_compact:
                # What the workers' hourly maintenance leaves: settled hours merged across workers.
                cur.execute("SELECT hookq_stats_compact(date_trunc('hour', now()) - "
                            "interval '1 hour')")
            cur.execute("ANALYZE delivery_stats_minute")
            cur.execute("ANALYZE delivery_stats_hour")
            cur.execute("SELECT (SELECT count(*) FROM delivery_stats_minute), "
                        "(SELECT count(*) FROM delivery_stats_hour), "
                        "pg_size_pretty(pg_total_relation_size('delivery_stats_minute')), "
                        "pg_size_pretty(pg_total_relation_size('delivery_stats_hour'))")
            mins, hours, msize, hsize = cur.fetchone()
        conn.close()
        print(f"loaded {mins} minute rows ({msize}), {hours} hour rows ({hsize}) "
              f"in {time.monotonic() - t0:.1f} s")

        port = harness.free_port()
        token_path = os.path.join(tmp, "token")
        with open(token_path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_path, 0o600)
        routes = "".join(route(f"route{r}", f"src{r % 5}", "http://127.0.0.1:9/")
                         for r in range(1, args.routes + 1))
        cfg = config_text(redis, pg, routes) + f"""
[admin]
listen = "127.0.0.1:{port}"
[[admin.tokens]]
name = "bench"
role = "viewer"
token = "file:{token_path}"
"""
        w = Worker(cfg, tmp).start()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            def get(path):
                t = time.perf_counter()
                c.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
                r = c.getresponse()
                body = r.read()
                assert r.status == 200, (r.status, body[:300])
                return (time.perf_counter() - t) * 1000, len(body)

            wait_until(lambda: get("/api/v1/stats"), 15, what="admin API")
            for path in ("/api/v1/stats?window=1h", "/api/v1/stats?window=24h",
                         "/api/v1/stats?window=7d", "/api/v1/stats?window=7d&by=source",
                         "/api/v1/health"):
                for _ in range(5):
                    get(path)  # warm the connection pool and PostgreSQL's caches
                ms = []
                size = 0
                for _ in range(args.n):
                    t, size = get(path)
                    ms.append(t)
                print(f"{path:40s} p50 {statistics.median(ms):6.2f} ms  p99 {pct(ms, 0.99):6.2f} ms"
                      f"  ({size} bytes)")
        finally:
            w.stop()
    finally:
        pg.stop()
        redis.stop()


if __name__ == "__main__":
    main()
