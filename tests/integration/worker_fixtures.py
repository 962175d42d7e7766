"""Running hookq-worker and hookqctl against the test's own Redis, PostgreSQL and sink."""

import json
import os
import signal
import subprocess
import time

import pytest

import envelope
import harness
from sink import Sink

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def wait_until(pred, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def worker_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if harness.SANITIZE:
        # The worker is linked with the sanitizer runtime itself: nothing to preload.
        env["ASAN_OPTIONS"] = "abort_on_error=1:halt_on_error=1:detect_leaks=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def migrate(pg):
    r = subprocess.run([harness.CTL_PATH, "migrate", "--dsn", pg.dsn], capture_output=True,
                       text=True, env=worker_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def config_text(redis, pg, routes, worker_id="w1", worker_extra="", breaker="", sources="",
                retry=""):
    return f"""
[worker]
id = "{worker_id}"
heartbeat_ttl = "3s"
reaper_interval = "500ms"
retry_poll = "50ms"
drain_timeout = "20s"
{worker_extra}

[redis]
address = "127.0.0.1:{redis.port}"

[postgres]
dsn = "{pg.dsn}"

[breaker]
{breaker}

[retry]
{retry}

{sources}

{routes}
"""


def route(name, source, url, extra=""):
    return f"""
[[routes]]
name = "{name}"
source = "{source}"
url = "{url}"
secret = "{SECRET}"
{extra}
"""


class Worker:
    def __init__(self, config, tmpdir, name="worker"):
        self.dir = tmpdir
        self.name = name
        self.config_path = os.path.join(tmpdir, f"{name}.toml")
        self.log_path = os.path.join(tmpdir, f"{name}.log")
        self.err_path = os.path.join(tmpdir, f"{name}.err")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.proc = None
        self.log_offset = 0

    def start(self, wait_ready=True):
        self.log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        out = open(self.log_path, "ab")
        err = open(self.err_path, "ab")
        self.proc = subprocess.Popen([harness.WORKER_PATH, "--config", self.config_path],
                                     stdout=out, stderr=err, env=worker_env())
        out.close()
        err.close()
        if wait_ready:
            wait_until(lambda: self.proc.poll() is not None or self.find("ready"), 30,
                       what=f"{self.name} ready")
            assert self.proc.poll() is None, self.stderr()
        return self

    def lines(self, all_runs=False):
        """JSON log lines of the current run (of every run with all_runs)."""
        out = []
        try:
            with open(self.log_path, "rb") as f:
                if not all_runs:
                    f.seek(self.log_offset)
                for raw in f:
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        out.append({"msg": "<unparseable>", "raw": raw.decode(errors="replace")})
        except FileNotFoundError:
            pass
        return out

    def find(self, msg):
        return [l for l in self.lines() if l.get("msg") == msg]

    def stderr(self):
        try:
            with open(self.err_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=40):
        """SIGTERM and wait: a clean drain exits 0."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def check_clean(self):
        err = self.stderr()
        assert "AddressSanitizer" not in err and "runtime error:" not in err, err


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def pg_migrated(postgres):
    migrate(postgres)
    return postgres


@pytest.fixture
def workers(tmp_path):
    started = []

    def make(config, name="worker", start=True):
        w = Worker(config, str(tmp_path), name)
        started.append(w)
        if start:
            w.start()
        return w

    yield make
    for w in started:
        if w.proc and w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
        w.check_clean()


def enqueue(redis_client, queue, count=1, source=None, **kw):
    """LPUSHes `count` fresh envelopes; returns their request ids in order."""
    ids = []
    pipe = redis_client.pipeline(transaction=False)
    for i in range(count):
        rid, env = envelope.make(source or queue, **kw)
        ids.append(rid)
        pipe.lpush(f"hookq:{{{queue}}}:queue", env)
        if len(ids) % 1000 == 0:
            pipe.execute()
    pipe.execute()
    return ids


def rows(pg, sql, *args):
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def sql(pg, statement):
    """Runs one statement outside any transaction (DDL a test uses to provoke a fault)."""
    conn = pg.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def event_status(pg):
    return dict(rows(pg, "SELECT id::text, status FROM webhook_events"))
