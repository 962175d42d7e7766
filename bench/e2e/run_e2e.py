#!/usr/bin/env python3
"""End-to-end benchmark of hookq: signed requests -> nginx (hookq module) -> Redis -> hookq-worker
-> local sink (nginx `return 204`) -> PostgreSQL rows. Prints figures; starts and stops every server
itself on loopback (nothing outside this run is touched).

  phase 1 throughput: wrk flat out into nginx for --seconds; deliveries/s measured at the worker
                      side from webhook_events.delivered_at while it was saturated.
  phase 2 latency:    wrk paced below capacity; received_at -> delivered_at p50/p99 from PostgreSQL.
  phase 3 drain:      --drain envelopes LPUSHed straight into Redis, then the worker drains them;
                      deliveries/s and worker RSS sampled every second.

Usage: HOOKQ_BUILD_DIR=build /usr/bin/python3 bench/e2e/run_e2e.py [--drain 1000000] [--seconds 20]
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
import envelope  # noqa: E402
import harness  # noqa: E402

GITHUB_SECRET = "bench-secret"
ROUTE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "hookq/bench"},
                   "commits": [{"id": "0" * 40, "message": "bench"}], "pad": "x" * 400})


def q(pg, sql):
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
        return int(m.group(1))


class Nginx:
    def __init__(self, tmp, redis_port, module):
        self.ingest_port = harness.free_port()
        self.sink_port = harness.free_port()
        ingest = ""
        load = ""
        if module:
            load = f"load_module {module};"
            ingest = f"""
    hookq_redis 127.0.0.1:{redis_port};
    hookq_redis_timeout 1s;
    server {{
        listen 127.0.0.1:{self.ingest_port} backlog=4096;
        location = /hooks/github {{
            hookq github;
            hookq_secret "{GITHUB_SECRET}";
            hookq_queue github;
        }}
    }}"""
        conf = f"""{load}
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    keepalive_requests 10000000;
    {ingest}
    server {{
        listen 127.0.0.1:{self.sink_port} backlog=4096;
        location / {{ return 204; }}
    }}
}}
"""
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([harness.NGINX_BIN, "-p", tmp, "-c", path])
        harness.wait_port(self.sink_port, proc=self.proc)

    def close(self):
        self.proc.send_signal(3)  # SIGQUIT: graceful
        self.proc.wait(15)


def worker_config(tmp, redis, pg, sink_port, log_level):
    path = os.path.join(tmp, "worker.toml")
    with open(path, "w") as f:
        f.write(f"""
