"""MoySklad batches and entity ordering on real Redis, PostgreSQL and an HTTP application:
`split` sends one delivery per event (own id, own retries, own rows), `order_key` keeps the
deliveries of one entity one at a time and in arrival order, `coalesce_window` merges the updates
that queue up behind one into a single delivery (the ids merged are recorded)."""

import json
import subprocess
import time

import envelope
import harness
from worker_fixtures import (config_text, event_status, route, rows, wait_until,  # noqa: F401
                             pg_migrated, sink, worker_env, workers)

Q = "moysklad"
PRODUCT = "https://api.moysklad.ru/api/remap/1.2/entity/product/"


def event(entity, action="UPDATE", seq=0, etype="product"):
    return {"meta": {"type": etype, "href": PRODUCT + entity}, "action": action,
            "accountId": "acc-1", "updatedFields": [f"field{seq}"]}


def batch(*events):
    return json.dumps({"auditContext": {"uid": "admin@acme", "moment": "2026-11-30 12:00:00"},
                       "events": list(events)}).encode()


def push(r, body):
    rid, env = envelope.make(Q, body=body)
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    return rid


def route_rows(pg, rid):
    return dict(rows(pg, "SELECT route, status FROM webhook_routes WHERE event_id = %s", rid))


def settled(pg, ids):
    st = event_status(pg)
    return all(st.get(i) in ("delivered", "dead") for i in ids)


def test_split_sends_one_delivery_per_event(redis_server, pg_migrated, sink, workers):
    routes = (route("per-event", Q, sink.url("/events"), 'split = "events"')
              + route("whole", Q, sink.url("/whole")))
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    evs = [event("p1", "CREATE"), event("p2", "UPDATE"), event("p3", "DELETE")]
    parent = push(r, batch(*evs))
    wait_until(lambda: len(sink.received("/events")) == 3 and len(sink.received("/whole")) == 1,
               20, what="3 event deliveries and the whole batch")
    got = sorted(sink.received("/events"), key=lambda q: q.headers["x-hookq-part"])
    child_ids = [q.headers["x-request-id"] for q in got]
    assert len(set(child_ids)) == 3 and parent not in child_ids
    for i, q in enumerate(got):
        body = json.loads(q.body)
        assert body["events"] == [evs[i]]  # one event each, in order
        assert body["auditContext"]["uid"] == "admin@acme"  # the batch's other fields stay
        assert q.headers["x-hookq-parent-id"] == parent
        assert q.headers["x-hookq-part"] == f"{i + 1}/3"
        assert q.headers["webhook-id"] == child_ids[i]  # hookq's own signature is the child's
        # The child ids keep the parent's millisecond prefix, so they sort beside it.
        assert child_ids[i][:13] == parent[:13] and child_ids[i][14] == "8"
    # The other route gets the batch untouched.
    assert json.loads(sink.received("/whole")[0].body)["events"] == evs
    ids = [parent] + child_ids
    wait_until(lambda: settled(pg_migrated, ids), 20, what="rows settled")
    st = event_status(pg_migrated)
    assert all(st[i] == "delivered" for i in ids)
    assert route_rows(pg_migrated, parent) == {"per-event": "split", "whole": "delivered"}
    for c in child_ids:
        assert route_rows(pg_migrated, c) == {"per-event": "delivered"}
    [(err,)] = rows(pg_migrated, "SELECT last_error FROM webhook_routes WHERE event_id = %s "
                    "AND route = 'per-event'", parent)
    assert err == "split into 3 events"
    # Each event is searchable as a webhook of its own, with its parent in its headers.
    [(headers,)] = rows(pg_migrated, "SELECT headers FROM webhook_events WHERE id = %s",
                        child_ids[0])
    assert headers[":hookq-parent"] == parent


