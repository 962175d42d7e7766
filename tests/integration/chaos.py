"""Parts of the chaos test: a flaky application, a provider that retries until it is accepted, and
a fault injector driven by a seeded plan.

Everything random is drawn from the seed the test prints, so a failing run can be replayed with
the same fault plan, the same bodies and the same answers from the application (the interleaving
of processes under load, of course, is never the same twice).
"""

import collections
import hashlib
import http.client
import random
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import edge


def sha(data):
    return hashlib.sha256(data).hexdigest()


# --- the application -----------------------------------------------------------------------------

class _AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        app = self.server.app
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rid = self.headers.get("X-Request-ID", "")
        attempt = int(self.headers.get("X-Retry-Attempt") or 0)
        mode = app.answer(rid, attempt)
        app.record(rid, attempt, mode, sha(body))
        if mode == "hang":
            # Past the route's timeout, then gone without an answer: the worker has given up on it
            # already, and the thread does not stay parked for the rest of the run.
            app.closing.wait(app.hang_s)
            self.close_connection = True
            return
        self.send_response(mode)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _AppServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A worker killed -9 resets its connections: expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FlakyApp:
    """The application behind hookq. Per (request id, attempt), decided from the seed: mostly 200,
    `p_5xx` a 500/502/503, `p_hang` no answer until after the route's timeout — but only for the
    first `flaky_attempts` attempts of a webhook, so every webhook is delivered eventually
    (a retry must come). `outage()` answers 503 to everything (enough failures to open the
    breaker); `recover()` ends every kind of failure."""

    def __init__(self, seed, hang_s, p_5xx=0.03, p_hang=0.004, flaky_attempts=2):
        self.seed = seed
        self.hang_s = hang_s
        self.p_5xx = p_5xx
        self.p_hang = p_hang
        self.flaky_attempts = flaky_attempts
        self.flaky = True
        self.down = False
        self.lock = threading.Lock()
        self.closing = threading.Event()
        # request id -> [2xx answers, attempts seen]; body digests that differ from what was sent
        self.ok = collections.Counter()
        self.seen = collections.Counter()
        self.digests = collections.defaultdict(set)
        self.answers = collections.Counter()
        self.server = _AppServer(("127.0.0.1", 0), _AppHandler)
        self.server.app = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/app"):
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, rid, attempt):
        if self.down:
            return 503
        if not self.flaky or attempt > self.flaky_attempts:
            return 200
        h = hashlib.sha256(f"{self.seed}:{rid}:{attempt}".encode()).digest()
        u = int.from_bytes(h[:4], "big") / 2**32
        if u < self.p_5xx:
            return (500, 502, 503)[h[4] % 3]
        if u < self.p_5xx + self.p_hang:
            return "hang"
        return 200

    def record(self, rid, attempt, mode, digest):
        with self.lock:
            self.seen[rid] += 1
            self.answers[mode] += 1
            self.digests[rid].add(digest)
            if mode == 200:
                self.ok[rid] += 1

    def outage(self, on):
        self.down = on

    def recover(self):
        self.flaky = False
        self.down = False

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


# --- the provider --------------------------------------------------------------------------------

def body_for(seed, i):
    """Webhook i's body: arbitrary bytes (NULs, invalid UTF-8), mostly small, a few large."""
    rng = random.Random(f"{seed}:body:{i}")
    pick = rng.random()
    size = (rng.randint(1, 2_000) if pick < 0.9 else
            rng.randint(2_000, 20_000) if pick < 0.99 else rng.randint(20_000, 120_000))
    return rng.randbytes(size)


