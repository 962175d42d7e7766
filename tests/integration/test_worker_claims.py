"""The claim protocol under faults: a claim whose answer is lost, a drain that outlasts the
heartbeat TTL next to another worker, and the byte budget on what a worker holds."""

import signal
import time

from worker_fixtures import (config_text, enqueue, event_status, route, rows, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "claims"
INFLIGHT = "hookq:{claims}:inflight:"


def cfg(redis, pg, sink, worker_id="w1", extra="", redis_extra="", path="/in"):
    text = config_text(redis, pg, route("r", Q, sink.url(path)), worker_id=worker_id,
                       worker_extra=extra)
    return text.replace("[redis]\n", "[redis]\n" + redis_extra + "\n", 1)


def all_delivered(pg, sink, ids, timeout):
    wanted = set(ids)
    wait_until(lambda: wanted <= sink.ids("/in"), timeout, interval=0.2,
               what="every id delivered to the sink")

    def recorded():
        st = event_status(pg)
        return sum(1 for i in wanted if st.get(i) == "delivered")

    wait_until(lambda: recorded() == len(wanted), timeout, interval=0.2, what="every id recorded")


def stopped_line(w):
    lines = w.find("stopped")
    assert lines, w.lines()
    return lines[-1]


def test_claim_lost_while_redis_stopped_is_settled(redis_server, pg_migrated, sink, workers):
    """Redis stopped longer than the worker's Redis timeout in the middle of claiming: the claim
    sent then is answered to nobody but runs when Redis resumes. What it moved must still be
    delivered, by this worker, within seconds, and leave nothing in inflight."""
    r = redis_server.client()
    ids = enqueue(r, Q, 3000)
    # One element per claim and room for all: the claim thread does nothing but claim for a while.
    w = workers(cfg(redis_server, pg_migrated, sink,
                    extra="max_inflight = 5000\nclaim_batch = 1",
                    redis_extra='timeout = "300ms"'), name="w1")
    wait_until(lambda: r.llen(INFLIGHT + "w1") >= 100, 20, interval=0.002, what="claiming")
    redis_server.pause()
    time.sleep(1.5)  # five times the worker's Redis timeout
    redis_server.resume()
    all_delivered(pg_migrated, sink, ids, 30)
    wait_until(lambda: r.llen(INFLIGHT + "w1") == 0 and
               r.llen("hookq:{claims}:claiming:w1") == 0, 10, what="inflight empty")
    assert r.llen("hookq:{claims}:queue") == 0
    assert w.find("claim sent without an answer; settling it before claiming more on its queue"), \
        "the pause should have caught a claim in flight"
    assert w.find("claim without an answer settled")
    assert w.stop() == 0
    assert stopped_line(w)["left_inflight"] == 0


def test_stop_reports_what_redis_still_holds(redis_server, pg_migrated, sink, workers):
    """left_inflight is read from Redis: an element this process holds no Job for still counts."""
    r = redis_server.client()
    w = workers(cfg(redis_server, pg_migrated, sink), name="w1")
    r.lpush(INFLIGHT + "w1", b"stranded")
    assert w.stop() == 0
    line = stopped_line(w)
    assert line["left_inflight"] == 1
    assert line["left_in_process"] == 0
    # Not deregistered: the reaper (or this id's next start) returns it to the queue.
    assert b"w1" in r.smembers("hookq:{claims}:workers")


def test_draining_worker_is_not_reaped(redis_server, pg_migrated, sink, workers):
    """A drain that outlasts the heartbeat TTL (3 s) while another worker's reaper runs every
    500 ms: the draining worker still holds its inflight list, so nothing is reaped and no request
    id reaches the sink twice."""
    r = redis_server.client()
    sink.set("/in", "sleep:4500")
    w1 = workers(cfg(redis_server, pg_migrated, sink, "w1"), name="w1")
    ids = enqueue(r, Q, 5)
    wait_until(lambda: len(sink.received("/in")) == 0 and r.llen(INFLIGHT + "w1") == 5, 10,
               what="w1 holds all five")
    w2 = workers(cfg(redis_server, pg_migrated, sink, "w2"), name="w2")
    t0 = time.monotonic()
    assert w1.stop(timeout=30) == 0
    # The drain took longer than the TTL: the heartbeat had every chance to expire.
    assert time.monotonic() - t0 > 3.5
    assert stopped_line(w1)["left_inflight"] == 0
    all_delivered(pg_migrated, sink, ids, 10)
    assert not w2.find("reaped inflight of dead worker")
    per_id = {}
    for req in sink.received("/in"):
        rid = req.headers.get("x-request-id")
        per_id[rid] = per_id.get(rid, 0) + 1
    assert per_id == {i: 1 for i in ids}
    assert r.llen(INFLIGHT + "w1") == 0 and r.llen(INFLIGHT + "w2") == 0
    assert r.exists("hookq:worker:w1", "hookq:{claims}:heartbeat:w1") == 0
    assert w2.stop() == 0


def test_byte_budget_bounds_what_is_held(redis_server, pg_migrated, sink, workers):
    """max_inflight_bytes, not max_inflight, is the binding limit with large bodies: what the worker
    holds never exceeds the budget plus one element, and everything is still delivered."""
    r = redis_server.client()
    budget = 100 * 1024
    body = b'{"blob":"' + b"x" * (20 * 1024) + b'"}'
    ids = enqueue(r, Q, 40, body=body)
    size = max(len(e) for e in r.lrange("hookq:{claims}:queue", 0, -1))
    sink.set("/in", "sleep:200")  # deliveries take a while: the backlog presses on the budget
    w = workers(cfg(redis_server, pg_migrated, sink,
                    extra=f"max_inflight = 1000\nmax_inflight_bytes = {budget}"), name="w1")
    most = 0
    deadline = time.monotonic() + 60
    while not set(ids) <= sink.ids("/in") and time.monotonic() < deadline:
        most = max(most, r.llen(INFLIGHT + "w1"))
        time.sleep(0.01)
    all_delivered(pg_migrated, sink, ids, 30)
    assert most <= budget // size + 1, (most, size)
    assert w.stop() == 0
    peak = stopped_line(w)["peak_in_process_bytes"]
    # Reached (the budget was what held claiming back), never passed by more than one element.
    assert budget <= peak <= budget + size, (peak, budget, size)


def test_element_larger_than_the_budget_is_delivered(redis_server, pg_migrated, sink, workers):
    """One element at a time, each larger than the whole budget: never stuck, never two held."""
    r = redis_server.client()
    ids = enqueue(r, Q, 3, body=b"y" * 4096)
    size = max(len(e) for e in r.lrange("hookq:{claims}:queue", 0, -1))
    w = workers(cfg(redis_server, pg_migrated, sink, extra="max_inflight_bytes = 1024"),
                name="w1")
    all_delivered(pg_migrated, sink, ids, 20)
    assert w.stop() == 0
    assert size <= stopped_line(w)["peak_in_process_bytes"] <= size + 1024


def test_drain_ends_before_an_unrenewed_heartbeat_expires(redis_server, pg_migrated, sink,
                                                           workers):
    """Redis stops answering during a drain: the heartbeat cannot be renewed, so the drain must end
    before it expires (3 s) rather than run to drain_timeout (20 s) delivering work that another
    worker may already have requeued. What it leaves is requeued and delivered."""
    r = redis_server.client()
    sink.set("/in", "hang")
    w1 = workers(cfg(redis_server, pg_migrated, sink, "w1", redis_extra='timeout = "500ms"'),
                 name="w1")
    ids = enqueue(r, Q, 3)
    wait_until(lambda: len(sink.received("/in")) == 3, 10, what="three deliveries hanging")
    w1.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: w1.find("draining"), 5, what="w1 draining")
    redis_server.pause()
    try:
        t0 = time.monotonic()
        wait_until(lambda: w1.proc.poll() is not None, 15, what="w1 exit")
        elapsed = time.monotonic() - t0
    finally:
        redis_server.resume()
    assert w1.proc.returncode == 0
    assert w1.find("heartbeat not renewed in time; unfinished webhooks stay in inflight for "
                   "redelivery")
    assert elapsed < 10, elapsed  # the drain deadline (20 s) was not what ended it
    sink.set("/in", "200")
    workers(cfg(redis_server, pg_migrated, sink, "w2"), name="w2")
    wait_until(lambda: set(ids) <= {q.headers.get("x-request-id") for q in
                                    sink.received("/in")[3:]}, 30, what="redelivered by w2")
    all_delivered(pg_migrated, sink, ids, 30)


