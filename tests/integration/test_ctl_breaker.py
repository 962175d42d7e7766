"""`hookqctl breaker list|reset` against a real Redis and PostgreSQL: a reset leaves the hash as the
worker's own close does, and is audited."""

import json
import subprocess
import time

from worker_fixtures import pg_migrated, rows, worker_env  # noqa: F401 (fixtures)

import harness

DEST = "http://127.0.0.1:9"


def ctl(redis, pg, *args, check=True, env=None):
    e = worker_env()
    e.update(env or {})
    r = subprocess.run([harness.CTL_PATH, "--config", "/nonexistent/worker.toml", *args,
                        "--dsn", pg.dsn, "--redis", f"127.0.0.1:{redis.port}"],
                       capture_output=True, text=True, env=e)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def open_breaker(r, dest=DEST):
    now = int(time.time() * 1000)
    r.hset(f"hookq:breaker:{dest}", mapping={
        "state": "open", "open_until": str(now + 600_000), "fails": f"{now - 2} {now - 1} {now}",
        "successes": "0", "probe_until": "0", "changed_at": str(now)})


def test_list_and_reset(redis_server, pg_migrated):
    r = redis_server.client()
    open_breaker(r)
    r.hset("hookq:breaker:http://other:80", mapping={"state": "closed", "fails": "1"})

    out = ctl(redis_server, pg_migrated, "breaker", "list").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["DESTINATION", "STATE"]
    states = {l.split()[0]: l.split()[1] for l in lines[1:]}
    assert states == {DEST: "open", "http://other:80": "closed"}

    listed = json.loads(ctl(redis_server, pg_migrated, "breaker", "list", "--json").stdout)
    by_dest = {b["destination"]: b for b in listed}
    assert by_dest[DEST]["state"] == "open" and by_dest[DEST]["recent_failures"] == 3

    out = ctl(redis_server, pg_migrated, "breaker", "reset", DEST,
              env={"SUDO_USER": "alice"}).stdout
    assert "open -> closed" in out
    h = r.hgetall(f"hookq:breaker:{DEST}")
    # What kAcquire reads: a closed state allows deliveries; no stale failures reopen it at once.
    assert h[b"state"] == b"closed" and h[b"fails"] == b"" and h[b"probe_until"] == b"0"

    [(actor, action, target, details)] = rows(
        pg_migrated, "SELECT actor, action, target, details FROM audit_log")
    assert (actor, action, target) == ("alice", "breaker.reset", DEST)
    assert details == {"from_state": "open", "via": "hookqctl"}
    assert rows(pg_migrated, "SELECT destination, from_state, to_state FROM breaker_transitions") \
        == [(DEST, "open", "closed")]
    # The DSN (it may carry a password) is never printed.
    assert pg_migrated.dsn not in out


def test_reset_unknown_destination_changes_nothing(redis_server, pg_migrated):
    r = ctl(redis_server, pg_migrated, "breaker", "reset", "http://nowhere:1", check=False)
    assert r.returncode == 1 and "no breaker" in r.stderr
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(0,)]
    assert redis_server.client().exists("hookq:breaker:http://nowhere:1") == 0


def test_reset_moves_parked_deliveries_back_to_their_queues(redis_server, pg_migrated):
    """Parked deliveries of the destination, in every queue, go back to the consuming end of their
    queue (earliest parked first) at the reset, not an open period later; other destinations'
    stay parked."""
    r = redis_server.client()
    open_breaker(r)
    far = int(time.time() * 1000) + 600_000
    r.zadd(f"hookq:{{qa}}:parked:{DEST}", {b"a2": far + 2, b"a1": far + 1, b"a3": far + 3})
    r.sadd("hookq:{qa}:parked_destinations", DEST, "http://other:80")
    r.zadd("hookq:{qa}:parked:http://other:80", {b"o1": far})
    r.zadd(f"hookq:{{qb}}:parked:{DEST}", {b"b1": far})
    r.sadd("hookq:{qb}:parked_destinations", DEST)
    r.rpush("hookq:{qa}:queue", b"older")

    out = ctl(redis_server, pg_migrated, "breaker", "reset", DEST).stdout
    assert "open -> closed" in out and "4 parked deliveries" in out, out
    # The queue is consumed from the right: a1 first, then a2, a3, and only then what waited there.
    assert r.lrange("hookq:{qa}:queue", 0, -1) == [b"older", b"a3", b"a2", b"a1"]
    assert r.lrange("hookq:{qb}:queue", 0, -1) == [b"b1"]
    assert r.exists(f"hookq:{{qa}}:parked:{DEST}", f"hookq:{{qb}}:parked:{DEST}") == 0
    assert r.smembers("hookq:{qa}:parked_destinations") == {b"http://other:80"}
    assert r.smembers("hookq:{qb}:parked_destinations") == set()
    assert r.zcard("hookq:{qa}:parked:http://other:80") == 1