class Provider:
    """Sends `count` GitHub-signed webhooks (unique X-GitHub-Delivery each) through nginx, paced
    at `rate` per second over `threads` keep-alive connections, and retries each one until nginx
    answers 2xx — as GitHub would after a 503 or a connection error. Records, per webhook, the
    request id nginx answered with and the sha256 of the body sent."""

    def __init__(self, port, path, count, rate, seed, threads=8, give_up_s=180.0):
        self.port = port
        self.path = path
        self.count = count
        self.rate = rate
        self.seed = seed
        self.threads = threads
        self.give_up_s = give_up_s
        self.lock = threading.Lock()
        self.next = 0
        self.accepted = {}  # delivery id -> (request id, body sha256, status)
        self.failed = {}  # delivery id -> why it was never accepted
        self.refusals = collections.Counter()  # non-2xx answers and transport errors seen
        self.replayed = 0
        self.done = threading.Event()
        self._threads = []
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]
        for t in self._threads:
            t.start()
        threading.Thread(target=self._join, daemon=True).start()

    def _join(self):
        for t in self._threads:
            t.join()
        self.done.set()

    def _take(self):
        with self.lock:
            if self.next >= self.count:
                return None
            i = self.next
            self.next += 1
            return i

    def _run(self):
        conn = None
        rng = random.Random()
        while True:
            i = self._take()
            if i is None:
                break
            # Pacing, so that webhooks flow through the whole fault plan rather than all up front.
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = body_for(self.seed, i)
            delivery = str(uuid.UUID(int=random.Random(f"{self.seed}:id:{i}").getrandbits(128),
                                     version=4))
            headers = edge.github_headers(body, delivery=delivery)
            give_up = time.monotonic() + self.give_up_s
            backoff = 0.05
            while True:
                why = None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                    conn.request("POST", self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if status in (200, 202):
                        with self.lock:
                            self.accepted[delivery] = (resp.getheader("X-Request-ID"), sha(body),
                                                       status)
                            if resp.getheader("Idempotent-Replayed"):
                                self.replayed += 1
                        break
                    with self.lock:
                        self.refusals[status] += 1
                    if status != 503:
                        why = f"HTTP {status}"  # nothing a retry can fix: a bug, reported
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.refusals[type(e).__name__] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                if why is None and time.monotonic() > give_up:
                    why = f"still refused after {self.give_up_s}s"
                if why is not None:
                    with self.lock:
                        self.failed[delivery] = why
                    break
                time.sleep(backoff * (0.5 + rng.random()))
                backoff = min(backoff * 2, 1.0)
        if conn is not None:
            conn.close()


# --- the faults ----------------------------------------------------------------------------------

FAULTS = ("kill_worker_same_id", "kill_worker_new_id", "kill_redis", "stop_postgres",
          "sigstop_redis", "app_outage", "drain_worker")
# After one of each, Redis faults come twice as often: they are the ones that lose replies to
# commands Redis did apply (claims, acks, ingests), the hardest thing for every part to get right.
WEIGHTS = {"kill_redis": 2, "sigstop_redis": 2}


def plan(rng, window_s):
    """A fault plan for while webhooks flow (about `window_s` seconds): every kind once (in a
    seeded order), then seeded picks while they fit. Each entry: (pause before it in seconds,
    fault, how long it lasts). Restarts take some time too, hence the margin."""
    kinds = list(FAULTS)
    rng.shuffle(kinds)
    out = []
    total = 0.0
    while True:
        kind = kinds.pop() if kinds else rng.choices(
            FAULTS, weights=[WEIGHTS.get(f, 1) for f in FAULTS])[0]
        gap = rng.uniform(0.5, 3.0)
        length = rng.uniform(0.3, 2.5)
        total += gap + length + 0.5
        if total > 0.9 * window_s and len(out) >= len(FAULTS):
            return out
        out.append((gap, kind, length))


class Injector:
    """Runs a fault plan against the stack in a thread; every step is logged with its offset."""

    def __init__(self, rng, steps, stack):
        self.rng = rng
        self.steps = steps
        self.stack = stack
        self.log = []
        self.error = None
        self.done = threading.Event()
        self.stopping = threading.Event()
        self.t0 = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self.thread.start()

    def note(self, text):
        line = f"[chaos +{time.monotonic() - self.t0:6.1f}s] {text}"
        self.log.append(line)
        print(line, flush=True)

    def _run(self):
        try:
            for gap, kind, length in self.steps:
                if self.stopping.wait(gap):
                    break
                getattr(self, kind)(length)
        except Exception as e:  # reported by the test, with the log so far
            self.error = e
            self.note(f"injector failed: {e!r}")
        finally:
            self.done.set()

    # Each fault restores what it broke before returning: one fault at a time.

    def kill_worker_same_id(self, length):
        w = self.rng.choice(self.stack.live_workers())
        pending = self.stack.redis_llen_inflight(w.name)
        w.kill9()
        self.note(f"kill -9 worker {w.name} ({pending} inflight); restart same id in {length:.1f}s")
        time.sleep(length)
        self.stack.restart_worker(w)
        self.note(f"worker {w.name} ready again")

    def kill_worker_new_id(self, length):
        w = self.rng.choice(self.stack.live_workers())
        pending = self.stack.redis_llen_inflight(w.name)
        w.kill9()
        time.sleep(length)
        new = self.stack.new_worker()
        self.note(f"kill -9 worker {w.name} ({pending} inflight), replaced by {new.name}; "
                  f"the old id is left for a reaper")

    def drain_worker(self, length):
        """A deploy: SIGTERM, which must drain and exit 0 while the others go on (and must not
        reap the draining one's work from under it), then the same id starts again."""
        w = self.rng.choice(self.stack.live_workers())
        pending = self.stack.redis_llen_inflight(w.name)
        self.note(f"SIGTERM worker {w.name} ({pending} inflight); restart same id {length:.1f}s "
                  f"after it exits")
        rc = w.stop()
        if rc != 0:
            raise AssertionError(f"worker {w.name} exited {rc} after SIGTERM:\n"
                                 f"{w.stderr()[-2000:]}")
        self.note(f"worker {w.name} drained and exited 0")
        time.sleep(length)
        self.stack.restart_worker(w)
        self.note(f"worker {w.name} ready again")

    def kill_redis(self, length):
        self.stack.redis.proc.kill()
        self.stack.redis.proc.wait()
        self.note(f"kill -9 redis; restart from its AOF in {length:.1f}s")
        time.sleep(length)
        self.stack.redis.start()
        self.note("redis restarted")

    def stop_postgres(self, length):
        self.stack.pg.stop("immediate")
        self.note(f"pg_ctl stop -m immediate; start in {length:.1f}s")
        time.sleep(length)
        self.stack.pg.start()
        self.note("postgresql started")

    def sigstop_redis(self, length):
        hold = self.stack.worker_redis_timeout_s + length
        self.stack.redis.pause()
        self.note(f"SIGSTOP redis for {hold:.1f}s (worker redis timeout "
                  f"{self.stack.worker_redis_timeout_s}s)")
        time.sleep(hold)
        self.stack.redis.resume()
        self.note("SIGCONT redis")

    def app_outage(self, length):
        self.stack.app.outage(True)
        self.note(f"application answers 503 to everything for {length:.1f}s")
        time.sleep(length)
        self.stack.app.outage(False)
        self.note("application answers again")