def test_split_events_retry_on_their_own_with_stable_ids(redis_server, pg_migrated, sink,
                                                         workers):
    # The second request the application sees fails once: only that event is tried again.
    sink.script("/events", ["200", "500"])
    routes = route("per-event", Q, sink.url("/events"),
                   'split = "events"\nretry = { initial = "200ms", max_attempts = 3 }')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    parent = push(r, batch(event("a"), event("b"), event("c")))
    wait_until(lambda: len(sink.received("/events")) == 4, 20, what="3 events + 1 retry")
    time.sleep(0.3)
    assert len(sink.received("/events")) == 4
    per_id = {}
    for q in sink.received("/events"):
        per_id.setdefault(q.headers["x-request-id"], []).append(q.headers["x-retry-attempt"])
    assert len(per_id) == 3
    assert sorted(per_id.values()) == [["1"], ["1"], ["1", "2"]]
    wait_until(lambda: settled(pg_migrated, [parent] + list(per_id)), 20, what="rows settled")
    attempts = dict(rows(pg_migrated, "SELECT event_id::text, count(*) FROM delivery_attempts "
                         "GROUP BY event_id"))
    assert sorted(attempts[i] for i in per_id) == [1, 1, 2]
    assert parent not in attempts  # the batch itself was never sent: its events were


def test_a_redelivered_batch_splits_into_the_same_events(redis_server, pg_migrated, sink,
                                                         workers):
    # A worker that dies after splitting but before its ack gets the batch again: the same
    # children, the same ids, one row each.
    routes = route("per-event", Q, sink.url("/events"), 'split = "events"')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    rid, env = envelope.make(Q, body=batch(event("a"), event("b")))
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: len(sink.received("/events")) == 2, 20, what="first split")
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: len(sink.received("/events")) == 4, 20, what="second split")
    ids = [q.headers["x-request-id"] for q in sink.received("/events")]
    assert len(set(ids)) == 2 and sorted(ids[:2]) == sorted(ids[2:])
    wait_until(lambda: settled(pg_migrated, [rid] + ids), 20, what="rows settled")
    [(n,)] = rows(pg_migrated, "SELECT count(*) FROM webhook_events WHERE headers->>':hookq-parent'"
                  " = %s", rid)
    assert n == 2


def test_a_body_without_the_array_goes_out_whole(redis_server, pg_migrated, sink, workers):
    routes = route("per-event", Q, sink.url("/events"), 'split = "events"')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    ids = [push(r, b'{"events": []}'), push(r, b'not json'), push(r, b'{"events": {"a": 1}}')]
    wait_until(lambda: sink.ids("/events") == set(ids), 20, what="three whole deliveries")
    assert all("x-hookq-parent-id" not in q.headers for q in sink.received("/events"))


def deliveries_by_entity(sink, path):
    out = {}
    for q in sink.received(path):
        ev = json.loads(q.body)["events"][0]
        out.setdefault(ev["meta"]["href"].rsplit("/", 1)[1], []).append((q.at, q))
    return out


def test_one_entity_at_a_time_in_arrival_order(redis_server, pg_migrated, sink, workers):
    sink.set("/app", "sleep:250")
    routes = route("ordered", Q, sink.url("/app"), 'order_key = "events[].meta.href"')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    ids = []
    for seq in range(4):
        for ent in ("A", "B"):
            ids.append(push(r, batch(event(ent, seq=seq))))
    wait_until(lambda: len(sink.received("/app")) == 8, 30, what="8 deliveries")
    by = deliveries_by_entity(sink, "/app")
    for ent in ("A", "B"):
        seqs = [json.loads(q.body)["events"][0]["updatedFields"][0] for _, q in by[ent]]
        assert seqs == [f"field{i}" for i in range(4)], f"{ent} out of order: {seqs}"
        ends = [at for at, _ in by[ent]]
        # Answered 250 ms after it started: one at a time means ends at least that far apart.
        gaps = [b - a for a, b in zip(ends, ends[1:])]
        assert min(gaps) >= 0.24, f"{ent} overlapped: {gaps}"
    # Different entities do not wait for each other: A's and B's deliveries overlap in time.
    a_first, b_first = by["A"][0][0], by["B"][0][0]
    assert abs(a_first - b_first) < 0.2
    wait_until(lambda: settled(pg_migrated, ids), 20, what="rows settled")
    assert all(v == "delivered" for k, v in event_status(pg_migrated).items() if k in ids)
    # Nothing of the entities' state is left in Redis once all is delivered.
    assert not list(r.scan_iter(f"hookq:{{{Q}}}:order:*"))


