"""Two workers on one queue share it safely: every webhook delivered once, recorded once, the work
spread over both, and a clean SIGTERM drain of both."""

import collections

from worker_fixtures import (config_text, enqueue, event_status, route, rows, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "shared"


def test_two_workers_one_queue(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    ids = enqueue(r, Q, 4_000)
    ws = [workers(config_text(redis_server, pg_migrated, route("r", Q, sink.url("/in")),
                              worker_id=wid, worker_extra="max_inflight = 200\nclaim_batch = 50"),
                  name=wid) for wid in ("w1", "w2")]
    wanted = set(ids)

    def recorded():
        st = event_status(pg_migrated)
        return sum(1 for i in wanted if st.get(i) == "delivered")

    wait_until(lambda: recorded() == len(wanted), 90, interval=0.5, what="every id recorded")
    got = collections.Counter(q.headers["x-request-id"] for q in sink.received("/in"))
    assert set(got) == wanted
    assert max(got.values()) == 1, "an atomic claim never hands one webhook to both workers"
    by_worker = dict(rows(pg_migrated, "SELECT worker_id, count(*) FROM delivery_attempts "
                                       "GROUP BY worker_id"))
    assert set(by_worker) == {"w1", "w2"} and sum(by_worker.values()) == 4_000
    assert min(by_worker.values()) > 400, by_worker
    for w in ws:
        assert w.stop() == 0
        assert w.find("stopped")
    # A clean stop deregisters: nothing left for a reaper.
    assert r.smembers("hookq:{shared}:workers") == set()
    assert r.exists("hookq:worker:w1", "hookq:worker:w2") == 0


def test_sigterm_drains_in_flight(redis_server, pg_migrated, sink, workers):
    """SIGTERM while deliveries are in flight: they complete, are recorded and acked, exit 0."""
    r = redis_server.client()
    sink.set("/slow", "sleep:1500")
    w = workers(config_text(redis_server, pg_migrated, route("r", Q, sink.url("/slow")),
                            worker_extra="max_inflight = 50"))
    ids = enqueue(r, Q, 200)
    wait_until(lambda: len(sink.received("/slow")) >= 20, 10, what="deliveries in flight")
    assert w.stop() == 0
    assert w.find("draining") and w.find("stopped")
    in_flight_at_stop = set(sink.ids("/slow"))
    st = event_status(pg_migrated)
    assert all(st.get(i) == "delivered" for i in in_flight_at_stop)
    assert r.llen("hookq:{shared}:inflight:w1") == 0
    # What was not claimed stays queued for the next worker.
    assert r.llen("hookq:{shared}:queue") == len(ids) - len(in_flight_at_stop)
