#!/usr/bin/env python3
"""What operating hookq costs its delivery throughput: the same end-to-end run with and without a
Prometheus scrape of /metrics every second plus a dashboard refreshing every second.

The setup is bench/e2e's (run_e2e.py): redis-server, PostgreSQL, nginx (the hookq module for the
ingest mode; a `return 204` sink in both), one hookq-worker, here with [admin] enabled (tokens from
env:) for the whole run, so A and B differ only in the admin traffic. Runs alternate A, B, A, B...
in pairs ordered AB, BA, AB, ... (--pairs, default 4), because the machine is shared and its speed
drifts: a drift then lowers A as often as B. The figure is the median over pairs of B/A, and the
target is >= 0.95.

  A: no admin traffic.
  B: a scraper GETs /metrics every second and a "dashboard" GETs, every second, what the dashboard
     fetches: /api/v1/status, /api/v1/health, /api/v1/stats?window=1h, /api/v1/dead-letters,
     /api/v1/breakers (--with-events: also /api/v1/events?limit=50); a 404 from an endpoint this
     build lacks is counted and tolerated.

Modes:
  drain  (default) --count envelopes are staged in Redis, renamed into the queue in one step, and
         the worker drains them: deliveries/s = count / time until queue and inflight are empty
         (an envelope is acked only after its outcome is committed in PostgreSQL).
  ingest wrk flat out into nginx for --seconds (signed GitHub requests, HMAC verified); deliveries/s
         from webhook_events.delivered_at over the span the worker needed, as run_e2e's phase 1.
The tables are truncated between runs so every run writes into the same amount of history.

Usage: HOOKQ_BUILD_DIR=build /usr/bin/python3 bench/admin/scrape_overhead.py [--mode drain]
           [--pairs 3] [--count 60000] [--seconds 15]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../e2e"))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
import envelope  # noqa: E402
import harness  # noqa: E402
import run_e2e  # noqa: E402

# The overview's refresh; --with-events adds the events view's first page.
DASHBOARD = ["/api/v1/status", "/api/v1/health", "/api/v1/stats?window=1h",
             "/api/v1/dead-letters", "/api/v1/breakers"]
QUEUE, INFLIGHT, STAGE = "hookq:{github}:queue", "hookq:{github}:inflight:bench", \
    "hookq:{github}:bench-stage"


class Poller(threading.Thread):
    """GETs `paths` once every `period` seconds (on a fixed schedule, not sleep-after-work), over
    one keep-alive connection, until stopped; counts answers by status."""

    def __init__(self, port, token, paths, period=1.0):
        super().__init__(daemon=True)
        self.port, self.token, self.paths, self.period = port, token, paths, period
        self.stop_flag = threading.Event()
        self.statuses = {}
        self.rounds = 0
        self.latencies = {}

    def run(self):
        conn = None
        t0 = time.monotonic()
        while not self.stop_flag.is_set():
            for path in self.paths:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    t = time.perf_counter()
                    conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
                    resp = conn.getresponse()
                    resp.read()
                    key = (path.split("?")[0], resp.status)
                    self.latencies.setdefault(key[0], []).append(time.perf_counter() - t)
                except (http.client.HTTPException, OSError) as e:
                    if conn:
                        conn.close()
                    conn = None
                    key = (path.split("?")[0], type(e).__name__)
                self.statuses[key] = self.statuses.get(key, 0) + 1
            self.rounds += 1
            next_at = t0 + self.rounds * self.period
            self.stop_flag.wait(max(0.0, next_at - time.monotonic()))
        if conn:
            conn.close()

    def stop(self):
        self.stop_flag.set()
        self.join(15)


def admin_section(port):
    return f"""
