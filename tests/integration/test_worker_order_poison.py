"""Entity ordering when PostgreSQL refuses the holder's rows (here: a CHECK constraint the test adds,
as in test_ctl_poison.py): the holder goes to the poison list and, in the same Redis step, the
entity goes on to the next in line, so the later updates of it are delivered without an operator.
`hookqctl poison retry` sends the poisoned one back as a new arrival: it waits its turn behind the
entity's holder, or takes the free entity, and leaves no ordering state behind."""

import json
import subprocess

import envelope
import harness
from worker_fixtures import (config_text, event_status, route, rows, sql, wait_until,  # noqa: F401
                             pg_migrated, sink, worker_env, workers)

Q = "ordpsn"
PRODUCT = "https://api.moysklad.ru/api/remap/1.2/entity/product/"
REFUSED = "/hooks/refused"


def body(entity, seq):
    return json.dumps({"events": [{"meta": {"type": "product", "href": PRODUCT + entity},
                                   "action": "UPDATE", "updatedFields": [f"field{seq}"]}]}).encode()


def push(r, entity, seq, target=None):
    rid, env = envelope.make(Q, body=body(entity, seq), target=target)
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    return rid


def ctl(worker, *args):
    env = worker_env()
    env.pop("SUDO_USER", None)
    env["USER"] = "alice"
    res = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def refuse(pg, when=""):
    # `when` narrows it: "status <> 'delivered'" lets the row in until it says delivered.
    sql(pg, "ALTER TABLE webhook_events ADD CONSTRAINT test_refuse "
            f"CHECK (path <> '{REFUSED}'{' OR ' + when if when else ''})")


def unrefuse(pg):
    sql(pg, "ALTER TABLE webhook_events DROP CONSTRAINT test_refuse")


def settled(pg, ids):
    st = event_status(pg)
    return all(st.get(i) in ("delivered", "dead") for i in ids)


def route_row(pg, rid):
    return rows(pg, "SELECT status, last_error FROM webhook_routes WHERE event_id = %s", rid)


def sent(sink):
    return [q.headers["x-request-id"] for q in sink.received("/app")]


def order_keys(r):
    return list(r.scan_iter(f"hookq:{{{Q}}}:order:*"))


def test_a_poisoned_holder_hands_the_entity_on(redis_server, pg_migrated, sink, workers):
    refuse(pg_migrated)
    r = redis_server.client()
    bad = push(r, "A", 0, target=REFUSED)
    later = [push(r, "A", s) for s in (1, 2)]
    routes = route("ordered", Q, sink.url("/app"),
                   'order_key = "events[].meta.href"\ntimeout = "3s"\n'
                   'retry = { initial = "100ms", multiplier = 1, max_attempts = 3 }')
    w = workers(config_text(redis_server, pg_migrated, routes))

    # The holder is delivered, refused by PostgreSQL, poisoned; the two behind it follow.
    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:poison") == 1, 20, what="the holder poisoned")
    wait_until(lambda: settled(pg_migrated, later), 20, what="the later updates delivered")
    assert sent(sink) == [bad] + later
    assert bad not in event_status(pg_migrated)
    [item] = json.loads(ctl(w, "poison", "list", "--json").stdout)
    assert item["request_id"] == bad
    [handed] = w.find("entity handed on: its holder was moved to the poison list")
    assert handed["request_id"] == bad and handed["route"] == "ordered"
    assert handed["next"] == later[0]
    wait_until(lambda: not order_keys(r), 10, what="the entity free")

    # Retried while another update of the entity holds it (its first try hangs until the route's
    # timeout, then it is retried): the retried one waits its turn behind it.
    sink.script("/app", ["hang"])
    busy = push(r, "A", 3)
    wait_until(lambda: len(sink.received("/app")) == 4, 10, what="the new holder in flight")
    unrefuse(pg_migrated)
    ctl(w, "poison", "retry", item["id"])
    wait_until(lambda: sum(r.llen(k) for k in r.scan_iter(f"hookq:{{{Q}}}:order:*:w")) == 1, 10,
               what="the retried one waiting")
    assert len(sink.received("/app")) == 4
    wait_until(lambda: settled(pg_migrated, [bad, busy]), 20, what="both delivered")
    assert sent(sink) == [bad] + later + [busy, busy, bad]
    assert r.llen(f"hookq:{{{Q}}}:poison") == 0
    assert route_row(pg_migrated, bad)[0][0] == "delivered"
    wait_until(lambda: not order_keys(r), 10, what="no ordering state left")


