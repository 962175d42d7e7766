"""Service behaviour: sd_notify READY / WATCHDOG / STOPPING; fallback URL; per-route rate limit."""

import os
import socket
import subprocess
import time

import harness
from worker_fixtures import (config_text, enqueue, event_status, route, rows, wait_until,
                             worker_env, Worker, pg_migrated, sink, workers)  # noqa: F401


def test_sd_notify_ready_watchdog_stopping(redis_server, pg_migrated, sink, tmp_path):
    path = os.path.join(str(tmp_path), "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    w = Worker(config_text(redis_server, pg_migrated, route("r", "q", sink.url("/in"))),
               str(tmp_path))
    env = dict(worker_env(), NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    log = open(w.log_path, "ab")
    proc = subprocess.Popen([harness.WORKER_PATH, "--config", w.config_path], stdout=log,
                            stderr=subprocess.PIPE, env=env)
    try:
        msgs = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in msgs) < 2:
            msgs.append(s.recv(4096).decode())
        assert any("READY=1" in m for m in msgs), msgs
        assert sum("WATCHDOG=1" in m for m in msgs) >= 2, msgs
        proc.terminate()
        while True:
            m = s.recv(4096).decode()
            if "STOPPING=1" in m:
                break
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s.close()


def test_fallback_url_after_primary_gives_up(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    extra = (f'fallback_url = "{sink.url("/fallback")}"\n'
             '[routes.retry]\nmax_attempts = 2\ninitial = "50ms"\nmax_delay = "100ms"\n')
    sink.set("/primary", "503")
    workers(config_text(redis_server, pg_migrated, route("r", "fb", sink.url("/primary"), extra),
                        breaker="failure_threshold = 100"))
    [rid] = enqueue(r, "fb")
    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 20)
    assert len(sink.received("/primary")) == 2 and sink.ids("/fallback") == {rid}
    att = rows(pg_migrated, "SELECT attempt, url, outcome FROM delivery_attempts "
                            "WHERE event_id = %s ORDER BY started_at", rid)
    assert [a[2] for a in att] == ["retry", "dead", "delivered"]
    assert att[2][1].endswith("/fallback")
    assert rows(pg_migrated, "SELECT count(*) FROM dead_letters")[0][0] == 0


def test_rate_limit_is_shared_by_all_workers(redis_server, pg_migrated, sink, workers):
    """Two workers, one route at 4/s (burst 4): together they send no faster than one would."""
    r = redis_server.client()
    for wid in ("w1", "w2"):
        workers(config_text(redis_server, pg_migrated,
                            route("r", "rl", sink.url("/rl"), 'rate_limit = "4/s"'),
                            worker_id=wid, worker_extra="max_inflight = 6\nclaim_batch = 3"),
                name=wid)
    ids = enqueue(r, "rl", 24)
    wait_until(lambda: sink.ids("/rl") >= set(ids), 30, what="all delivered")
    at = sorted(q.at for q in sink.received("/rl"))
    # A burst of 4, then 4 per second: the last of 24 not before ~5 s (each worker's own bucket
    # would let the pair finish in half that).
    assert at[-1] - at[0] >= 4.5, at[-1] - at[0]
    # No second holds more than the rate plus the burst (plus a grant that lapses within 1 s).
    worst = max(sum(1 for t in at if a <= t < a + 1.0) for a in at)
    assert worst <= 4 + 4 + 1, worst
    # Both took part: the limit is shared, not one worker doing all the work.
    by_worker = dict(rows(pg_migrated, "SELECT worker_id, count(*) FROM delivery_attempts "
                                       "GROUP BY worker_id"))
    assert set(by_worker) == {"w1", "w2"}, by_worker


def test_rate_limit_token_bucket(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    workers(config_text(redis_server, pg_migrated,
                        route("r", "rl", sink.url("/rl"), 'rate_limit = "5/s"')))
    ids = enqueue(r, "rl", 15)
    wait_until(lambda: sink.ids("/rl") >= set(ids), 20)
    at = sorted(q.at for q in sink.received("/rl"))
    # A burst of 5, then 5 per second: the last of 15 cannot come before ~2 s.
    assert at[-1] - at[0] >= 1.7, at[-1] - at[0]
    wait_until(lambda: sum(1 for v in event_status(pg_migrated).values() if v == "delivered")
               == 15, 10)