[admin]
listen = "127.0.0.1:{port}"
[[admin.tokens]]
name = "prometheus"
role = "viewer"
token = "env:HOOKQ_BENCH_SCRAPE_TOKEN"
[[admin.tokens]]
name = "dashboard"
role = "viewer"
token = "env:HOOKQ_BENCH_DASHBOARD_TOKEN"
"""


def truncate(pg):
    run_e2e.q(pg, "TRUNCATE webhook_events, webhook_routes, delivery_attempts, dead_letters, "
                  "breaker_transitions; SELECT 1")


def stage(r, count):
    body = run_e2e.BODY.encode()
    hdrs = [("X-GitHub-Event", "push")]
    r.delete(STAGE)
    pipe = r.pipeline(transaction=False)
    batch = []
    for i in range(count):
        batch.append(envelope.make("github", body=body, headers=hdrs)[1])
        if len(batch) == 1000:
            pipe.lpush(STAGE, *batch)
            batch = []
    if batch:
        pipe.lpush(STAGE, *batch)
    pipe.execute()


def wait_empty(r, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.llen(QUEUE) == 0 and r.llen(INFLIGHT) == 0:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit("the worker did not drain within the timeout")


def run_drain(r, pg, count):
    stage(r, count)
    t0 = time.monotonic()
    r.rename(STAGE, QUEUE)  # the whole backlog appears at once
    t1 = wait_empty(r)
    n = run_e2e.q(pg, "SELECT count(*) FROM webhook_events WHERE status = 'delivered'")[0][0]
    if n != count:
        raise SystemExit(f"{n} delivered rows for {count} envelopes")
    return count / (t1 - t0), f"{count} in {t1 - t0:.2f}s"


def run_ingest(r, pg, nginx, seconds):
    rps, bad, _ = run_e2e.wrk(nginx.ingest_port, seconds, 64)
    wait_empty(r)
    n, _, _, span = run_e2e.latency(pg)
    return n / span, f"{n} in {span:.2f}s (wrk {rps:.0f} req/s, non-2xx {bad})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("drain", "ingest"), default="drain")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--dashboard", help="comma-separated paths instead of the overview's (to find "
                    "which one costs)")
    ap.add_argument("--with-events", action="store_true",
                    help="the dashboard also fetches /api/v1/events?limit=50 every second")
    ap.add_argument("--count", type=int, default=60000, help="drain: envelopes per run")
    ap.add_argument("--seconds", type=int, default=15, help="ingest: wrk duration per run")
    ap.add_argument("--target", type=float, default=0.95)
    args = ap.parse_args()

    module = None
    if args.mode == "ingest":
        module = os.path.abspath(harness.MODULE_PATH)
        if not os.path.exists(module):
            raise SystemExit(f"ingest mode needs the nginx module: {module} not built")
    tmp = tempfile.mkdtemp(prefix="hookq-scrape-bench-")
    redis = harness.RedisServer()
    pg = harness.Postgres()
    subprocess.run([harness.CTL_PATH, "migrate", "--dsn", pg.dsn], check=True,
                   capture_output=True)
    nginx = run_e2e.Nginx(tmp, redis.port, module)
    r = redis.client()
    port = harness.free_port()
    config = run_e2e.worker_config(tmp, redis, pg, nginx.sink_port, "warn")
    with open(config, "a") as f:
        f.write(admin_section(port))
    scrape_token, dash_token = os.urandom(20).hex(), os.urandom(20).hex()
    os.environ["HOOKQ_BENCH_SCRAPE_TOKEN"] = scrape_token  # the worker inherits them
    os.environ["HOOKQ_BENCH_DASHBOARD_TOKEN"] = dash_token
    print(f"# hookq scrape/dashboard overhead  mode={args.mode}  cores={os.cpu_count()}  "
          f"load avg {os.getloadavg()[0]:.1f}  worker={harness.WORKER_PATH}", flush=True)
    worker = run_e2e.start_worker(tmp, config)
    try:
        harness.wait_port(port, timeout=30, proc=worker)
        if args.mode == "ingest":
            harness.wait_port(nginx.ingest_port)
        # A short untimed run first: connections, prepared statements and caches warm for A and B.
        if args.mode == "drain":
            run_drain(r, pg, max(1000, args.count // 10))
        else:
            run_ingest(r, pg, nginx, 3)
        dashboard = args.dashboard.split(",") if args.dashboard else DASHBOARD
        dashboard += ["/api/v1/events?limit=50"] if args.with_events else []
        results = {"A": [], "B": []}
        b_statuses = {}
        b_lat = {}
        for pair in range(args.pairs):
            for kind in (("A", "B") if pair % 2 == 0 else ("B", "A")):
                truncate(pg)
                pollers = []
                if kind == "B":
                    pollers = [Poller(port, scrape_token, ["/metrics"]),
                               Poller(port, dash_token, dashboard)]
                    for p in pollers:
                        p.start()
                    time.sleep(2)  # the metrics snapshot and the dashboard's queries running
                if args.mode == "drain":
                    rate, detail = run_drain(r, pg, args.count)
                else:
                    rate, detail = run_ingest(r, pg, nginx, args.seconds)
                extra = ""
                for p in pollers:
                    p.stop()
                    for k, v in p.statuses.items():
                        b_statuses[k] = b_statuses.get(k, 0) + v
                    for k, v in p.latencies.items():
                        b_lat.setdefault(k, []).extend(v)
                if pollers:
                    extra = (f"; admin: /metrics x{pollers[0].rounds}, dashboard x"
                             f"{pollers[1].rounds} rounds")
                results[kind].append(rate)
                print(f"run {pair + 1}{kind}: {rate:8.0f} deliveries/s  ({detail}{extra}; load avg "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
        ratios = [b / a for a, b in zip(results["A"], results["B"])]
        med = statistics.median(ratios)
        # The admin's SCANs (status, breakers, the metrics snapshot) walk all of these; in ingest
        # mode nearly all are the edge's dedup keys.
        print(f"\nRedis keys at the end: {r.dbsize()}")
        print("admin requests during B, by path and status: " +
              ", ".join(f"{p} {s}: {n}" for (p, s), n in sorted(b_statuses.items(),
                                                                 key=lambda kv: str(kv[0]))))
        for path, lat in sorted(b_lat.items()):
            ms = sorted(x * 1000 for x in lat)
            print(f"  {path}: p50 {ms[len(ms) // 2]:.1f} ms, p99 "
                  f"{ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms, max {ms[-1]:.1f} ms")
        print(f"A (no admin traffic): {', '.join(f'{x:.0f}' for x in results['A'])} deliveries/s;"
              f" median {statistics.median(results['A']):.0f}")
        print(f"B (scrape + dashboard every 1 s): "
              f"{', '.join(f'{x:.0f}' for x in results['B'])} deliveries/s; median "
              f"{statistics.median(results['B']):.0f}")
        print(f"B/A per pair: {', '.join(f'{x:.3f}' for x in ratios)}; median {med:.3f} -> "
              f"{'PASS' if med >= args.target else 'FAIL'} (target >= {args.target})")
        return 0 if med >= args.target else 1
    finally:
        run_e2e.stop_worker(worker)
        nginx.close()
        redis.close()
        pg.close()


if __name__ == "__main__":
    sys.exit(main())