def test_updates_merged_into_a_poisoned_holder_go_with_the_next(redis_server, pg_migrated, sink,
                                                                  workers):
    # A0 is delivered while A1 and A2 wait; A2 goes out standing for A1 and is refused (its row
    # saying it waits is not). Nobody waits behind it: the entity is free, and the next update to
    # take it (A3) stands for A1 instead.
    refuse(pg_migrated, "status <> 'delivered'")
    sink.set("/app", "sleep:500")
    r = redis_server.client()
    a0, a1 = push(r, "A", 0), push(r, "A", 1)
    a2 = push(r, "A", 2, target=REFUSED)
    routes = route("ordered", Q, sink.url("/app"),
                   'order_key = "events[].meta.href"\ncoalesce_window = "10s"')
    w = workers(config_text(redis_server, pg_migrated, routes))

    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:poison") == 1, 20, what="A2 poisoned")
    assert sent(sink) == [a0, a2]
    assert sink.received("/app")[1].headers["x-hookq-coalesced-ids"] == a1
    assert route_row(pg_migrated, a1)[0][0] == "waiting"

    a3 = push(r, "A", 3)
    wait_until(lambda: settled(pg_migrated, [a3]), 20, what="A3 delivered")
    [handed] = w.find("entity handed on: its holder was moved to the poison list")
    assert handed["request_id"] == a2 and handed["next"] == "none waiting"
    assert sent(sink) == [a0, a2, a3]
    assert sink.received("/app")[2].headers["x-hookq-coalesced-ids"] == a1
    assert route_row(pg_migrated, a1) == [("coalesced", f"merged into {a3}")]

    # Retried once the cause is fixed: the entity is free, it takes it and goes alone.
    unrefuse(pg_migrated)
    [item] = json.loads(ctl(w, "poison", "list", "--json").stdout)
    ctl(w, "poison", "retry", item["id"])
    wait_until(lambda: settled(pg_migrated, [a2]), 20, what="A2 delivered")
    assert sent(sink) == [a0, a2, a3, a2]
    assert "x-hookq-coalesced-ids" not in sink.received("/app")[3].headers
    assert r.llen(f"hookq:{{{Q}}}:poison") == 0
    wait_until(lambda: not order_keys(r), 10, what="no ordering state left")


def test_a_poisoned_waiter_leaves_the_line(redis_server, pg_migrated, sink, workers):
    # The refused update is refused at its first row, the one saying it waits behind A0: it goes
    # to the poison list and out of the entity's waiting list, so that its turn neither delivers
    # it (to be refused again) nor holds up A2.
    refuse(pg_migrated)
    sink.script("/app", ["hang"])  # A0 holds the entity until the route's timeout, then retries
    r = redis_server.client()
    a0 = push(r, "A", 0)
    bad = push(r, "A", 1, target=REFUSED)
    a2 = push(r, "A", 2)
    routes = route("ordered", Q, sink.url("/app"),
                   'order_key = "events[].meta.href"\ntimeout = "3s"\n'
                   'retry = { initial = "100ms", multiplier = 1, max_attempts = 3 }')
    w = workers(config_text(redis_server, pg_migrated, routes))

    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:poison") == 1, 20, what="the waiter poisoned")
    assert sent(sink) == [a0]  # still holding it
    wait_until(lambda: settled(pg_migrated, [a0, a2]), 20, what="A0 and A2 delivered")
    assert sent(sink) == [a0, a0, a2]
    assert r.llen(f"hookq:{{{Q}}}:poison") == 1
    [out] = w.find("taken out of its entity's waiting list: moved to the poison list")
    assert out["request_id"] == bad and out["route"] == "ordered"
    assert not w.find("entity handed on: its holder was moved to the poison list")
    wait_until(lambda: not order_keys(r), 10, what="the entity free")

    unrefuse(pg_migrated)
    [item] = json.loads(ctl(w, "poison", "list", "--json").stdout)
    assert item["request_id"] == bad
    ctl(w, "poison", "retry", item["id"])
    wait_until(lambda: settled(pg_migrated, [bad]), 20, what="the retried one delivered")
    assert sent(sink) == [a0, a0, a2, bad]
    assert r.llen(f"hookq:{{{Q}}}:poison") == 0
    wait_until(lambda: not order_keys(r), 10, what="no ordering state left")


