#!/usr/bin/env python3
"""End-to-end benchmark of hookq: signed requests -> nginx (hookq module) -> Redis -> hookq-worker
-> local sink (nginx `return 204`) -> PostgreSQL rows. Prints figures; starts and stops every server
itself on loopback (nothing outside this run is touched).

  phase 1 throughput: wrk flat out into nginx for --seconds; deliveries/s measured at the worker
                      side from webhook_events.delivered_at while it was saturated.
  phase 2 latency:    wrk paced below capacity; received_at -> delivered_at p50/p99 from PostgreSQL.
  phase 3 drain:      --drain envelopes LPUSHed straight into Redis, then the worker drains them;
                      deliveries/s, CPU per delivery of the worker, PostgreSQL and Redis (from
                      /proc), worker RSS. --worker BIN (repeatable) compares binaries in one run,
                      --rounds K takes the median of K drains per binary (tables truncated before
                      each drain, binaries interleaved, so none gets a bigger index than the other).

Usage: HOOKQ_BUILD_DIR=build /usr/bin/python3 bench/e2e/run_e2e.py [--drain 1000000] [--seconds 20]
       [--skip-ingest] [--rounds 3] [--worker build-base/worker/hookq-worker --worker build/...]
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import resource
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
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
        return int(m.group(1))


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(utime+stime, cutime+cstime, ppid) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)): ppid is field 4, utime..cstime are 14..17.
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]), int(fields[1])


def cpu_s(pid):
    return proc_stat(pid)[0] / CLK_TCK


def pg_cpu_s(pg):
    """CPU seconds used by the whole PostgreSQL cluster so far: the postmaster, its live children,
    and (through the postmaster's cutime) every child that has already exited."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pm = int(f.readline())
    own, children, _ = proc_stat(pm)
    total = own + children
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            t, _, ppid = proc_stat(int(d))
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        if ppid == pm:
            total += t
    return total / CLK_TCK


TABLES = ("webhook_events, webhook_routes, delivery_attempts, delivery_stats_minute, "
          "delivery_stats_hour, dead_letters, route_flags, breaker_transitions")


def machine_busy():
    """(busy, total) jiffies of the whole machine from /proc/stat: how much of all cores was used."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def nginx_workers(nginx):
    with open(f"/proc/{nginx.proc.pid}/task/{nginx.proc.pid}/children") as f:
        return [int(x) for x in f.read().split()]


def drain_once(r, pg, redis, nginx, tmp, configs, worker_bin, envs):
    """Empties the tables, queues `envs`, and lets one `worker_bin` process per config (each its
    own worker id, all on the same queue, Redis and PostgreSQL) drain them; figures per delivery."""
    q(pg, f"TRUNCATE {TABLES}")
    q(pg, "CHECKPOINT")
    for k in r.keys("hookq:{github}:*"):
        r.delete(k)
    pipe = r.pipeline(transaction=False)
    for i in range(0, len(envs), 1000):
        pipe.lpush("hookq:{github}:queue", *envs[i:i + 1000])
        if i % 50_000 == 49_000:
            pipe.execute()
    pipe.execute()
    n = len(envs)
    commits = ("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    x0 = q(pg, commits)[0][0]
    sinks = nginx_workers(nginx)
    pg0, redis0 = pg_cpu_s(pg), cpu_s(redis.proc.pid)
    sink0 = sum(cpu_s(p) for p in sinks)
    busy0 = machine_busy()
    t0 = time.time()
    workers = [start_worker(tmp, c, worker_bin, wait=False) for c in configs]
    inflight = [f"hookq:{{github}}:inflight:{worker_id(i)}" for i in range(len(configs))]
    rss = []
    while True:
        left = (r.llen("hookq:{github}:queue") + sum(r.llen(k) for k in inflight) +
                r.zcard("hookq:{github}:retry"))
        rss.append(max(rss_kb(w.pid) for w in workers))
        if left == 0:
            break
        for w in workers:
            if w.poll() is not None:
                raise SystemExit(f"worker {worker_bin} exited with {w.returncode}")
        time.sleep(0.05)
    elapsed = time.time() - t0
    # Before stopping them: what the workers used for the drain, startup included (small).
    wcpu = sum(cpu_s(w.pid) for w in workers)
    pg1, redis1 = pg_cpu_s(pg), cpu_s(redis.proc.pid)
    sink1 = sum(cpu_s(p) for p in sinks)
    busy1 = machine_busy()
    for w in workers:
        stop_worker(w)
    # The workers' sessions have ended, so their statistics are flushed: the transactions they
    # committed (the recorder commits one per batch), a few of this script's own included.
    time.sleep(1)
    x1 = q(pg, commits)[0][0]
    statuses = dict(q(pg, "SELECT status, count(*) FROM webhook_events GROUP BY 1"))
    per_worker = dict(q(pg, "SELECT worker_id, count(*) FROM delivery_attempts GROUP BY 1"))
    return {"rate": n / elapsed, "elapsed": elapsed, "worker_us": wcpu / n * 1e6,
            "pg_us": (pg1 - pg0) / n * 1e6, "redis_us": (redis1 - redis0) / n * 1e6,
            "sink_us": (sink1 - sink0) / n * 1e6,
            # Share of one core each component used during the drain, and of the whole machine.
            "worker_pct": wcpu / elapsed * 100, "pg_pct": (pg1 - pg0) / elapsed * 100,
            "redis_pct": (redis1 - redis0) / elapsed * 100,
            "sink_pct": (sink1 - sink0) / elapsed * 100,
            "busy_pct": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * 100,
            "commits_per_1k": (x1 - x0) / n * 1000,
            "rss_mb": max(rss) / 1024, "statuses": statuses, "per_worker": per_worker}


def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def print_table(results, n):
    print(f"\ndrain of {n} x 1 KB webhooks into a `return 204` sink; median of "
          f"{len(next(iter(results.values())))} round(s); CPU in us per delivery (worker: all "
          f"worker processes together; sink: the nginx worker answering 204)")
    print(f"{'worker':<44} {'deliv/s':>8} {'worker':>7} {'pg':>7} {'redis':>7} {'total':>7} "
          f"{'sink':>6} {'RSS MB':>7}")
    for w, rs in results.items():
        wu, pu, ru, su = (median([x[k] for x in rs])
                          for k in ("worker_us", "pg_us", "redis_us", "sink_us"))
        name = w if len(w) <= 44 else "..." + w[-41:]
        print(f"{name:<44} {median([x['rate'] for x in rs]):>8.0f} {wu:>7.1f} {pu:>7.1f} "
              f"{ru:>7.1f} {wu + pu + ru:>7.1f} {su:>6.1f} {max(x['rss_mb'] for x in rs):>7.0f}")
    print("\nshare of one core used during the drain (median), and of the whole machine "
          f"({os.cpu_count()} cores)")
    print(f"{'worker':<44} {'workers':>8} {'pg':>7} {'redis':>7} {'sink':>7} {'machine':>8} "
          f"{'PG commits per 1000':>20}")
    for w, rs in results.items():
        name = w if len(w) <= 44 else "..." + w[-41:]
        wp, pp, rp, sp, bp, cp = (median([x[k] for x in rs])
                                  for k in ("worker_pct", "pg_pct", "redis_pct", "sink_pct",
                                            "busy_pct", "commits_per_1k"))
        print(f"{name:<44} {wp:>7.0f}% {pp:>6.0f}% {rp:>6.0f}% {sp:>6.0f}% {bp:>7.0f}% {cp:>20.1f}")


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


def worker_id(i):
    return "bench" if i == 0 else f"bench{i}"


def worker_config(tmp, redis, pg, sink_port, log_level, i=0):
    path = os.path.join(tmp, f"worker-{worker_id(i)}.toml")
    with open(path, "w") as f:
        f.write(f"""
[worker]
id = "{worker_id(i)}"
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


def start_worker(tmp, config, binary=None, wait=True):
    log = open(os.path.join(tmp, "worker.log"), "ab")
    p = subprocess.Popen([binary or harness.WORKER_PATH, "--config", config], stdout=log,
                         stderr=log)
    if wait:
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


def wrk_start(port, seconds, connections, tag, threads=1):
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    env = dict(os.environ, HOOKQ_BODY=BODY, HOOKQ_SIG=sig, HOOKQ_PACE_MS="0",
               HOOKQ_RUN=f"{time.time_ns()}-{tag}")
    return subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                             "-s", os.path.join(HERE, "github.lua"), f"http://127.0.0.1:{port}/"],
                            env=env, stdout=subprocess.PIPE, text=True)


