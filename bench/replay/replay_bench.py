#!/usr/bin/env python3
"""Replay of a large selection at a set rate: 100,000 dead webhooks by default.

Starts its own PostgreSQL and redis-server (as the integration tests do), a local HTTP sink and
one hookq-worker; writes --count dead webhooks (webhook_events + webhook_routes, route "app" dead)
with SQL alone; then times:
  - the dry run (hookqctl replay --dry-run: count, per route, sample),
  - the creation of the job (count and audit),
  - the run itself through `hookqctl replay --rate R --yes`, whose plain progress lines (not a
    TTY) are printed as they come,
and checks at the sink that every webhook arrived exactly once. Figures: wall time, the rate the
runner held (enqueued/s, from the job's start and end) against the one asked, delivered/s.

Usage (worker and hookqctl built):
  HOOKQ_BUILD_DIR=build /usr/bin/python3 bench/replay/replay_bench.py [--count 100000] [--rate 2000]
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
import harness  # noqa: E402
from sink import Sink  # noqa: E402
from worker_fixtures import Worker, config_text, migrate, route, worker_env  # noqa: E402

LOAD = """
WITH ins AS (
  INSERT INTO webhook_events (id, received_at, source, dedup_key, event_type, path, headers, body,
                              status, attempts, last_error)
  SELECT gen_random_uuid(), now() - interval '1 hour' + g * interval '1 microsecond' * 10,
         'bench', 'k' || g, 'order.created', '/hooks/bench',
         '{"content-type": "application/json", "user-agent": "bench"}',
         convert_to('{"order":' || g || ',"pad":"' || repeat('x', 200) || '"}', 'UTF8'),
         'dead', 5, 'HTTP 503'
  FROM generate_series(1, %(n)s) g
  RETURNING id, received_at)
INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error)
SELECT id, received_at, 'app', 'dead', 5, 'HTTP 503' FROM ins
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--rate", type=float, default=2000)
    args = ap.parse_args()

    redis = harness.RedisServer()
    pg = harness.Postgres()
    sink = Sink()
    tmp = tempfile.mkdtemp(prefix="hookq-replay-bench-")
    w = None
    try:
        migrate(pg)
        conn = pg.connect()
        t = time.monotonic()
        with conn.cursor() as cur:
            cur.execute(LOAD, {"n": args.count})
            cur.execute("VACUUM ANALYZE webhook_events")
            cur.execute("VACUUM ANALYZE webhook_routes")
        print(f"loaded {args.count} dead webhooks in {time.monotonic() - t:.1f} s", flush=True)
        cfg = config_text(redis, pg, route("app", "bench", sink.url("/app")),
                          worker_extra="max_inflight = 2000\nclaim_batch = 200")
        w = Worker(cfg, tmp, "bench-worker").start()

        def ctl(*a):
            r = subprocess.run([harness.CTL_PATH, "--config", w.config_path, *a],
                               capture_output=True, text=True, env=worker_env())
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout

        t = time.monotonic()
        p = json.loads(ctl("replay", "--source", "bench", "--status", "dead", "--dry-run",
                           "--json", "--rate", str(args.rate)))
        print(f"dry run: {p['total']} webhooks, routes {p['routes']}, "
              f"estimated {p['estimated_seconds']} s, in {time.monotonic() - t:.2f} s", flush=True)

        t0 = time.monotonic()
        proc = subprocess.Popen([harness.CTL_PATH, "--config", w.config_path, "replay",
                                 "--source", "bench", "--status", "dead", "--rate",
                                 str(args.rate), "--yes"],
                                stdout=subprocess.PIPE, text=True, env=worker_env())
        for line in proc.stdout:
            print("  " + line.rstrip(), flush=True)
        assert proc.wait() == 0
        wall = time.monotonic() - t0
        with conn.cursor() as cur:
            cur.execute("SELECT id, sent, skipped, failed, extract(epoch FROM finished_at - "
                        "started_at), extract(epoch FROM started_at - created_at) "
                        "FROM replay_jobs ORDER BY id DESC LIMIT 1")
            jid, sent, skipped, failed, run_s, wait_s = cur.fetchone()
        deadline = time.monotonic() + 600
        while len(sink.received("/app")) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
        delivered_s = time.monotonic() - t0
        counts = collections.Counter(r.headers.get("x-request-id") for r in sink.received("/app"))
        dup = sum(1 for c in counts.values() if c > 1)
        print(json.dumps({
            "count": args.count, "rate_asked": args.rate, "job": jid,
            "sent": sent, "skipped": skipped, "failed": failed,
            "picked_up_after_s": round(float(wait_s), 2),
            "runner_s": round(float(run_s), 2),
            "enqueued_per_s": round(sent / float(run_s), 1),
            "hookqctl_wall_s": round(wall, 2),
            "all_delivered_after_s": round(delivered_s, 2),
            "delivered_distinct": len(counts), "duplicates": dup}, indent=2), flush=True)
        assert len(counts) == args.count and dup == 0
    finally:
        if w:
            w.stop()
        sink.close()
        redis.close()
        pg.close()


if __name__ == "__main__":
    main()