def test_a_failing_holder_keeps_the_others_waiting(redis_server, pg_migrated, sink, workers):
    sink.script("/app", ["500", "500"])
    routes = route("ordered", Q, sink.url("/app"),
                   'order_key = "events[].meta.href"\n'
                   'retry = { initial = "1s", multiplier = 1, max_attempts = 5 }')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    ids = [push(r, batch(event("A", seq=s))) for s in range(3)]
    # While the first is retrying, the others' rows say they wait (and the webhook is held).
    wait_until(lambda: route_rows(pg_migrated, ids[2]).get("ordered") == "waiting", 10,
               what="a waiting row")
    assert event_status(pg_migrated)[ids[2]] == "parked"
    wait_until(lambda: len(sink.received("/app")) == 5, 30, what="2 failures + 3 deliveries")
    got = [(q.headers["x-request-id"], q.headers["x-retry-attempt"]) for q in sink.received("/app")]
    assert got == [(ids[0], "1"), (ids[0], "2"), (ids[0], "3"), (ids[1], "1"), (ids[2], "1")]
    wait_until(lambda: settled(pg_migrated, ids), 20, what="rows settled")
    assert {route_rows(pg_migrated, i)["ordered"] for i in ids} == {"delivered"}


def test_a_dead_holder_hands_the_entity_on(redis_server, pg_migrated, sink, workers):
    sink.script("/app", ["400"])
    routes = route("ordered", Q, sink.url("/app"), 'order_key = "events[].meta.href"')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    ids = [push(r, batch(event("A", seq=s))) for s in range(3)]
    wait_until(lambda: settled(pg_migrated, ids), 20, what="rows settled")
    assert [q.headers["x-request-id"] for q in sink.received("/app")] == ids
    st = event_status(pg_migrated)
    assert [st[i] for i in ids] == ["dead", "delivered", "delivered"]
    assert not list(r.scan_iter(f"hookq:{{{Q}}}:order:*"))


def test_a_worker_killed_while_holding_an_entity_loses_no_turn(redis_server, pg_migrated, sink,
                                                                 workers):
    # The holder is mid-flight when its worker dies: another worker reaps it, it enters again as
    # the holder (its id), and the updates behind it follow in order.
    sink.script("/app", ["hang"])
    routes = route("ordered", Q, sink.url("/app"), 'order_key = "events[].meta.href"')
    w1 = workers(config_text(redis_server, pg_migrated, routes, worker_id="w1"), name="w1")
    r = redis_server.client()
    ids = [push(r, batch(event("A", seq=s))) for s in range(4)]
    wait_until(lambda: len(sink.received("/app")) == 1, 10, what="the holder in flight")
    wait_until(lambda: sum(r.llen(k) for k in r.scan_iter(f"hookq:{{{Q}}}:order:*:w")) == 3, 10,
               what="three waiting behind it")
    w1.kill9()
    workers(config_text(redis_server, pg_migrated, routes, worker_id="w2"), name="w2")
    wait_until(lambda: settled(pg_migrated, ids), 30, what="rows settled")
    got = [q.headers["x-request-id"] for q in sink.received("/app")]
    assert got == [ids[0]] + ids, got  # the hung first try, then all four in order
    assert not list(r.scan_iter(f"hookq:{{{Q}}}:order:*"))


