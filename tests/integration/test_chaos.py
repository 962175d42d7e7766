"""Chaos: the whole path — nginx with the module, Redis (AOF, fsync always), PostgreSQL, several
workers, a flaky application — while signed webhooks flow and faults hit every part: workers
killed -9 (restarted with the same id, or replaced by a new one) or drained with SIGTERM, Redis
killed -9 and restarted from its AOF, PostgreSQL stopped with `-m immediate`, Redis frozen
(SIGSTOP) past the worker's Redis timeout, the application down. Then, once everything has
settled, what hookq promises:

  every webhook nginx answered 2xx is exactly one webhook_events row, 'delivered', with the body
  byte for byte as sent; the application got every one of them (at least once, with that body);
  nothing is left in the queue, in any inflight list, in the retry set or aside as poison.

Size and seed from the environment (the seed is printed; the same seed replays the same faults,
bodies and application answers):
  HOOKQ_CHAOS_WEBHOOKS  webhooks to send (default 20000; the long mode is 100000 or more)
  HOOKQ_CHAOS_RATE      webhooks per second offered to nginx (default 500, 250 under ASan)
  HOOKQ_CHAOS_SEED      seed (default: from the clock)
  HOOKQ_CHAOS_WORKERS   workers running at once (default 2)
scripts/chaos.sh runs the long mode.
"""

import collections
import os
import random
import time

import pytest

import chaos
import edge
import envelope
import harness
from worker_fixtures import (config_text, route, rows, pg_migrated,  # noqa: F401 (fixtures)
                             workers)

Q = "github"
WORKER_REDIS_TIMEOUT_S = 1.0
ROUTE_TIMEOUT_S = 2.0

COUNT = int(os.environ.get("HOOKQ_CHAOS_WEBHOOKS", "20000"))
RATE = float(os.environ.get("HOOKQ_CHAOS_RATE", "250" if harness.SANITIZE else "500"))
SEED = int(os.environ.get("HOOKQ_CHAOS_SEED", str(time.time_ns() % 1_000_000_007)))
WORKERS = int(os.environ.get("HOOKQ_CHAOS_WORKERS", "2"))

NGINX_CONF = """
    hookq_redis {redis};
    hookq_redis_timeout 300ms;
    hookq_redis_connect_timeout 300ms;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/github { hookq github; hookq_secret "SECRET"; hookq_max_body 1m; }
    }
""".replace("SECRET", edge.SECRETS["github"])

# Retries come fast and are many: the application fails only a webhook's first attempts, so every
# webhook must end delivered; dead-lettering one would be a bug (or 20 unlucky faults in a row).
ROUTE_EXTRA = f"""timeout = "{int(ROUTE_TIMEOUT_S)}s"
[routes.retry]
max_attempts = 20
initial = "50ms"
max_delay = "1s"
"""
# The application's own outages (all 503) open the breaker; its scattered failures do not.
BREAKER = 'failure_threshold = 100\nwindow = "1s"\nopen_for = "500ms"\nclose_after = 3\n'


class Stack:
    """What the injector acts on."""

    worker_redis_timeout_s = WORKER_REDIS_TIMEOUT_S

    def __init__(self, redis, pg, app, nginx, make_worker):
        self.redis = redis
        self.pg = pg
        self.app = app
        self.nginx = nginx
        self.make_worker = make_worker
        self.all_workers = []
        self.serial = 0

    def config(self, worker_id):
        text = config_text(self.redis, self.pg, route("app", Q, self.app.url(), ROUTE_EXTRA),
                           worker_id=worker_id, breaker=BREAKER,
                           worker_extra="max_inflight = 400\nclaim_batch = 100")
        address = f'address = "127.0.0.1:{self.redis.port}"'
        timeout = f'timeout = "{int(WORKER_REDIS_TIMEOUT_S * 1000)}ms"'
        return text.replace(address, f"{address}\n{timeout}")

    def new_worker(self):
        self.serial += 1
        wid = f"w{self.serial}"
        w = self.make_worker(self.config(wid), name=wid)
        self.all_workers.append(w)
        return w

    def restart_worker(self, w):
        w.start()

    def live_workers(self):
        return [w for w in self.all_workers if w.proc and w.proc.poll() is None]

    def redis_llen_inflight(self, wid):
        try:
            return self.redis.client(socket_timeout=1).llen(f"hookq:{{{Q}}}:inflight:{wid}")
        except Exception as e:
            return f"? ({type(e).__name__})"


