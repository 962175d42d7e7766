"""Large webhooks at the edge: a batch of 8 KB or more, or a lone webhook of 12 KB or more
(ngx_module/redis_link.h, kGuardedBytes), is ingested by the guarded transaction
(shared/redis_keys.h, kIngestGuarded), whose envelopes go in by LPUSHX and never enter Lua, since
Redis's Lua hashes every byte it is handed. Everything else is as with the scripts: the envelope
stored byte for byte, duplicates answered 200 with the first id, the depth limit and a queue key
of the wrong type refused before any write, a flushed script cache survived, maxmemory refused
with its cause logged, and a burst in arrival order. Each test also checks that the transaction
is what ran (LPUSHX and EXEC in INFO commandstats), and that no stage key is left. The
equivalence of its replies and writes with kIngest is test_ingest_batch_equivalence.py's."""

import os
import time

import pytest

import edge
import harness
from test_edge_group_commit import Conns, request_bytes

HTTP = """
    hookq_redis {redis};
    hookq_redis_timeout 2s;
    hookq_redis_connect_timeout 500ms;
    server {
        listen 127.0.0.1:{port};
        client_body_buffer_size 1m;
        client_max_body_size 1m;
        location = /hooks/open { hookq none; hookq_dedup_key $http_x_request_id; }
        location = /hooks/small {
            hookq none; hookq_queue small; hookq_dedup_key $http_x_request_id; hookq_max_queue_depth 3;
        }
        location = /hookq/status { hookq_status; }
    }
"""

QUEUE = "hookq:{none}:queue"
BIG = 20_000


