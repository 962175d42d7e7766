"""A route may wait up to 5 minutes for an application that processes inline: a delivery that
takes longer than the old 30 s ceiling is delivered once, not timed out and retried, while the
other routes' deliveries go on meanwhile."""

import time

import pytest

import envelope
import harness
from worker_fixtures import (config_text, event_status, route, rows, wait_until,  # noqa: F401
                             pg_migrated, sink, workers)

Q = "github"


@pytest.mark.skipif(harness.SANITIZE, reason="a 31 s delivery; the behaviour is not memory-bound")
def test_a_slow_inline_application_gets_its_long_timeout(redis_server, pg_migrated, sink, workers):
    sink.set("/slow", "sleep:31000")
    cfg = config_text(redis_server, pg_migrated,
                      route("slow", Q, sink.url("/slow"), 'timeout = "45s"')
                      + route("fast", "other", sink.url("/fast")))
    workers(cfg)
    r = redis_server.client()
    rid, env = envelope.make(Q, body=b'{"n":1}')
    r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: r.llen(f"hookq:{{{Q}}}:queue") == 0, 10, what="the slow one claimed")
    # The loop is not held by the slow transfer.
    other, env2 = envelope.make("other", body=b'{"n":2}')
    r.lpush("hookq:{other}:queue", env2)
    wait_until(lambda: event_status(pg_migrated).get(other) == "delivered", 10,
               what="the other route delivered while the slow one waits")
    assert event_status(pg_migrated).get(rid) != "delivered"
    wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered", 60, what="delivered")
    [req] = sink.received("/slow")
    assert req.headers["x-timeout-ms"] == "45000"
    [(attempts, duration_ms, outcome)] = rows(
        pg_migrated, "SELECT attempt, duration_ms, outcome FROM delivery_attempts "
        "WHERE event_id = %s", rid)
    assert (attempts, outcome) == (1, "delivered") and duration_ms >= 31000