def test_concurrent_updates_coalesce_into_one_or_two_deliveries(redis_server, pg_migrated, sink,
                                                                workers):
    sink.set("/app", "sleep:500")
    routes = route("ordered", Q, sink.url("/app"),
                   'order_key = "events[].meta.href"\ncoalesce_window = "10s"')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    pipe = r.pipeline(transaction=False)
    ids = []
    for seq in range(10):
        rid, env = envelope.make(Q, body=batch(event("P", seq=seq)))
        ids.append(rid)
        pipe.lpush(f"hookq:{{{Q}}}:queue", env)
    pipe.execute()
    wait_until(lambda: settled(pg_migrated, ids), 30, what="all 10 settled")
    got = sink.received("/app")
    assert 1 <= len(got) <= 2, [q.headers["x-request-id"] for q in got]
    last = got[-1]
    # The application gets the newest state...
    assert json.loads(last.body)["events"][0]["updatedFields"] == ["field9"]
    assert last.headers["x-request-id"] == ids[9]
    # ... and is told which updates it stands for; together the deliveries cover all ten.
    covered = set()
    for q in got:
        covered.add(q.headers["x-request-id"])
        if "x-hookq-coalesced-ids" in q.headers:
            merged = q.headers["x-hookq-coalesced-ids"].split(",")
            assert int(q.headers["x-hookq-coalesced-count"]) == len(merged)
            covered.update(merged)
    assert covered == set(ids)
    st = event_status(pg_migrated)
    assert all(st[i] == "delivered" for i in ids)
    sent = {q.headers["x-request-id"] for q in got}
    for i in ids:
        [(status, err)] = rows(pg_migrated, "SELECT status, last_error FROM webhook_routes "
                               "WHERE event_id = %s", i)
        if i in sent:
            assert status == "delivered"
        else:
            assert status == "coalesced" and err == f"merged into {ids[9]}"
    # Only the deliveries that went out have attempts.
    [(n,)] = rows(pg_migrated, "SELECT count(*) FROM delivery_attempts")
    assert n == len(got)


def test_moysklad_batches_split_then_ordered_per_entity(redis_server, pg_migrated, sink,
                                                        workers):
    # The MoySklad setup: each event on its own, one product at a time, bursts merged.
    sink.set("/app", "sleep:300")
    routes = route("products", Q, sink.url("/app"),
                   'split = "events"\norder_key = "events[].meta.href"\n'
                   'coalesce_window = "10s"\nmatch = { "events[].meta.type" = "product" }')
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    parents = [push(r, batch(event("X", seq=i), event("Y", seq=i))) for i in range(5)]
    wait_until(lambda: all(event_status(pg_migrated).get(p) == "delivered" for p in parents), 20,
               what="batches split")
    wait_until(lambda: rows(pg_migrated, "SELECT count(*) FROM webhook_events WHERE status "
                            "<> 'delivered'")[0][0] == 0 and
               rows(pg_migrated, "SELECT count(*) FROM webhook_events")[0][0] == 15,
               30, what="5 batches and their 10 events delivered")
    by = deliveries_by_entity(sink, "/app")
    for ent in ("X", "Y"):
        seqs = [json.loads(q.body)["events"][0]["updatedFields"][0] for _, q in by[ent]]
        assert 1 <= len(seqs) < 5, seqs  # merged: fewer deliveries than updates
        assert seqs == sorted(seqs) and seqs[-1] == "field4"  # in order, ending on the newest


def test_bad_batch_settings_stop_the_worker_naming_the_line(redis_server, pg_migrated, tmp_path):
    cases = [
        ('coalesce_window = "1s"', "'coalesce_window' needs 'order_key'"),
        ('split = "events[]"', "'split' must name the body's array"),
        ('order_key = "events..x"', "'order_key' is not a field path"),
        ('order_key = "a"\ncoalesce_window = "2h"', "coalesce_window"),
    ]
    for extra, msg in cases:
        cfg = tmp_path / "w.toml"
        cfg.write_text(config_text(redis_server, pg_migrated,
                                   route("r", Q, "http://127.0.0.1:9/x", extra)))
        p = subprocess.run([harness.WORKER_PATH, "--config", str(cfg), "--check-config"],
                           capture_output=True, text=True, env=worker_env(), timeout=30)
        assert p.returncode != 0, extra
        out = p.stdout + p.stderr
        assert msg in out and "w.toml:" in out, out
