"""kill -9 of a worker mid-delivery with 10,000 queued: every request id is delivered at least once
and recorded, none is lost — whether the inflight list is reaped by another worker (heartbeat
expired) or returned by the same worker id at its next start."""

import time

from worker_fixtures import (config_text, enqueue, event_status, route, rows, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "crash"


def cfg(redis, pg, sink, worker_id):
    return config_text(redis, pg, route("r", Q, sink.url("/in")), worker_id=worker_id,
                       worker_extra="max_inflight = 500\nclaim_batch = 100")


def assert_all_recorded(pg, sink, ids):
    wanted = set(ids)
    wait_until(lambda: wanted <= sink.ids("/in"), 120, interval=0.5,
               what="every id delivered to the sink")

    def recorded():
        st = event_status(pg)
        return sum(1 for i in wanted if st.get(i) == "delivered")

    wait_until(lambda: recorded() == len(wanted), 60, interval=0.5, what="every id recorded")


def test_kill9_10000_queued_reaped_by_other_worker(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    ids = enqueue(r, Q, 10_000)
    w1 = workers(cfg(redis_server, pg_migrated, sink, "w1"), name="w1")
    wait_until(lambda: len(sink.received("/in")) >= 1500, 60, what="deliveries under way")
    w1.kill9()
    in_w1 = r.llen("hookq:{crash}:inflight:w1")
    assert in_w1 > 0, "the kill should have left claimed work behind"
    assert r.llen("hookq:{crash}:queue") > 0

    workers(cfg(redis_server, pg_migrated, sink, "w2"), name="w2")
    # w1's heartbeat (3 s TTL) expires and w2's reaper returns its inflight list to the queue.
    wait_until(lambda: r.llen("hookq:{crash}:inflight:w1") == 0, 20, what="w1 reaped")
    assert_all_recorded(pg_migrated, sink, ids)
    wait_until(lambda: r.llen("hookq:{crash}:queue") == 0 and
               r.llen("hookq:{crash}:inflight:w2") == 0, 20, what="all acked")
    assert rows(pg_migrated, "SELECT count(*) FROM webhook_events")[0][0] == 10_000
    assert b"w1" not in r.smembers("hookq:{crash}:workers")


def test_kill9_same_id_returns_own_inflight_at_start(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    ids = enqueue(r, Q, 2_000)
    sink.set_default("hang")  # deliveries stuck mid-flight when the kill comes
    config = cfg(redis_server, pg_migrated, sink, "w1").replace(
        '[routes.retry]', '[routes.retry]')  # same config both times
    w = workers(config, name="w1")
    wait_until(lambda: r.llen("hookq:{crash}:inflight:w1") == 500, 20, what="inflight full")
    time.sleep(0.5)
    w.kill9()
    assert r.llen("hookq:{crash}:inflight:w1") == 500
    sink.set_default("200")
    w.start()
    assert w.find("returned leftover inflight to queue")
    assert_all_recorded(pg_migrated, sink, ids)
    wait_until(lambda: r.llen("hookq:{crash}:inflight:w1") == 0, 10)
    assert w.stop() == 0
