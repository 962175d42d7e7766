"""A restarted Redis answers every command with LOADING until its dataset is read back. That is
expected and ends by itself: the worker says so once, at warn, waits quietly, and claims again
once Redis has loaded."""

import redis as redis_py

import harness
from worker_fixtures import (config_text, enqueue, route, wait_until,  # noqa: F401 (fixtures)
                             pg_migrated, sink, workers)

Q = "github"
WAITING = "Redis is loading its dataset; waiting"


def test_loading_is_waited_out_quietly(pg_migrated, sink, workers):
    # A dataset slow to load: every key costs a delay, and Redis answers clients (LOADING) often.
    rs = harness.RedisServer(extra_args=["--key-load-delay", "200",
                                         "--loading-process-events-interval-bytes", "1024"])
    try:
        w = workers(config_text(rs, pg_migrated, route("app", Q, sink.url("/app"))))
        c = rs.client()
        pipe = c.pipeline(transaction=False)
        for i in range(5000):
            pipe.set(f"filler:{i}", "x" * 64)
        pipe.execute()
        c.save()
        rs.stop()
        rs.start()
        # The condition under test did happen: Redis is loading now.
        try:
            c.ping()
            raise AssertionError("Redis answered before loading its dataset; make it slower")
        except redis_py.exceptions.BusyLoadingError:
            pass
        wait_until(lambda: w.find(WAITING), 20, what="the loading warning")
        wait_until(lambda: _loaded(c), 60, interval=0.2, what="Redis loaded")
        [rid] = enqueue(c, Q)
        wait_until(lambda: rid in sink.ids("/app"), 20, what="delivery after loading")
        assert len(w.find(WAITING)) == 1
        assert [l["level"] for l in w.find(WAITING)] == ["warning"]
        assert w.find("claim script failed") == []
        assert w.find("Redis has loaded its dataset; claiming again")
        assert w.stop() == 0
    finally:
        rs.close()


def _loaded(c):
    try:
        return c.ping()
    except redis_py.exceptions.BusyLoadingError:
        return False
