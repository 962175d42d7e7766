"""`hookqctl status` reports exactly what is in Redis and PostgreSQL."""

import json
import subprocess
import time

import envelope
from worker_fixtures import config_text, route, worker_env, pg_migrated  # noqa: F401 (fixtures)

import harness


def fill_redis(r):
    now = int(time.time() * 1000)
    for _ in range(3):
        r.lpush("hookq:{github}:queue", envelope.make("github")[1])
    r.lpush("hookq:{github}:inflight:wA", b"a", b"b")
    r.lpush("hookq:{github}:inflight:wB", b"c")
    r.zadd("hookq:{github}:retry", {b"due1": now - 1000, b"due2": now - 5, b"later": now + 600_000})
    r.lpush("hookq:{github}:poison", b"garbage")
    r.zadd("hookq:{github}:parked:http://app:8080", {b"p1": now + 60_000, b"p2": now + 60_000})
    r.sadd("hookq:{github}:parked_destinations", "http://app:8080")
    r.sadd("hookq:{github}:workers", "wA", "wB")
    # wB's heartbeat has expired: it is dead. As a worker does, wA beats once for the fleet and
    # once per queue it consumes (that copy, on the queue's master, is what the status counts).
    r.set("hookq:worker:wA", str(now), px=60_000)
    r.set("hookq:{github}:heartbeat:wA", "1", px=60_000)
    r.lpush("hookq:{stripe}:queue", envelope.make("stripe")[1])
    r.hset("hookq:breaker:http://app:8080", mapping={
        "state": "open", "open_until": str(now + 60_000), "fails": "", "changed_at": str(now)})


def fill_pg(pg):
    conn = pg.connect()
    with conn, conn.cursor() as cur:
        def event(status, age_s, source="github"):
            rid = str(envelope.uuid7())
            cur.execute("INSERT INTO webhook_events (id, received_at, source, body, status) "
                        "VALUES (%s, now() - make_interval(secs => %s), %s, '', %s)",
                        (rid, age_s, source, status))
            return rid
        for _ in range(4):
            event("delivered", 10)  # counted from the rollups below, not from these rows
        event("delivered", 7200)
        event("queued", 120)      # the oldest still pending: the lag
        event("retrying", 30)
        dead = [event("dead", 60), event("dead", 50, "stripe"), event("dead", 40)]
        for i, rid in enumerate(dead):
            cur.execute("INSERT INTO dead_letters (event_id, received_at, source, route, reason, "
                        "attempts, failed_at, requeued_at) SELECT id, received_at, source, 'r', "
                        "'HTTP 400', 1, now(), %s FROM webhook_events WHERE id = %s",
                        (None if i < 2 else "2024-01-01", rid))
        # Deliveries and rates come from the minute rollups the recorder writes (never a count
        # over an hour of attempts): 24 delivered and 6 failed a minute ago; 7 delivered half an
        # hour ago (in the hour, not in the rate); 5 two hours ago (in neither).
        def rollup(age, attempts, delivered, source="github"):
            cur.execute("INSERT INTO delivery_stats_minute (bucket, source, route, worker_id, "
                        "attempts, delivered, retried) VALUES (date_trunc('minute', now() - %s::interval), "
                        "%s, 'r', 'w', %s, %s, %s)",
                        (age, source, attempts, delivered, attempts - delivered))
        rollup("1 minute", 30, 24)
        rollup("30 minutes", 7, 7)
        rollup("2 hours", 5, 5)
    conn.close()


