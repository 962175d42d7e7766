"""Retention: whole monthly partitions dropped, shown first, audited, never holding up recording;
rows stranded in a DEFAULT partition get their month; the audit log is partitioned too."""

import json
import os
import shutil
import subprocess
import threading
import time

import harness
from worker_fixtures import (config_text, migrate, route, rows, wait_until,  # noqa: F401
                             worker_env, workers, pg_migrated, sink)

OLD = "now() - interval '200 days'"
MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "..", "migrations")


def ctl(*args, check=True):
    r = subprocess.run([harness.CTL_PATH, *args], capture_output=True, text=True, env=worker_env(),
                       timeout=60)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def month(pg, expr):
    return rows(pg, f"SELECT to_char(({expr}) AT TIME ZONE 'UTC', 'YYYYMM')")[0][0]


def exists(pg, table):
    return rows(pg, "SELECT to_regclass(%s) IS NOT NULL", table)[0][0]


def count(pg, table):
    return rows(pg, f"SELECT count(*) FROM {table}")[0][0]


def fill(pg):
    """3 webhooks 200 days old (their month has no partition: they land in DEFAULT) and 2 new, with
    their routes and attempts; audit rows and dead letters old and new."""
    conn = pg.connect()
    with conn.cursor() as cur:
        for when, n in ((OLD, 3), ("now()", 2)):
            for _ in range(n):
                cur.execute(
                    f"INSERT INTO webhook_events (id, received_at, source, body, status) "
                    f"VALUES (gen_random_uuid(), {when}, 'github', 'x', 'delivered') "
                    f"RETURNING id, received_at")
                eid, at = cur.fetchone()
                cur.execute("INSERT INTO webhook_routes (event_id, received_at, route, status) "
                            "VALUES (%s, %s, 'app', 'delivered')", (eid, at))
                cur.execute("INSERT INTO delivery_attempts (event_id, route, url, attempt, "
                            "started_at, duration_ms, outcome) VALUES (%s, 'app', 'http://a', 1, "
                            "%s, 1, 'delivered')", (eid, at))
        cur.execute(f"INSERT INTO audit_log (at, actor, action) VALUES ({OLD}, 'old', 'x'), "
                    f"(now(), 'new', 'x')")
        cur.execute("INSERT INTO dead_letters (event_id, received_at, source, route, reason, "
                    "attempts, failed_at) VALUES (gen_random_uuid(), now(), 'github', 'app', 'r', "
                    f"1, {OLD}), (gen_random_uuid(), now(), 'github', 'app', 'r', 1, now())")
    conn.close()