def test_ack_that_removed_nothing_is_counted_and_logged(redis_server, pg_migrated, sink, workers):
    """While a delivery is under way its element is taken out of the worker's inflight list, as a
    reaper would after a lapsed heartbeat: the ack that follows removes nothing. That must not pass
    unnoticed: a warning names the request id, and the stop line and /metrics count it."""
    r = redis_server.client()
    sink.set("/in", "sleep:1500")
    w = workers(cfg(redis_server, pg_migrated, sink), name="w1")
    ids = enqueue(r, Q, 1)
    wait_until(lambda: sink.ids("/in") or r.llen(INFLIGHT + "w1") == 1, 10, interval=0.01,
               what="claimed")
    wait_until(lambda: r.llen(INFLIGHT + "w1") == 1, 10, interval=0.01, what="in inflight")
    # Taken away behind the worker's back (to a list nobody consumes, so it is not redelivered).
    assert r.lmove(INFLIGHT + "w1", "hookq:{claims}:elsewhere", "RIGHT", "LEFT")
    msg = ("ack removed nothing: the webhook left inflight before its outcome was recorded and "
           "may be delivered again")
    wait_until(lambda: w.find(msg), 15, what="the warning")
    line = w.find(msg)[-1]
    assert line["request_id"] == ids[0]
    assert line["total"] == 1
    assert w.stop() == 0
    assert stopped_line(w)["acks_removed_nothing"] == 1


