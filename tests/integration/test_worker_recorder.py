"""The recorder: batches too big for one statement, per-route status, and a recorder wedged on an
error PostgreSQL keeps giving no longer feeds the systemd watchdog."""

import os
import socket
import subprocess
import time

import harness
from worker_fixtures import (config_text, enqueue, event_status, route, rows, sql, wait_until,
                             worker_env, Worker, pg_migrated, sink, workers)  # noqa: F401


def fast_retry(max_attempts=100):
    return f'[routes.retry]\nmax_attempts = {max_attempts}\ninitial = "50ms"\nmax_delay = "200ms"\n'


def test_batch_beyond_the_parameter_limit(redis_server, pg_migrated, sink, workers):
    """4,000 webhooks x 2 routes in one batch: 8,000 attempt rows are 80,000 parameters, more than
    one statement can carry. Every row is written and the queue drains."""
    Q = "big"
    r = redis_server.client()
    n = 4000
    ids = enqueue(r, Q, n)
    cfg = config_text(redis_server, pg_migrated,
                      route("a", Q, sink.url("/a")) + route("b", Q, sink.url("/b")),
                      worker_extra="max_inflight = 5000\nclaim_batch = 1000")
    cfg = cfg.replace("[postgres]\n", '[postgres]\nbatch_size = 4000\nflush_interval = "10s"\n')
    w = workers(cfg)
    wait_until(lambda: rows(pg_migrated, "SELECT count(*) FROM webhook_events")[0][0] == n, 120,
               interval=0.5, what="every webhook recorded")
    assert not w.find("recording batch failed; retrying")
    # The point of the test: one transaction wrote more webhooks than one statement could carry.
    per_xact = rows(pg_migrated, "SELECT count(*) FROM webhook_events GROUP BY xmin::text "
                                 "ORDER BY 1 DESC LIMIT 1")[0][0]
    assert per_xact > 65535 // 20, per_xact
    got = rows(pg_migrated, "SELECT id::text, status, count(*) OVER (PARTITION BY id) "
                            "FROM webhook_events")
    assert {g[0] for g in got} == set(ids)
    assert all(g[1] == "delivered" and g[2] == 1 for g in got)
    att = rows(pg_migrated, "SELECT route, count(*), count(DISTINCT event_id) "
                            "FROM delivery_attempts GROUP BY route ORDER BY route")
    assert att == [("a", n, n), ("b", n, n)]
    per_route = rows(pg_migrated, "SELECT route, status, count(*) FROM webhook_routes "
                                  "GROUP BY 1, 2 ORDER BY 1")
    assert per_route == [("a", "delivered", n), ("b", "delivered", n)]
    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:inflight:w1") == 0, 10)
    assert w.stop() == 0


def test_delivered_only_when_every_route_delivered(redis_server, pg_migrated, sink, workers):
    """Route b fails once then delivers while route a keeps failing: the webhook reads 'retrying'
    until a delivers too, however the claims of the two routes interleave."""
    Q = "two"
    r = redis_server.client()
    sink.set("/a", "500")
    sink.script("/b", ["500"])
    cfg = config_text(redis_server, pg_migrated,
                      route("a", Q, sink.url("/a"), fast_retry()) +
                      route("b", Q, sink.url("/b"), fast_retry()),
                      breaker="failure_threshold = 1000")
    workers(cfg)
    [rid] = enqueue(r, Q)

    def b_delivered():
        return rows(pg_migrated, "SELECT count(*) FROM delivery_attempts WHERE event_id = %s "
                                 "AND route = 'b' AND outcome = 'delivered'", rid)[0][0]
    wait_until(b_delivered, 20, what="route b delivered on its retry")
    # Route a's next failures are recorded after b's success, by claims of a alone.
    a_failed = rows(pg_migrated, "SELECT count(*) FROM delivery_attempts WHERE event_id = %s "
                                 "AND route = 'a'", rid)[0][0]
    wait_until(lambda: rows(pg_migrated, "SELECT count(*) FROM delivery_attempts WHERE "
                                         "event_id = %s AND route = 'a'", rid)[0][0] > a_failed + 1,
               20, what="route a retried again")
    assert event_status(pg_migrated)[rid] == "retrying"
    routes = dict(rows(pg_migrated, "SELECT route, status FROM webhook_routes WHERE event_id = %s",
                       rid))
    assert routes == {"a": "retrying", "b": "delivered"}

    sink.set("/a", "200")
    wait_until(lambda: event_status(pg_migrated)[rid] == "delivered", 20,
               what="delivered once a delivers")
    routes = dict(rows(pg_migrated, "SELECT route, status FROM webhook_routes WHERE event_id = %s",
                       rid))
    assert routes == {"a": "delivered", "b": "delivered"}


def test_watchdog_sees_a_wedged_recorder(redis_server, pg_migrated, sink, tmp_path):
    """An error PostgreSQL keeps giving (here a missing table) stops the watchdog pings, so that
    systemd restarts the worker; once the cause is fixed the batch goes in and pings resume."""
    Q = "wd"
    path = os.path.join(str(tmp_path), "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    w = Worker(config_text(redis_server, pg_migrated, route("r", Q, sink.url("/in"))),
               str(tmp_path))
    env = dict(worker_env(), NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    log = open(w.log_path, "ab")
    proc = subprocess.Popen([harness.WORKER_PATH, "--config", w.config_path], stdout=log,
                            stderr=subprocess.PIPE, env=env)

    def pings_within(seconds):
        n = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                n += "WATCHDOG=1" in s.recv(4096).decode()
            except socket.timeout:
                pass
        return n

    try:
        wait_until(lambda: pings_within(1.5) > 0, 15, what="watchdog pings")
        sql(pg_migrated, "ALTER TABLE delivery_attempts RENAME TO delivery_attempts_away")
        [rid] = enqueue(redis_server.client(), Q)
        wait_until(lambda: w.find("recording batch failed; retrying"), 15, what="failing batch")
        # The watchdog's limit is 10 s here: pings stop within it and stay stopped.
        wait_until(lambda: pings_within(3) == 0, 30, interval=0, what="pings to stop")
        assert proc.poll() is None
        sql(pg_migrated, "ALTER TABLE delivery_attempts_away RENAME TO delivery_attempts")
        wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 20)
        wait_until(lambda: pings_within(1.5) > 0, 15, what="pings to resume")
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s.close()
        log.close()


def test_route_rows_partitioned_like_events(pg_migrated):
    """Retention drops webhook_routes' monthly partitions along with webhook_events' ones."""
    def parts(table):
        return {name.replace(table, "") for (name,) in rows(
            pg_migrated, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                         "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", table)}
    rows(pg_migrated, "SELECT hookq_ensure_partitions(3)")
    assert parts("webhook_routes") == parts("webhook_events")
    assert len(parts("webhook_routes")) == 5  # this month, the next three, default