def ctl(*args):
    r = subprocess.run([harness.CTL_PATH, *args], capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_status_numbers(redis_server, pg_migrated, tmp_path):
    fill_redis(redis_server.client())
    fill_pg(pg_migrated)
    cfg = tmp_path / "worker.toml"
    cfg.write_text(config_text(redis_server, pg_migrated,
                               route("gh", "github", "http://app:8080/gh") +
                               route("st", "stripe", "http://app:8080/st")))

    s = json.loads(ctl("--config", str(cfg), "status", "--json"))
    gh, st = s["queues"]
    # The ages: the oldest queued webhook was stamped when fill_redis ran; the inflight and poison
    # lists hold junk (undecodable: poison says -1, inflight 0 as no element can be dated); the
    # most overdue retry was due a second before.
    assert 0 < gh.pop("oldest_age_s") < 60
    assert gh.pop("inflight_oldest_age_s") == 0
    assert gh.pop("poison_oldest_age_s") == -1
    assert 1 <= gh.pop("retry_overdue_s") < 60
    assert gh == {"queue": "github", "depth": 3, "inflight": 3, "retry": 3, "retry_due": 2,
                  "parked": 2, "poison": 1, "workers_live": 1, "workers_registered": 2,
                  "reachable": True}
    assert (st["queue"], st["depth"], st["inflight"]) == ("stripe", 1, 0)
    d = s["database"]
    assert d["dead_letters"] == 2 and d["dead_letters_by_source"] == {"github": 1, "stripe": 1}
    assert d["dead_letters_oldest_s_by_source"].keys() == {"github", "stripe"}
    assert d["events_last_hour"] == {"queued": 1, "delivered": 31, "retrying": 1, "parked": 0,
                                     "dead": 3}
    # Over the 5 to 6 minutes the minute buckets since now - 5 min cover.
    assert 24 / 360 <= d["delivered_per_s_5m"] <= 24 / 300
    assert 6 / 360 <= d["failed_attempts_per_s_5m"] <= 6 / 300
    assert 119 <= d["lag_s"] < 180
    assert [(b["destination"], b["state"]) for b in s["breakers"]] == [("http://app:8080", "open")]
    # Redis's memory, from INFO memory: the one node, no maxmemory set.
    [node] = s["redis"]
    assert node["node"] == f"127.0.0.1:{redis_server.port}" and node["reachable"] is True
    assert node["maxmemory_bytes"] == 0
    used = redis_server.client().info("memory")["used_memory"]
    assert 0.5 * used < node["used_memory_bytes"] < 2 * used, (node, used)

    # The overrides alone, without a configuration file; text output.
    out = ctl("--config", str(tmp_path / "absent.toml"), "status", "--queue", "github",
              "--dsn", pg_migrated.dsn, "--redis", f"127.0.0.1:{redis_server.port}")
    lines = out.splitlines()
    assert lines[0].split() == ["QUEUE", "DEPTH", "INFLIGHT", "RETRY", "DUE", "PARKED", "POISON",
                                "WORKERS"]
    assert lines[1].split() == ["github", "3", "3", "3", "2", "2", "1", "1/2"]
    assert "dead letters:" in out and "github=1 stripe=1" in out
    assert "http://app:8080" in out and "open" in out
    [mem] = [line.split() for line in lines if line.startswith(f"127.0.0.1:{redis_server.port}")]
    assert mem[2:] == ["MiB", "no", "limit", "-"], mem
    assert pg_migrated.dsn not in out


def test_status_of_an_empty_system(redis_server, pg_migrated):
    s = json.loads(ctl("--config", "/nonexistent.toml", "status", "--json", "--queue", "q",
                       "--dsn", pg_migrated.dsn, "--redis", f"127.0.0.1:{redis_server.port}"))
    assert s["queues"][0]["depth"] == 0 and s["database"]["lag_s"] == 0
    assert s["database"]["dead_letters"] == 0 and s["breakers"] == []


def test_health_is_unhealthy_when_the_backends_are_down_and_no_source_is_configured():
    # Nothing listens on port 1: both refused. With no configuration there is no source to flag.
    r = subprocess.run([harness.CTL_PATH, "--config", "/nonexistent.toml", "health", "--json",
                        "--dsn", "host=127.0.0.1 port=1 connect_timeout=2",
                        "--redis", "127.0.0.1:1"],
                       capture_output=True, text=True, env=worker_env(), timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    h = json.loads(r.stdout)
    assert h["status"] == "unhealthy" and h["sources"] == [], h