def leftovers(r):
    """What is still waiting in Redis — queue, retry set, poison list, every inflight, landing
    (claiming) and parked list: {key: [request ids]}. (Dedup keys, the workers set, heartbeats,
    claim sequence numbers and breakers are state, not work.)"""
    left = {}
    for key in r.scan_iter(match=f"hookq:{{{Q}}}:*", count=1000):
        name = key.decode()
        work = (":inflight:", ":claiming:", ":parked:")
        if not (name.rsplit(":", 1)[1] in ("queue", "retry", "poison") or any(w in name for w in work)):
            continue
        kind = r.type(key).decode()
        if kind == "list":
            items = r.lrange(key, 0, -1)
        elif kind == "zset":
            items = r.zrange(key, 0, -1)
        else:
            left[name] = [f"<{kind}>"]
            continue
        ids = []
        for item in items:
            try:
                ids.append(envelope.element_id(item))
            except Exception:
                ids.append(f"<undecodable {item[:16]!r}>")
        left[name] = ids
    return left


def final_rows(pg):
    out = collections.defaultdict(list)
    for rid, status, digest in rows(pg, "SELECT id::text, status, encode(sha256(body), 'hex') "
                                        "FROM webhook_events"):
        out[rid].append((status, digest))
    return out


def progress(pg, r, want):
    """(settled, a fingerprint of the state): settled once every accepted webhook is delivered and
    Redis holds nothing but dedup keys."""
    try:
        left = leftovers(r)
        got = final_rows(pg)
    except Exception as e:  # a server still coming back: not settled yet
        return False, repr(e)
    delivered = sum(1 for rid in want
                    if len(got.get(rid, ())) == 1 and got[rid][0][0] == "delivered")
    statuses = collections.Counter(s for v in got.values() for s, _ in v)
    return (not left and delivered == len(want),
            (delivered, sorted(statuses.items()), sorted((k, len(v)) for k, v in left.items())))


