#!/usr/bin/env python3
"""Retention at size: drop a month that holds ROWS webhooks while recording goes on.

Starts its own PostgreSQL (tests/integration/harness.py), migrates it, loads ROWS webhooks (with
their route rows and one attempt each) into a month 200 days back, then, while a writer thread
records batches into the current month the way the worker's recorder does (one transaction per
batch of webhook_events + webhook_routes + delivery_attempts rows), runs

    hookqctl cleanup --older-than 90d --dry-run     (what would go)
    hookqctl cleanup --older-than 90d               (drop it)

and prints how long each took, the space returned, and the writer's commit latency before and
during the cleanup. With --delete it first times what the same removal costs as a DELETE (on a
copy of the month), the way retention works without partitions.

    HOOKQ_BUILD_DIR=build python3 bench/retention/drop_bench.py [--rows 1000000] [--delete]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))

import harness  # noqa: E402
from worker_fixtures import migrate, worker_env  # noqa: E402

OLD = "now() - interval '200 days'"

# A 300-byte body and a few headers: the rows' width matters for the load, not for the drop.
LOAD = f"""
INSERT INTO webhook_events (id, received_at, source, dedup_key, event_type, method, path,
                            headers, body, status, attempts, delivered_at)
SELECT md5(g::text || 'e')::uuid, {OLD} + make_interval(secs => g / 1000.0), 'github',
       'k' || g, 'push', 'POST', '/hooks/github', '{{"content-type": "application/json"}}',
       convert_to(repeat('x', 300), 'UTF8'), 'delivered', 1, {OLD}
FROM generate_series(%(lo)s, %(hi)s) g;
INSERT INTO webhook_routes (event_id, received_at, route, status)
SELECT md5(g::text || 'e')::uuid, {OLD} + make_interval(secs => g / 1000.0), 'app', 'delivered'
FROM generate_series(%(lo)s, %(hi)s) g;
INSERT INTO delivery_attempts (event_id, route, url, attempt, started_at, duration_ms, outcome,
                               http_status)
SELECT md5(g::text || 'e')::uuid, 'app', 'http://127.0.0.1:9/app', 1,
       {OLD} + make_interval(secs => g / 1000.0), 3, 'delivered', 204
FROM generate_series(%(lo)s, %(hi)s) g;
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p * len(xs) + 0.5)) - 1))] if xs else float("nan")


class Recorder(threading.Thread):
    """Batches of 100 webhooks committed back to back into the current month, as the worker's
    recorder does; records each commit's latency under the label current at its start."""

    def __init__(self, pg):
        super().__init__(daemon=True)
        self.conn = pg.connect()
        self.label = "before"
        self.lat = {}
        self.stop = threading.Event()
        self.n = 0

    def run(self):
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                label, t0 = self.label, time.monotonic()
                base = self.n
                cur.execute(
                    "WITH e AS (INSERT INTO webhook_events (id, received_at, source, body, status) "
                    "SELECT gen_random_uuid(), now(), 'github', '\\x7b7d', 'delivered' "
                    "FROM generate_series(1, 100) RETURNING id, received_at), "
                    "r AS (INSERT INTO webhook_routes (event_id, received_at, route, status) "
                    "SELECT id, received_at, 'app', 'delivered' FROM e) "
                    "INSERT INTO delivery_attempts (event_id, route, url, attempt, started_at, "
                    "duration_ms, outcome) SELECT id, 'app', 'http://a', 1, now(), 1, 'delivered' "
                    "FROM e")
                self.conn.commit()
                self.lat.setdefault(label, []).append((time.monotonic() - t0) * 1000)
                self.n = base + 100