def big_body(tag):
    return (tag.encode() + b":" + os.urandom(BIG // 2).hex().encode())[:BIG]


def calls(client, name):
    return client.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0)


def post(nginx, path, key, body):
    return edge.post(nginx.port, path, body, {"X-Request-ID": key})


def no_stage_left(client):
    return client.keys("hookq:*:stage") == []


@pytest.fixture
def stack(redis_server):
    nginx = harness.Nginx(HTTP, redis_port=redis_server.port)
    deadline = time.monotonic() + 10
    while post(nginx, "/hooks/open", os.urandom(6).hex(), b"ready")[0] != 202:
        assert time.monotonic() < deadline, nginx.log()
        time.sleep(0.05)
    redis_server.client().delete(QUEUE)
    yield nginx, redis_server
    nginx.close()


def test_a_large_webhook_is_stored_whole_and_deduplicated(stack):
    nginx, redis = stack
    client = redis.client()
    client.lpush(QUEUE, b"older")
    execs = calls(client, "exec")
    body = big_body("one")
    status, headers, _ = post(nginx, "/hooks/open", "large-1", body)
    assert status == 202, nginx.log()
    assert calls(client, "exec") == execs + 1 and calls(client, "lpushx") >= 1
    rid = headers["x-request-id"]
    newest, older = client.lrange(QUEUE, 0, -1)
    assert older == b"older"
    env = edge.decode_envelope(newest)
    assert (env["request_id"], env["dedup_key"], env["body"]) == (rid, b"large-1", body)
    assert client.get("hookq:{none}:dedup:large-1") == rid.encode()
    assert client.ttl("hookq:{none}:dedup:large-1") > 0

    status, headers, _ = post(nginx, "/hooks/open", "large-1", big_body("again"))
    assert status == 200 and headers["x-request-id"] == rid
    assert headers["idempotent-replayed"] == "true"
    assert client.llen(QUEUE) == 2
    assert no_stage_left(client)


def test_a_new_queue_is_made_and_an_all_refused_turn_leaves_none(stack):
    """The queue key does not exist yet: the transaction's marker stands for it while the envelope
    is pushed, and is gone after. A duplicate into a queue that does not exist leaves none."""
    nginx, redis = stack
    client = redis.client()
    client.delete(QUEUE)
    client.set("hookq:{none}:dedup:seen", "0190aaaa-0000-7000-8000-000000000000")
    status, headers, _ = post(nginx, "/hooks/open", "seen", big_body("dup"))
    assert status == 200 and headers["x-request-id"] == "0190aaaa-0000-7000-8000-000000000000"
    assert not client.exists(QUEUE) and no_stage_left(client)
    status, _, _ = post(nginx, "/hooks/open", "fresh", big_body("fresh"))
    assert status == 202
    [stored] = client.lrange(QUEUE, 0, -1)
    assert edge.decode_envelope(stored)["dedup_key"] == b"fresh"
    assert no_stage_left(client)


def test_the_depth_limit_and_a_wrong_type_refuse_before_any_write(stack):
    nginx, redis = stack
    client = redis.client()
    queue = "hookq:{small}:queue"
    statuses = [post(nginx, "/hooks/small", f"deep-{i}", big_body(str(i)))[0] for i in range(5)]
    assert statuses == [202, 202, 202, 503, 503]
    assert client.llen(queue) == 3
    assert not client.exists("hookq:{small}:dedup:deep-3")
    client.delete(queue)
    client.set(queue, "not a list")
    status, headers, _ = post(nginx, "/hooks/small", "wt", big_body("wt"))
    assert status == 503 and headers["retry-after"] == "5"
    assert client.get(queue) == b"not a list" and not client.exists("hookq:{small}:dedup:wt")
    assert f'queue key "{queue}" holds a string' in nginx.log()
    assert no_stage_left(client)


def test_a_flushed_script_cache_pushes_nothing_twice(stack):
    """After SCRIPT FLUSH the transaction's two calls fail (NOSCRIPT) and LPUSHX finds no stage:
    nothing was pushed, and the edge sends it again with EVAL. One envelope, one 202."""
    nginx, redis = stack
    client = redis.client()
    client.script_flush()
    evals = calls(client, "eval")
    status, headers, _ = post(nginx, "/hooks/open", "after-flush", big_body("flush"))
    assert status == 202, nginx.log()
    assert calls(client, "eval") == evals + 2
    [stored] = client.lrange(QUEUE, 0, -1)
    assert edge.decode_envelope(stored)["request_id"] == headers["x-request-id"]
    status, _, _ = post(nginx, "/hooks/open", "after-flush-2", big_body("flush 2"))
    assert status == 202 and client.llen(QUEUE) == 2
    assert no_stage_left(client)


def test_maxmemory_is_503_with_its_cause_and_leaves_nothing(stack):
    nginx, redis = stack
    client = redis.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        status, _, _ = post(nginx, "/hooks/open", "oom", big_body("oom"))
        assert status == 503
        assert "ingest failed: OOM command not allowed" in nginx.log()
        assert client.llen(QUEUE) == 0 and not client.exists("hookq:{none}:dedup:oom")
    finally:
        client.config_set("maxmemory", "0")
    assert post(nginx, "/hooks/open", "oom", big_body("oom"))[0] == 202


def test_a_burst_is_answered_and_queued_in_arrival_order(stack):
    """Twelve 3 KB requests in one turn, keys repeated inside it: split at 16 KB into guarded
    transactions, the first of each key 202 and stored, in arrival order, the others 200 naming
    it."""
    nginx, redis = stack
    client = redis.client()
    conns = Conns(nginx, 12)
    try:
        client.delete(QUEUE)
        execs = calls(client, "exec")
        keys = [f"burst-{i % 8}" for i in range(12)]
        bodies = [big_body(f"b{i}")[:3000] for i in range(12)]
        answers = conns.burst(nginx, [request_bytes("/hooks/open", k, b)
                                      for k, b in zip(keys, bodies)])
        assert calls(client, "exec") - execs >= 2
    finally:
        conns.close()
    assert [a[0] for a in answers] == [202] * 8 + [200] * 4
    for i in range(8, 12):
        assert answers[i][1]["x-request-id"] == answers[i - 8][1]["x-request-id"]
    stored = [edge.decode_envelope(e) for e in reversed(client.lrange(QUEUE, 0, -1))]
    assert [e["body"] for e in stored] == bodies[:8]
    assert [e["request_id"] for e in stored] == [a[1]["x-request-id"] for a in answers[:8]]
    assert no_stage_left(client)