def test_retry_ack_sends_the_envelope_once_and_keeps_it_whole(redis_server, pg_migrated, sink,
                                                              workers):
    """A retry's ack moves the element from inflight into the retry set in one script, with the
    envelope named once; the record in the retry set still carries the whole envelope."""
    r = redis_server.client()
    sink.script("/in", ["500"])
    w = workers(cfg(redis_server, pg_migrated, sink), name="w1")
    ids = enqueue(r, Q, 1)
    all_delivered(pg_migrated, sink, ids, 30)
    stats = r.info("commandstats")
    # The retry went through the script (EVAL/EVALSHA), never as a MULTI of ZADD + LREM that
    # carries the envelope twice.
    assert "cmdstat_multi" not in stats, stats["cmdstat_multi"]
    assert "cmdstat_evalsha" in stats or "cmdstat_eval" in stats
    assert len(sink.ids("/in")) == 1 and len([q for q in sink.requests if q.path == "/in"]) == 2
    assert w.stop() == 0


def test_inflight_list_of_an_unregistered_worker_is_swept(redis_server, pg_migrated, sink,
                                                           workers):
    """An inflight (or landing) list whose owner is not in the workers set and has no heartbeat:
    SMEMBERS cannot find it, the reaper's sweep (SCAN) must, and the webhooks get delivered."""
    r = redis_server.client()
    ids = enqueue(r, Q, 3)
    for _ in ids[:2]:
        assert r.lmove("hookq:{claims}:queue", INFLIGHT + "ghost", "RIGHT", "LEFT")
    assert r.lmove("hookq:{claims}:queue", "hookq:{claims}:claiming:ghost", "RIGHT", "LEFT")
    assert not r.sismember("hookq:{claims}:workers", "ghost")
    w = workers(cfg(redis_server, pg_migrated, sink), name="w1")
    all_delivered(pg_migrated, sink, ids, 30)
    assert r.llen(INFLIGHT + "ghost") == 0 and r.llen("hookq:{claims}:claiming:ghost") == 0
    line = w.find("reaped inflight of dead worker")[-1]
    assert line["dead_worker"] == "ghost" and line["count"] == 3
    assert w.stop() == 0
