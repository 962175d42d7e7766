"""A webhook PostgreSQL refuses to record (here: a CHECK constraint the test adds) is isolated from
its batch, which commits without it, and set aside in the poison list with a dead_letters trace;
`hookqctl poison list|show|retry|delete` shows it without its secrets and, once the cause is
fixed, puts it back to be delivered and recorded. Every change is audited."""

import json
import subprocess

import envelope
from worker_fixtures import (config_text, enqueue, event_status, route, rows, sql, wait_until,
                             worker_env, pg_migrated, sink, workers)  # noqa: F401 (fixtures)

import harness

Q = "psn"
SIGNATURE = "t=1,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"


def ctl(worker, *args, check=True):
    env = worker_env()
    env.pop("SUDO_USER", None)
    env["USER"] = "alice"
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    assert SIGNATURE not in r.stdout + r.stderr
    return r


def one_refused_in_a_batch(redis_server, pg_migrated, sink, workers, target, headers=None):
    """Queues a webhook for `target` between twenty good ones, flushed as one batch by a worker's
    recorder, and waits until PostgreSQL's refusal has put it alone in the poison list: the batch
    was split, not retried whole, and every other webhook was delivered and recorded."""
    r = redis_server.client()
    good = enqueue(r, Q, 10)
    bad, env = envelope.make(Q, target=target, headers=headers)
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    good += enqueue(r, Q, 10)
    cfg = config_text(redis_server, pg_migrated, route("app", Q, sink.url("/app")))
    cfg = cfg.replace("[postgres]\n", '[postgres]\nflush_interval = "2s"\n')
    w = workers(cfg)

    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:poison") == 1, 20, what="poisoned")
    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:inflight:w1") == 0, 10, what="all acked")
    st = event_status(pg_migrated)
    assert set(st) == set(good) and set(st.values()) == {"delivered"}
    assert w.find("postgresql refused a batch; isolating the rows it refuses")
    assert not w.find("recording batch failed; retrying")
    return r, w, bad


def test_refused_row_to_poison_and_back(redis_server, pg_migrated, sink, workers):
    sql(pg_migrated, "ALTER TABLE webhook_events ADD CONSTRAINT test_refuse "
                     "CHECK (path <> '/hooks/refused')")
    r, w, bad = one_refused_in_a_batch(redis_server, pg_migrated, sink, workers, "/hooks/refused",
                                       headers=[("Stripe-Signature", SIGNATURE)])
    # The trace: reason without the failing row's contents (PostgreSQL's DETAIL quotes it).
    [(route_name, reason, requeued)] = rows(
        pg_migrated, "SELECT route, reason, requeued_at FROM dead_letters WHERE event_id = %s", bad)
    assert route_name == "(poison)" and requeued is None
    assert reason.startswith("poison: ") and "test_refuse" in reason
    assert SIGNATURE not in reason and "Failing row" not in reason
    assert SIGNATURE not in open(w.log_path).read()

    # list, text and JSON
    [item] = json.loads(ctl(w, "poison", "list", "--json").stdout)
    assert item["request_id"] == bad and item["source"] == Q and item["kind"] == "envelope"
    assert item["queue"] == Q and item["path"] == "/hooks/refused"
    assert "Stripe-Signature" in item["header_names"]
    header, line = ctl(w, "poison", "list").stdout.splitlines()
    assert header.split()[:3] == ["QUEUE", "ID", "KIND"] and line.split()[:2] == [Q, item["id"]]

    # show, by element id or request id, with the recorded reason
    shown = json.loads(ctl(w, "poison", "show", item["id"], "--json").stdout)
    assert shown["request_id"] == bad and "test_refuse" in shown["reason"]
    assert json.loads(ctl(w, "poison", "show", bad, "--json").stdout)["id"] == item["id"]
    assert ctl(w, "poison", "show", "0123456789abcdef", check=False).returncode == 1
    assert "not \"nope\"" in ctl(w, "poison", "show", "nope", check=False).stderr

    # retry after fixing the cause: delivered and recorded, trace settled, audited
    sql(pg_migrated, "ALTER TABLE webhook_events DROP CONSTRAINT test_refuse")
    [res] = json.loads(ctl(w, "poison", "retry", item["id"], "--json").stdout)
    assert res == {"id": item["id"], "queue": Q, "result": "requeued"}
    wait_until(lambda: event_status(pg_migrated).get(bad) == "delivered", 20, what="recorded")
    assert r.llen(f"hookq:{{{Q}}}:poison") == 0
    assert bad in sink.ids("/app")
    assert rows(pg_migrated, "SELECT requeued_at IS NOT NULL FROM dead_letters "
                             "WHERE event_id = %s", bad) == [(True,)]
    [(actor, action, target, details)] = rows(
        pg_migrated, "SELECT actor, action, target, details FROM audit_log")
    assert (actor, action, target) == ("alice", "poison.retry", item["id"])
    assert details["request_id"] == bad and details["queue"] == Q
    # Once gone, a second retry finds nothing and changes nothing.
    assert ctl(w, "poison", "retry", item["id"], check=False).returncode == 1
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log")[0][0] == 1

    # Garbage: shown as size and hex prefix, deleted for good, audited.
    junk = b"HQE1 not an envelope at all"
    r.lpush(f"hookq:{{{Q}}}:poison", junk)
    [g] = json.loads(ctl(w, "poison", "list", "--json", "--queue", Q).stdout)
    assert g["kind"] == "undecodable" and g["bytes"] == len(junk)
    assert g["hex_prefix"] == junk[:32].hex()
    assert ctl(w, "poison", "delete", g["id"]).stdout.strip() == f"{g['id']}: deleted (queue {Q})"
    assert r.llen(f"hookq:{{{Q}}}:poison") == 0
    assert rows(pg_migrated, "SELECT action, target FROM audit_log ORDER BY id") == [
        ("poison.retry", item["id"]), ("poison.delete", g["id"])]
    assert ctl(w, "poison", "list").stdout.strip() == "no poison"


def test_a_batch_refused_for_a_key_given_twice_is_split_not_retried_forever(
        redis_server, pg_migrated, sink, workers):
    """SQLSTATE 21000 (an ON CONFLICT DO UPDATE touching one row twice) is about the batch's rows:
    retried whole it would fail for ever and wedge the recorder. Split like 22/23/54, the rows
    PostgreSQL takes commit and the one it still refuses goes to the poison list. The fault is
    injected by a trigger: the recorder deduplicates the keys it knows of."""
    sql(pg_migrated, """
        CREATE FUNCTION test_twice() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.path = '/hooks/twice' THEN
                RAISE EXCEPTION 'ON CONFLICT DO UPDATE command cannot affect row a second time'
                    USING ERRCODE = '21000';
            END IF;
            RETURN NEW;
        END $$""")
    sql(pg_migrated, "CREATE TRIGGER test_twice BEFORE INSERT ON webhook_events "
                     "FOR EACH ROW EXECUTE FUNCTION test_twice()")
    one_refused_in_a_batch(redis_server, pg_migrated, sink, workers, "/hooks/twice")
