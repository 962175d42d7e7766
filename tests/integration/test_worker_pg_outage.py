"""PostgreSQL stopped for 20 s mid-run: nothing is acked while it is away, nothing is lost, and the
worker resumes by itself when it comes back."""

import time

from worker_fixtures import (config_text, enqueue, event_status, route, rows, wait_until,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)

Q = "pgout"


def test_postgres_down_20s(redis_server, pg_migrated, sink, workers):
    r = redis_server.client()
    config = config_text(redis_server, pg_migrated, route("r", Q, sink.url("/in")),
                         worker_extra="max_inflight = 300")
    ids = enqueue(r, Q, 3_000)
    w = workers(config)
    wait_until(lambda: len(sink.received("/in")) >= 300, 30, what="deliveries under way")

    pg_migrated.stop("immediate")
    t0 = time.monotonic()
    time.sleep(2)
    # Claiming stops at max_inflight: the backlog stays in Redis, unacked work in inflight.
    inflight = r.llen("hookq:{pgout}:inflight:w1")
    queued = r.llen("hookq:{pgout}:queue")
    assert 0 < inflight <= 300
    assert queued + inflight + len(ids) - 3_000 >= 0
    delivered_at_stop = len(sink.received("/in"))
    while time.monotonic() - t0 < 20:
        time.sleep(1)
        assert w.proc.poll() is None, "the worker must ride out the outage"
        assert r.llen("hookq:{pgout}:inflight:w1") > 0, "nothing may be acked while PG is down"
    assert len(sink.received("/in")) <= delivered_at_stop + 300
    assert w.find("postgresql connection lost: not acking until it is back") or \
        w.find("postgresql unavailable: not acking until it is back")

    pg_migrated.start()
    wanted = set(ids)

    def recorded():
        st = event_status(pg_migrated)
        return sum(1 for i in wanted if st.get(i) == "delivered")

    try:
        wait_until(lambda: recorded() == len(wanted), 90, interval=0.5,
                   what="every id recorded after the outage")
    except AssertionError:
        print("recorded", recorded(), "inflight", r.llen("hookq:{pgout}:inflight:w1"),
              "queue", r.llen("hookq:{pgout}:queue"), "sink", len(sink.received("/in")))
        print("\n".join(str(l) for l in w.lines()[-20:]))
        raise
    assert wanted <= sink.ids("/in")
    wait_until(lambda: r.llen("hookq:{pgout}:inflight:w1") == 0 and
               r.llen("hookq:{pgout}:queue") == 0, 10)
    assert rows(pg_migrated, "SELECT count(*) FROM webhook_events")[0][0] == 3_000
    assert w.stop() == 0