REMOVED_NOTHING = ("ack removed nothing: the webhook left inflight before its outcome was "
                   "recorded and may be delivered again")


def reap_while_delivering(r, sink, rid):
    """Moves the element of `rid`, whose delivery the sink holds for 1.5 s, back to the queue's
    consuming end, as the reaper does after a lapsed heartbeat: the worker claims the copy and
    poisons it at once, and the first delivery's poison ack then finds nothing in inflight."""
    inflight = f"hookq:{{{Q}}}:inflight:w1"
    wait_until(lambda: r.llen(inflight) == 1 and sink.ids("/app") == {rid}, 10, interval=0.01,
               what="the first delivery under way")
    assert r.lmove(inflight, f"hookq:{{{Q}}}:queue", "RIGHT", "RIGHT")


def test_a_reaped_copy_is_poisoned_once(redis_server, pg_migrated, sink, workers):
    """Refused by PostgreSQL while a reaper had queued its element again: the copy is refused in
    turn and goes to the poison list, so the first one's ack, which removes nothing, must not put
    it there as well. Two entries would be retried as two new arrivals."""
    refuse(pg_migrated)
    r = redis_server.client()
    sink.script("/app", ["sleep:1500"])
    w = workers(config_text(redis_server, pg_migrated, route("plain", Q, sink.url("/app"))))
    bad = push(r, "A", 0, target=REFUSED)
    reap_while_delivering(r, sink, bad)
    wait_until(lambda: w.find(REMOVED_NOTHING), 15, what="the ack that removed nothing")
    assert [line["request_id"] for line in w.find(REMOVED_NOTHING)] == [bad]
    assert len(sink.received("/app")) == 2
    assert r.lrange(f"hookq:{{{Q}}}:poison", 0, -1) == [r.lindex(f"hookq:{{{Q}}}:poison", 0)]
    [item] = json.loads(ctl(w, "poison", "list", "--json").stdout)
    assert item["request_id"] == bad
    assert r.llen(f"hookq:{{{Q}}}:inflight:w1") == 0 and r.llen(f"hookq:{{{Q}}}:queue") == 0


def test_a_reaped_holder_hands_the_entity_on_once(redis_server, pg_migrated, sink, workers):
    """The same for an entity's holder: the copy (same id, so still the holder) is poisoned and
    hands the entity on; the first one's ack changes nothing, neither the poison list nor the
    entity, which the next holder now has."""
    refuse(pg_migrated)
    r = redis_server.client()
    sink.script("/app", ["sleep:1500"])
    routes = route("ordered", Q, sink.url("/app"), 'order_key = "events[].meta.href"')
    w = workers(config_text(redis_server, pg_migrated, routes))
    bad = push(r, "A", 0, target=REFUSED)
    reap_while_delivering(r, sink, bad)
    later = [push(r, "A", s) for s in (1, 2)]
    wait_until(lambda: w.find(REMOVED_NOTHING), 15, what="the ack that removed nothing")
    wait_until(lambda: settled(pg_migrated, later), 20, what="the later updates delivered")
    assert sent(sink) == [bad, bad] + later
    assert r.llen(f"hookq:{{{Q}}}:poison") == 1
    [handed] = w.find("entity handed on: its holder was moved to the poison list")
    assert handed["request_id"] == bad and handed["next"] == later[0]
    wait_until(lambda: not order_keys(r), 10, what="the entity free")