def ingest_edges(tmp, redis, r, module, counts, seconds, conns, threads, rounds):
    """Ingest only (no worker): E nginx instances with the module (one nginx worker process each)
    on one Redis, E wrk processes at once, the connections and wrk threads split evenly between
    them (the client gets the same threads whatever E). Per run: req/s in total, CPU per webhook
    of the nginx workers (together), of Redis and of wrk, and the share of a core each used."""
    edges = []
    for i in range(max(counts)):
        d = os.path.join(tmp, f"edge{i}")
        os.makedirs(d)
        edges.append(Nginx(d, redis.port, module))
    try:
        for e in edges:
            harness.wait_port(e.ingest_port)
        res = {c: [] for c in counts}
        for rnd in range(rounds):
            for c in (counts if rnd % 2 == 0 else counts[::-1]):
                use = edges[:c]
                # Warm up every edge's Redis link and wrk's connections.
                per = max(1, threads // c)
                for p in [wrk_start(e.ingest_port, 1, max(1, conns // c), f"w{i}", per)
                          for i, e in enumerate(use)]:
                    p.communicate()
                r.delete("hookq:{github}:queue")
                for k in r.keys("hookq:{github}:dedup:*"):
                    r.delete(k)
                pids = [p for e in use for p in nginx_workers(e)]
                n0 = sum(cpu_s(p) for p in pids)
                r0 = cpu_s(redis.proc.pid)
                b0 = machine_busy()
                u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.time()
                procs = [wrk_start(e.ingest_port, seconds, max(1, conns // c), f"{rnd}-{i}", per)
                         for i, e in enumerate(use)]
                outs = [p.communicate()[0] for p in procs]
                elapsed = time.time() - t0
                u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                wrk_s = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
                n1 = sum(cpu_s(p) for p in pids)
                r1 = cpu_s(redis.proc.pid)
                b1 = machine_busy()
                rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)
                bad = sum(int(m.group(1)) for o in outs
                          for m in [re.search(r"Non-2xx or 3xx responses: (\d+)", o)] if m)
                queued = r.llen("hookq:{github}:queue")
                x = {"rps": rps, "bad": bad, "queued": queued,
                     "nginx_us": (n1 - n0) / queued * 1e6, "redis_us": (r1 - r0) / queued * 1e6,
                     "wrk_us": wrk_s / queued * 1e6,
                     "nginx_pct": (n1 - n0) / elapsed * 100, "redis_pct": (r1 - r0) / elapsed * 100,
                     "wrk_pct": wrk_s / elapsed * 100,
                     "busy_pct": (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * 100}
                res[c].append(x)
                print(f"  edges round {rnd + 1}, {c} nginx: {rps:.0f} req/s (non-2xx {bad}, "
                      f"queued {queued}); per webhook nginx {x['nginx_us']:.1f} us redis "
                      f"{x['redis_us']:.1f} us wrk {x['wrk_us']:.1f} us; cores: nginx "
                      f"{x['nginx_pct']:.0f}% redis {x['redis_pct']:.0f}% wrk {x['wrk_pct']:.0f}% "
                      f"machine {x['busy_pct']:.0f}%", flush=True)
        print(f"\ningest only, wrk -t{threads} -c{conns} in total split between the edges, {seconds}s, "
              f"median of {rounds}; CPU in us per webhook; core shares (machine: "
              f"{os.cpu_count()} cores)")
        print(f"{'edges':<6} {'req/s':>8} {'nginx us':>9} {'redis us':>9} {'wrk us':>7} "
              f"{'nginx %':>8} {'redis %':>8} {'wrk %':>6} {'machine %':>10}")
        for c in counts:
            m = {k: median([x[k] for x in res[c]]) for k in res[c][0]}
            print(f"{c:<6} {m['rps']:>8.0f} {m['nginx_us']:>9.1f} {m['redis_us']:>9.1f} "
                  f"{m['wrk_us']:>7.1f} {m['nginx_pct']:>7.0f}% {m['redis_pct']:>7.0f}% "
                  f"{m['wrk_pct']:>5.0f}% {m['busy_pct']:>9.0f}%")
        print()
    finally:
        for e in edges:
            e.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drain", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--skip-ingest", action="store_true", help="phase 3 only")
    ap.add_argument("--module", help="nginx module .so (default: the build's, else build/)")
    ap.add_argument("--log-level", default="warn",
                    help="worker log level (info writes one line per webhook)")
    ap.add_argument("--rounds", type=int, default=1, help="drains per worker binary (median)")
    ap.add_argument("--workers", default="1",
                    help="worker process counts for phase 3, e.g. 1,2,4 (each count drains the "
                         "same queue with that many processes, own worker ids)")
    ap.add_argument("--edges", default="",
                    help="nginx instance counts for an ingest-only phase, e.g. 1,2 (no worker "
                         "running; each nginx one worker process, all on one Redis)")
    ap.add_argument("--edge-seconds", type=int, default=10, help="wrk duration per edge run")
    ap.add_argument("--edge-conns", type=int, default=64,
                    help="wrk connections in total, split evenly between the edges")
    ap.add_argument("--edge-threads", type=int, default=2,
                    help="wrk threads in total, split evenly between the edges")
    ap.add_argument("--only-edges", action="store_true", help="the --edges phase, nothing else")
    ap.add_argument("--worker", action="append",
                    help="hookq-worker binary for phase 3; repeat to compare binaries in one run")
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
    if not args.only_edges:
        subprocess.run([harness.CTL_PATH, "migrate", "--dsn", pg.dsn], check=True,
                       capture_output=True)
    nginx = Nginx(tmp, redis.port, module)
    r = redis.client()
    config = worker_config(tmp, redis, pg, nginx.sink_port, args.log_level)
    print(f"# hookq e2e bench  cores={os.cpu_count()}  worker={harness.WORKER_PATH}")
    print(f"# nginx module: {module or 'NOT BUILT: phases 1-2 skipped'}")
    try:
        if args.edges:
            if not have_module:
                raise SystemExit("--edges needs the nginx module")
            ingest_edges(tmp, redis, r, module, [int(x) for x in args.edges.split(",")],
                         args.edge_seconds, args.edge_conns, args.edge_threads, args.rounds)
            if args.only_edges:
                return
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

        # Phase 3: drain a pre-filled queue, once per round and worker binary.
        if args.drain:
            binaries = [os.path.abspath(w) for w in args.worker or [harness.WORKER_PATH]]
            counts = [int(x) for x in args.workers.split(",")]
            configs = [worker_config(tmp, redis, pg, nginx.sink_port, args.log_level, i)
                       for i in range(max(counts))]
            runs = [(b, c) for b in binaries for c in counts]

            def label(b, c):
                if len(counts) == 1:
                    return b
                name = f"{c} worker{'s' if c > 1 else ''}"
                return name if len(binaries) == 1 else f"{name} {b}"

            t0 = time.time()
            body = BODY.encode()
            hdrs = [("X-GitHub-Event", "push")]
            # The same envelopes every drain (the tables are emptied in between): every binary
            # writes exactly the same rows.
            envs = [envelope.make("github", body=body, headers=hdrs)[1] for _ in range(args.drain)]
            print(f"phase 3: {args.drain} envelopes made in {time.time() - t0:.0f}s; "
                  f"{args.rounds} round(s) x {len(binaries)} binary(ies) x workers {counts}")
            results = {label(*x): [] for x in runs}
            for rnd in range(args.rounds):
                # Alternate the order so that no run always comes first (warm caches, another
                # process's load on a shared machine).
                for b, c in (runs if rnd % 2 == 0 else runs[::-1]):
                    res = drain_once(r, pg, redis, nginx, tmp, configs[:c], b, envs)
                    results[label(b, c)].append(res)
                    print(f"  round {rnd + 1} {label(b, c)}: {res['rate']:.0f}/s  worker "
                          f"{res['worker_us']:.1f} us  pg {res['pg_us']:.1f} us  redis "
                          f"{res['redis_us']:.1f} us  sink {res['sink_us']:.1f} us per delivery; "
                          f"cores: workers {res['worker_pct']:.0f}% pg {res['pg_pct']:.0f}% redis "
                          f"{res['redis_pct']:.0f}% sink {res['sink_pct']:.0f}% machine "
                          f"{res['busy_pct']:.0f}%  PG commits per 1000 "
                          f"{res['commits_per_1k']:.1f}  rss {res['rss_mb']:.0f} MB  statuses "
                          f"{res['statuses']}  attempts per worker {res['per_worker']}",
                          flush=True)
            print_table(results, args.drain)
    finally:
        nginx.close()
        redis.close()
        pg.close()


if __name__ == "__main__":
    main()