def test_cleanup_drops_whole_old_partitions_shown_first_and_audited(pg_migrated):
    pg = pg_migrated
    fill(pg)
    old = month(pg, OLD)
    assert count(pg, "webhook_events_default") == 3 and not exists(pg, f"webhook_events_{old}")

    # The partition run gives the stranded rows their month (it used to be impossible to create).
    ctl("partitions", "--dsn", pg.dsn)
    for t in ("webhook_events", "webhook_routes", "delivery_attempts", "audit_log"):
        assert count(pg, f"{t}_default") == 0, t
        assert exists(pg, f"{t}_{old}"), t
    assert count(pg, "webhook_events") == 5 and count(pg, f"webhook_events_{old}") == 3

    # Dry run: what would go, nothing changed.
    plan = json.loads(ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--dry-run",
                          "--json").stdout)
    assert plan["applied"] is False
    got = {(p["table"], p["partition"]): p["rows"] for p in plan["partitions"]}
    assert got == {("webhook_events", f"webhook_events_{old}"): 3,
                   ("webhook_routes", f"webhook_routes_{old}"): 3,
                   ("delivery_attempts", f"delivery_attempts_{old}"): 3,
                   ("audit_log", f"audit_log_{old}"): 1}
    assert plan["deletes"] == [{"table": "dead_letters", "rows": 1}]
    assert plan["rows"] == 11 and plan["bytes"] > 0
    assert set(plan["cutoffs"]) == {"events", "attempts", "dead_letters", "audit", "alerts"}
    text = ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--dry-run").stdout
    assert f"webhook_events_{old}" in text and "would remove 11 rows" in text
    assert count(pg, "webhook_events") == 5 and count(pg, "dead_letters") == 2

    done = json.loads(ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--json").stdout)
    assert done["applied"] is True and done["rows"] == 11
    for t in ("webhook_events", "webhook_routes", "delivery_attempts", "audit_log"):
        assert not exists(pg, f"{t}_{old}"), t
    assert count(pg, "webhook_events") == 2 and count(pg, "delivery_attempts") == 2
    assert count(pg, "dead_letters") == 1
    (actor, details), = rows(pg, "SELECT actor, details FROM audit_log "
                                 "WHERE action = 'retention.cleanup'")
    assert actor and details["rows"] == 11 and len(details["partitions"]) == 4
    # The newer months are untouched; a second run has nothing to do and writes no audit row.
    again = ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d")
    assert "nothing is older" in again.stdout
    assert count(pg, "audit_log WHERE action = 'retention.cleanup'") == 1


def test_cleanup_bad_input_is_refused_with_the_reason(pg_migrated):
    r = ctl("cleanup", "--dsn", pg_migrated.dsn, "--older-than", "5h", check=False)
    assert r.returncode == 2 and "--older-than" in r.stderr and "5h" in r.stderr


def test_cleanup_gives_up_on_a_lock_rather_than_hold_up_recording(pg_migrated):
    pg = pg_migrated
    fill(pg)
    ctl("partitions", "--dsn", pg.dsn)
    old = month(pg, OLD)
    # A long report query: its transaction holds a lock on webhook_events and its partitions.
    reader = pg.connect()
    reader.autocommit = False
    with reader.cursor() as cur:
        cur.execute("SELECT count(*) FROM webhook_events")
    try:
        p = subprocess.Popen([harness.CTL_PATH, "cleanup", "--dsn", pg.dsn, "--older-than", "90d"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=worker_env())
        # Recording meanwhile: an insert queued behind the waiting DROP goes through once the
        # cleanup gives up (lock_timeout 500 ms), not when the report ends.
        time.sleep(0.2)
        t0 = time.monotonic()
        conn = pg.connect()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO webhook_events (id, received_at, source, body, status) "
                        "VALUES (gen_random_uuid(), now(), 'github', 'x', 'queued')")
        conn.close()
        assert time.monotonic() - t0 < 5
        out, err = p.communicate(timeout=30)
        assert p.returncode == 1, out + err
        assert "try again" in err and "nothing was removed" in err
        assert exists(pg, f"webhook_events_{old}") and count(pg, "dead_letters") == 2
    finally:
        reader.rollback()
        reader.close()
    done = json.loads(ctl("cleanup", "--dsn", pg.dsn, "--older-than", "90d", "--json").stdout)
    assert done["applied"] and not exists(pg, f"webhook_events_{old}")


def test_audit_log_rows_carry_over_into_the_partitioned_table(postgres, tmp_path):
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for name in sorted(os.listdir(MIGRATIONS)):
        if name.endswith(".sql") and name < "0005":
            shutil.copy(os.path.join(MIGRATIONS, name), earlier / name)
    ctl("migrate", "--dsn", postgres.dsn, "--dir", str(earlier))
    conn = postgres.connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_log (at, actor, action) VALUES "
                    "(now() - interval '40 days', 'a', 'one'), (now(), 'b', 'two') RETURNING id")
        ids = [r[0] for r in cur.fetchall()]
    conn.close()
    migrate(postgres)
    assert rows(postgres, "SELECT id, actor FROM audit_log ORDER BY id") == [
        (ids[0], "a"), (ids[1], "b")]
    assert count(postgres, "audit_log_default") == 0
    assert rows(postgres, "SELECT relkind FROM pg_class WHERE relname = 'audit_log'") == [("p",)]
    conn = postgres.connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_log (actor, action) VALUES ('c', 'three') RETURNING id")
        assert cur.fetchone()[0] > ids[1]
    conn.close()


def test_the_worker_applies_retention_on_its_own(redis_server, pg_migrated, sink, workers):
    pg = pg_migrated
    fill(pg)
    old = month(pg, OLD)
    cfg = config_text(redis_server, pg, route("app", "github", sink.url("/app")))
    cfg += '\n[retention]\nevents = "90d"\nattempts = "90d"\naudit = "off"\ninterval = "10s"\n'
    w = workers(cfg)
    # At start the partitions move the stranded rows; within an interval, the old month goes. (The
    # audit row is the signal: the partition checks alone, made one query at a time, can all pass
    # in the instant between the partitions' creation and the cleanup.)
    wait_until(lambda: count(pg, "audit_log WHERE action = 'retention.cleanup'") == 1, 40,
               what="the worker's cleanup")
    assert not exists(pg, f"webhook_events_{old}") and exists(pg, f"audit_log_{old}")
    assert count(pg, "webhook_events_default") == 0
    assert count(pg, "webhook_events") == 2 and count(pg, "dead_letters") == 1
    (actor,), = rows(pg, "SELECT actor FROM audit_log WHERE action = 'retention.cleanup'")
    assert actor == "worker:w1"
    assert w.find("retention applied")
    assert w.stop() == 0