def ctl(*args):
    t0 = time.monotonic()
    r = subprocess.run([harness.CTL_PATH, *args], capture_output=True, text=True, env=worker_env(),
                       timeout=3600)
    if r.returncode != 0:
        sys.exit(f"hookqctl {' '.join(args)} failed: {r.stdout}{r.stderr}")
    return time.monotonic() - t0, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--delete", action="store_true",
                    help="also time a DELETE of the same rows (on a copy), for comparison")
    args = ap.parse_args()

    pg = harness.Postgres()
    try:
        migrate(pg)
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            for tbl, col in (("webhook_events", "received_at"), ("webhook_routes", "received_at"),
                             ("delivery_attempts", "started_at")):
                cur.execute("SELECT hookq_partition_month(%s, %s, "
                            f"date_trunc('month', ({OLD}) AT TIME ZONE 'UTC'))", (tbl, col))
            t0 = time.monotonic()
            step = 200_000
            for lo in range(1, args.rows + 1, step):
                cur.execute(LOAD, {"lo": lo, "hi": min(args.rows, lo + step - 1)})
            cur.execute("ANALYZE")
            cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            size_before = cur.fetchone()[0]
            print(f"loaded {args.rows:,} webhooks (+ route rows and attempts) into a month 200 days "
                  f"back in {time.monotonic() - t0:.1f} s; database {size_before}")

            if args.delete:
                # The month's three partitions copied, indexes included, then emptied by DELETE.
                cur.execute(f"SELECT to_char(({OLD}) AT TIME ZONE 'UTC', 'YYYYMM')")
                ym = cur.fetchone()[0]
                tables = ("webhook_events", "webhook_routes", "delivery_attempts")
                for t in tables:
                    cur.execute(f"CREATE TABLE copy_{t} (LIKE {t}_{ym} INCLUDING ALL)")
                    cur.execute(f"INSERT INTO copy_{t} SELECT * FROM {t}_{ym}")
                t0 = time.monotonic()
                for t in tables:
                    cur.execute(f"DELETE FROM copy_{t}")
                delete_s = time.monotonic() - t0
                t0 = time.monotonic()
                for t in tables:
                    cur.execute(f"VACUUM copy_{t}")
                print(f"for comparison, the same rows removed by DELETE: {delete_s:.2f} s, then "
                      f"VACUUM {time.monotonic() - t0:.2f} s")
                for t in tables:
                    cur.execute(f"DROP TABLE copy_{t}")

        rec = Recorder(pg)
        rec.start()
        time.sleep(3)
        rec.label = "dry-run"
        dry_s, out = ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--dry-run", "--json")
        plan = json.loads(out)
        rec.label = "cleanup"
        drop_s, out = ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--json")
        done = json.loads(out)
        rec.label = "after"
        time.sleep(2)
        rec.stop.set()
        rec.join()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_database_size(current_database())), "
                        f"(SELECT count(*) FROM webhook_events WHERE received_at < now() - "
                        f"interval '90 days')")
            _, left = cur.fetchone()
        dropped = done.get("partitions", []) if isinstance(done, dict) else done
        freed = sum(p.get("bytes", 0) for p in dropped)
        print(f"dry run: {dry_s * 1000:.0f} ms (hookqctl process included)")
        print(f"cleanup: {drop_s * 1000:.0f} ms (hookqctl process included); "
              f"{len(dropped)} partitions, {sum(p.get('rows', 0) for p in dropped):,} rows, "
              f"{freed / 2**20:.0f} MiB returned; old webhooks left: {left}")
        print("  " + ", ".join(f"{p['partition']} {p.get('rows', 0):,}" for p in dropped))
        print(f"  planned by the dry run: {len(plan.get('partitions', []))} partitions")
        print(f"recorder: {rec.n:,} webhooks recorded in batches of 100 meanwhile")
        for label in ("before", "dry-run", "cleanup", "after"):
            xs = rec.lat.get(label, [])
            if xs:
                print(f"  commit latency {label:8s} n={len(xs):5d} p50 {statistics.median(xs):6.2f} "
                      f"ms  p99 {pct(xs, 0.99):6.2f} ms  max {max(xs):6.2f} ms")
    except BaseException:
        with open(os.path.join(pg.dir.path, "pg.log")) as f:
            print("PostgreSQL's log, last lines:\n" + "".join(f.readlines()[-30:]))
        raise
    finally:
        pg.close()


if __name__ == "__main__":
    main()