[worker]
id = "bench"
queues = ["github"]
max_inflight = 4000
claim_batch = 500
max_connections_per_host = 32
log_level = "{log_level}"
[redis]
address = "127.0.0.1:{redis.port}"
[postgres]
dsn = "{pg.dsn}"
batch_size = 1000
flush_interval = "5ms"
[sources.github]
event_header = "X-GitHub-Event"
[[routes]]
name = "app"
source = "github"
url = "http://127.0.0.1:{sink_port}/webhooks/github"
secret = "{ROUTE_SECRET}"
""")
    return path


def start_worker(tmp, config):
    log = open(os.path.join(tmp, "worker.log"), "ab")
    p = subprocess.Popen([harness.WORKER_PATH, "--config", config], stdout=log, stderr=log)
    time.sleep(0.5)
    return p


def stop_worker(p):
    p.send_signal(15)
    p.wait(60)


def wait_drained(r, pg, total, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if r.llen("hookq:{github}:queue") == 0 and r.llen("hookq:{github}:inflight:bench") == 0:
            n = q(pg, "SELECT count(*) FROM webhook_events WHERE status = 'delivered'")[0][0]
            if n >= total:
                return n
        time.sleep(0.5)
    raise SystemExit(f"not drained within {timeout}s")


def latency(pg, where=""):
    return q(pg, f"""SELECT count(*),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - received_at)),
        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - received_at)),
        extract(epoch FROM max(delivered_at) - min(delivered_at))
        FROM webhook_events WHERE status = 'delivered' {where}""")[0]


def wrk(port, seconds, connections, pace_ms=0):
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    env = dict(os.environ, HOOKQ_BODY=BODY, HOOKQ_SIG=sig, HOOKQ_PACE_MS=str(pace_ms),
               HOOKQ_RUN=str(time.time_ns()))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", os.path.join(HERE, "github.lua"), f"http://127.0.0.1:{port}/"],
                         env=env, capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(m.group(1)) if m else 0.0, int(non2xx.group(1)) if non2xx else 0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drain", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--skip-ingest", action="store_true", help="phase 3 only")
    ap.add_argument("--module", help="nginx module .so (default: the build's, else build/)")
    ap.add_argument("--log-level", default="warn",
                    help="worker log level (info writes one line per webhook)")
    args = ap.parse_args()

    module = args.module
    for candidate in (harness.MODULE_PATH,
                      os.path.join(HERE, "../../build/ngx_module/ngx_http_hookq_module.so")):
        if not module and os.path.exists(candidate):
            module = os.path.abspath(candidate)
    have_module = bool(module)
    tmp = tempfile.mkdtemp(prefix="hookq-bench-")
    redis = harness.RedisServer()
    pg = harness.Postgres()
    subprocess.run([harness.CTL_PATH, "migrate", "--dsn", pg.dsn], check=True,
                   capture_output=True)
    nginx = Nginx(tmp, redis.port, module)
    r = redis.client()
    config = worker_config(tmp, redis, pg, nginx.sink_port, args.log_level)
    print(f"# hookq e2e bench  cores={os.cpu_count()}  worker={harness.WORKER_PATH}")
    print(f"# nginx module: {module or 'NOT BUILT: phases 1-2 skipped'}")
    try:
        worker = start_worker(tmp, config)
        if have_module and not args.skip_ingest:
            harness.wait_port(nginx.ingest_port)
            # Phase 1: flat out.
            rps, bad, out = wrk(nginx.ingest_port, args.seconds, 64)
            accepted = q(pg, "SELECT 1")  # noqa: F841 (PG alive)
            total = r.llen("hookq:{github}:queue")  # still queued at wrk's end
            n = wait_drained(r, pg, 1, 600)
            while True:
                c1 = q(pg, "SELECT count(*) FROM webhook_events")[0][0]
                if r.llen("hookq:{github}:queue") == 0 and \
                        r.llen("hookq:{github}:inflight:bench") == 0:
                    break
                time.sleep(0.5)
            n, p50, p99, span = latency(pg)
            print(f"phase 1 (flat out, {args.seconds}s, wrk -c64): ingest {rps:.0f} req/s "
                  f"(non-2xx {bad}), backlog at wrk end {total}")
            print(f"  delivered+recorded {n} in {span:.1f}s at the worker: {n / span:.0f} "
                  f"deliveries/s; e2e latency (queueing included) p50 {p50 * 1000:.1f} ms "
                  f"p99 {p99 * 1000:.1f} ms")
            q(pg, "SELECT 1")
            mark = q(pg, "SELECT now()")[0][0]
            # Phase 2: paced at about half the measured delivery rate.
            target = max(500, int(n / span / 2))
            conns = 50
            pace = max(1, int(conns * 1000 / target))
            rps2, bad2, wrk_out = wrk(nginx.ingest_port, args.seconds, conns, pace)
            while r.llen("hookq:{github}:queue") or r.llen("hookq:{github}:inflight:bench"):
                time.sleep(0.5)
            time.sleep(1)
            n2, p50, p99, span2 = latency(pg, f"AND received_at > '{mark.isoformat()}'")
            if not n2:
                print(f"phase 2: nothing delivered (wrk {rps2:.0f} req/s, non-2xx {bad2})")
                print(wrk_out)
                raise SystemExit(1)
            print(f"phase 2 (paced ~{rps2:.0f} req/s, {args.seconds}s): {n2} delivered; "
                  f"e2e received_at->delivered p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms")
        stop_worker(worker)
        errors = q(pg, "SELECT coalesce(http_status::text, left(error, 60)), count(*) FROM "
                       "delivery_attempts WHERE outcome <> 'delivered' GROUP BY 1")
        trans = q(pg, "SELECT from_state || '>' || to_state, count(*) FROM breaker_transitions "
                      "GROUP BY 1")
        if errors or trans:
            print(f"  failed attempts so far {dict(errors)}; breaker transitions {dict(trans)}")

        # Phase 3: drain a pre-filled queue.
        if args.drain:
            base = q(pg, "SELECT count(*) FROM webhook_events")[0][0]
            t0 = time.time()
            body = BODY.encode()
            hdrs = [("X-GitHub-Event", "push")]
            batch = []
            pipe = r.pipeline(transaction=False)
            for i in range(args.drain):
                batch.append(envelope.make("github", body=body, headers=hdrs)[1])
                if len(batch) == 1000:
                    pipe.lpush("hookq:{github}:queue", *batch)
                    batch = []
                    if i % 50_000 == 49_999:
                        pipe.execute()
            if batch:
                pipe.lpush("hookq:{github}:queue", *batch)
            pipe.execute()
            print(f"phase 3: {r.llen('hookq:{github}:queue')} envelopes queued in "
                  f"{time.time() - t0:.0f}s; draining")
            worker = start_worker(tmp, config)
            t0 = time.time()
            samples = []
            while True:
                left = (r.llen("hookq:{github}:queue") + r.llen("hookq:{github}:inflight:bench") +
                        r.zcard("hookq:{github}:retry"))
                samples.append((time.time() - t0, left, rss_kb(worker.pid)))
                if left == 0:
                    break
                time.sleep(1)
            elapsed = time.time() - t0
            done = q(pg, "SELECT count(*) FROM webhook_events WHERE status = 'delivered'")[0][0]
            statuses = dict(q(pg, "SELECT status, count(*) FROM webhook_events GROUP BY 1"))
            outcomes = dict(q(pg, "SELECT coalesce(http_status::text, outcome), count(*) "
                                  "FROM delivery_attempts GROUP BY 1"))
            print(f"  webhook_events by status {statuses}; attempts by HTTP status {outcomes}")
            rss = [s[2] for s in samples]
            print(f"  drained {args.drain} in {elapsed:.1f}s: {args.drain / elapsed:.0f} "
                  f"deliveries/s end to end (Redis -> worker -> sink -> PostgreSQL commit -> ack); "
                  f"rows delivered {done - base}/{args.drain}")
            pick = [samples[int(len(samples) * f)] for f in (0.1, 0.25, 0.5, 0.75, 0.9)] + \
                [samples[-1]]
            print("  worker RSS MB at " + ", ".join(
                f"{t:.0f}s ({left} left): {kb / 1024:.1f}" for t, left, kb in pick) +
                f"; max {max(rss) / 1024:.1f}")
            stop_worker(worker)
    finally:
        nginx.close()
        redis.close()
        pg.close()


if __name__ == "__main__":
    main()