def settle(pg, r, want, timeout, quiet_for=60.0):
    """Polls until settled; gives up at `timeout`, or sooner once nothing at all has changed for
    `quiet_for` seconds (every retry, reap and breaker timer here is far shorter than that)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        done, state = progress(pg, r, want)
        if done:
            return "settled"
        if state != last:
            last, since = state, time.monotonic()
        elif time.monotonic() - since > quiet_for:
            return f"stuck: no change for {quiet_for:.0f}s in {last}"
        time.sleep(1)
    return f"not settled within {timeout:.0f}s: {last}"


def sample(items, n=8):
    items = sorted(items)
    return f"{len(items)}: {items[:n]}{' ...' if len(items) > n else ''}"


def test_chaos(pg_migrated, workers):  # noqa: F811
    print(f"chaos seed {SEED} (HOOKQ_CHAOS_SEED={SEED} replays it): {COUNT} webhooks at "
          f"{RATE:.0f}/s, {WORKERS} workers, sanitize={harness.SANITIZE}", flush=True)
    rng = random.Random(SEED)
    redis = harness.RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    app = chaos.FlakyApp(SEED, hang_s=ROUTE_TIMEOUT_S + 1.0)
    nginx = harness.Nginx(NGINX_CONF, redis_port=redis.port, workers=2)
    stack = Stack(redis, pg_migrated, app, nginx, workers)
    try:
        for _ in range(WORKERS):
            stack.new_worker()
        window = COUNT / RATE
        steps = chaos.plan(rng, window)
        provider = chaos.Provider(nginx.port, "/hooks/github", COUNT, RATE, SEED)
        injector = chaos.Injector(rng, steps, stack)
        t0 = time.monotonic()
        provider.start()
        injector.start()
        # Both are bounded: the provider gives up on a webhook after its give_up_s, the plan is
        # finite. The waits below only guard against a wedged thread.
        assert provider.done.wait(window * 3 + 300), "the provider never finished"
        t_sent = time.monotonic() - t0
        assert injector.done.wait(len(steps) * 40 + 120), "the fault injector never finished"
        t_chaos = time.monotonic() - t0
        assert injector.error is None, f"a fault could not be injected: {injector.error!r}"
        app.recover()
        print(f"sent {COUNT} in {t_sent:.1f}s ({len(provider.accepted)} accepted, refusals "
              f"{dict(provider.refusals)}, {provider.replayed} answered as duplicates); faults "
              f"done at {t_chaos:.1f}s ({len(steps)} faults)", flush=True)

        want = {rid: digest for rid, digest, _ in provider.accepted.values()}
        r = redis.client(socket_timeout=5)
        verdict = settle(pg_migrated, r, want, 120 + COUNT / 100)
        print(f"{verdict} at {time.monotonic() - t0:.1f}s", flush=True)

        # --- the evidence, all of it, then one verdict ------------------------------------------
        problems = []
        if provider.failed:
            problems.append(f"webhooks never accepted by nginx "
                            f"{sample(f'{d} {why}' for d, why in provider.failed.items())}")
        if len(want) != len(provider.accepted):
            problems.append(f"{len(provider.accepted)} webhooks accepted under only "
                            f"{len(want)} request ids")
        got = final_rows(pg_migrated)
        missing = [rid for rid in want if rid not in got]
        doubled = [rid for rid in want if len(got.get(rid, ())) > 1]
        status = collections.Counter(got[rid][0][0] for rid in want if len(got.get(rid, ())) == 1)
        undelivered = [f"{rid} {got[rid][0][0]}" for rid in want
                       if len(got.get(rid, ())) == 1 and got[rid][0][0] != "delivered"]
        mangled = [rid for rid in want if any(d != want[rid] for _, d in got.get(rid, ()))]
        extra = [rid for rid in got if rid not in want]
        if missing:
            problems.append(f"accepted but no webhook_events row {sample(missing)}")
        if doubled:
            problems.append(f"more than one webhook_events row {sample(doubled)}")
        if undelivered:
            problems.append(f"final status not 'delivered' ({dict(status)}) {sample(undelivered)}")
        if mangled:
            problems.append(f"stored body differs from the body sent {sample(mangled)}")
        if extra:
            problems.append(f"rows for request ids nginx never answered 2xx {sample(extra)}")

        left = leftovers(r)
        registered = {m.decode() for m in r.smembers(f"hookq:{{{Q}}}:workers")}
        logged = {l.get("request_id") for w in stack.all_workers for l in w.lines(all_runs=True)}
        running = {w.name for w in stack.live_workers()}
        for key, ids in sorted(left.items()):
            owner = ""
            if ":inflight:" in key:
                wid = key.rsplit(":", 1)[1]
                beat = "present" if r.exists(f"hookq:worker:{wid}") else "expired"
                owner = (f" (worker {wid}: process {'running' if wid in running else 'gone'}, "
                         f"heartbeat {beat}, "
                         f"{'still' if wid in registered else 'not'} in the workers set)")
            unseen = sum(1 for i in ids if i not in logged)
            problems.append(f"left in {key}{owner}, {unseen} of them never in any worker's log: "
                            f"{sample(ids)}")

        never = [rid for rid in want if app.ok[rid] == 0]
        if never:
            seen = [f"{rid} (seen {app.seen[rid]}x)" for rid in never]
            problems.append(f"the application never answered 2xx to {sample(seen)}")
        bad_body = [rid for rid in want if app.digests[rid] - {want[rid]}]
        if bad_body:
            problems.append(f"the application received a body that differs {sample(bad_body)}")
        again = sum(1 for rid in want if app.ok[rid] > 1)
        print(f"application answers {dict(app.answers)}; {again} webhooks delivered more than once "
              f"(at-least-once: redeliveries after kills, reaps and lost replies)", flush=True)
        for w in stack.all_workers:
            lines = w.lines(all_runs=True)
            counts = collections.Counter(l.get("msg") for l in lines if l.get("level") in
                                         ("warn", "warning", "error", "critical"))
            print(f"{w.name}: {sum(1 for l in lines if l.get('msg') == 'delivered')} delivered; "
                  f"warnings {dict(counts)}", flush=True)

        if problems:
            print("\n".join(injector.log))
        assert not problems, f"seed {SEED}, {verdict}:\n" + "\n".join(problems)

        # A clean drain of every worker still running, and a crash of none (checked at teardown).
        for w in stack.live_workers():
            assert w.stop() == 0, w.name
    finally:
        app.close()
        nginx.close()
        redis.close()
