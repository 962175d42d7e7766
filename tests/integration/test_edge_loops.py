"""Loop and storm detection at the edge: hookq_loop_limit counts each entity (hookq_loop_key, by
default the body's hash) in the one ingest script call the request makes anyway. More than N of
one entity in the window lands in hookq:{Q}:loops (and on the status page); with
`hookq_loop_action hold` the extra ones go to hookq:{Q}:held instead of the queue, still answered
2xx. Locations without the directives run the script without its loop part."""

import hashlib
import json
import subprocess

import pytest

import edge
import harness
from worker_fixtures import (config_text, route, rows, wait_until, worker_env,  # noqa: F401
                             pg_migrated, sink, workers)

HTTP = """
    hookq_redis {redis};
    hookq_json_var $ms_href /events/0/meta/href;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/count {
            hookq none; hookq_queue lc; hookq_source ms_count;
            hookq_loop_key $ms_href; hookq_loop_limit 20 1m;
        }
        location = /hooks/hold {
            hookq none; hookq_queue lh; hookq_source ms_hold;
            hookq_loop_key $ms_href; hookq_loop_limit 20 1m; hookq_loop_action hold;
        }
        location = /hooks/content {
            hookq none; hookq_queue lb; hookq_dedup_key $http_x_request_id; hookq_loop_limit 3 1m;
        }
        location = /hooks/plain { hookq none; hookq_queue lp; }
        location = /hookq/status { hookq_status; }
    }
"""


@pytest.fixture(scope="module")
def stack():
    redis = harness.RedisServer()
    nginx = harness.Nginx(HTTP, redis_port=redis.port)
    yield nginx, redis
    nginx.close()
    redis.close()


def update(href, n):
    """A MoySklad-like webhook: one product UPDATE; `n` makes each body (and dedup key) distinct."""
    return json.dumps({"auditContext": {"uid": "app@acme", "moment": f"2026-11-30 18:00:{n:02d}"},
                       "events": [{"meta": {"type": "product", "href": href},
                                   "action": "UPDATE", "accountId": "acc-1"}],
                       "seq": n}).encode()


def send(nginx, path, body):
    status, headers, _ = edge.post(nginx.port, path, body, {"Content-Type": "application/json"})
    assert status in (200, 202), (status, nginx.log()[-2000:])
    return status, headers


def loop_counters(port):
    _, _, text = edge.post(port, "/hookq/status", method="GET")
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("hookq_edge_loop_total{"):
            labels, value = line[len("hookq_edge_loop_total{"):].split("} ")
            parts = dict(p.split("=", 1) for p in labels.split(","))
            out[(parts["source"].strip('"'), parts["action"].strip('"'))] = int(value)
    return out


def only_member(client, key):
    members = client.zrange(key, 0, -1, withscores=True)
    assert len(members) == 1, members
    return members[0]


HREF = "https://api.moysklad.ru/api/remap/1.2/entity/product/7944ef04-f831-11e5-7a69-971500188b19"
OTHER = "https://api.moysklad.ru/api/remap/1.2/entity/product/0b1e2c3d-0000-11e5-7a69-971500188b19"


def test_counted_after_the_limit(stack):
    nginx, redis = stack
    c = redis.client()
    for n in range(25):
        status, _ = send(nginx, "/hooks/count", update(HREF, n))
        assert status == 202
        if n == 19:  # the 20th is still within the limit
            assert c.zcard("hookq:{lc}:loops") == 0
    fp, score = only_member(c, "hookq:{lc}:loops")
    assert score == 25  # the entity's count in the window when last seen
    assert c.hget("hookq:{lc}:loop_keys", fp).decode() == HREF
    assert c.get(f"hookq:{{lc}}:loop:{fp.decode()}") == b"25"
    assert 0 < c.pttl(f"hookq:{{lc}}:loop:{fp.decode()}") <= 60000
    # counted, not held: every one of them is queued
    assert c.llen("hookq:{lc}:queue") == 25 and c.llen("hookq:{lc}:held") == 0
    assert loop_counters(nginx.port)[("ms_count", "counted")] == 5
    assert loop_counters(nginx.port)[("ms_count", "held")] == 0

    # Another entity has its own count: a few of it are nowhere near the limit.
    for n in range(3):
        send(nginx, "/hooks/count", update(OTHER, n))
    assert c.zcard("hookq:{lc}:loops") == 1
    assert c.llen("hookq:{lc}:queue") == 28

    # A duplicate (same body, same dedup key) is answered as one and not counted again.
    status, headers = send(nginx, "/hooks/count", update(HREF, 3))
    assert (status, headers.get("idempotent-replayed")) == (200, "true")
    assert c.get(f"hookq:{{lc}}:loop:{fp.decode()}") == b"25"


def test_hold_keeps_the_extra_ones_aside(stack):
    nginx, redis = stack
    c = redis.client()
    ids = []
    for n in range(25):
        status, headers = send(nginx, "/hooks/hold", update(HREF, n))
        assert status == 202  # accepted and stored, held or not
        ids.append(headers["x-request-id"])
    send(nginx, "/hooks/hold", update(OTHER, 0))
    queued = [edge.decode_envelope(e)["request_id"] for e in c.lrange("hookq:{lh}:queue", 0, -1)]
    held = [edge.decode_envelope(e)["request_id"] for e in c.lrange("hookq:{lh}:held", 0, -1)]
    assert sorted(held) == sorted(ids[20:])
    assert set(ids[:20]) <= set(queued) and len(queued) == 21  # the other entity is queued
    assert loop_counters(nginx.port)[("ms_hold", "held")] == 5
    fp, score = only_member(c, "hookq:{lh}:loops")
    assert score == 25 and c.hget("hookq:{lh}:loop_keys", fp).decode() == HREF


def test_default_key_is_the_body_hash(stack):
    nginx, redis = stack
    c = redis.client()
    body = update(HREF, 0)
    # Same body, distinct dedup keys (hookq none dedups on X-Request-Id, else the body's hash).
    for n in range(5):
        status, headers, _ = edge.post(nginx.port, "/hooks/content", body,
                                       {"Content-Type": "application/json",
                                        "X-Request-Id": f"r-{n}"})
        assert status == 202, (status, headers)
    fp, score = only_member(c, "hookq:{lb}:loops")
    assert score == 5
    assert c.hget("hookq:{lb}:loop_keys", fp).decode() == hashlib.sha256(body).hexdigest()


def test_locations_without_the_directives_are_unchanged(stack):
    nginx, redis = stack
    c = redis.client()
    for n in range(30):
        send(nginx, "/hooks/plain", update(HREF, n))
    assert c.llen("hookq:{lp}:queue") == 30
    assert not c.keys("hookq:{lp}:loop*") and not c.exists("hookq:{lp}:held")


def test_a_loop_key_of_the_wrong_type_writes_nothing(stack):
    """All or nothing: a loop key someone overwrote is refused before the first write (no dedup
    key, no count), 503 so the provider retries, and the log names the key."""
    nginx, redis = stack
    c = redis.client()
    c.set("hookq:{lh}:held", "oops")
    try:
        before = sorted(c.keys("hookq:{lh}:*"))
        body = update("https://x/product/wrongtype", 0)
        status, headers, _ = edge.post(nginx.port, "/hooks/hold", body,
                                       {"Content-Type": "application/json"})
        assert status == 503 and headers["retry-after"] == "5"
        assert sorted(c.keys("hookq:{lh}:*")) == before
        assert 'loop key "hookq:{lh}:held" holds a string, not a list' in nginx.log()
    finally:
        c.delete("hookq:{lh}:held")
    status, _ = send(nginx, "/hooks/hold", body)
    assert status == 202


def conf(loc):
    return """
    hookq_redis 127.0.0.1:6379;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/x { LOC }
    }
""".replace("LOC", loc)


@pytest.mark.parametrize("loc,needle", [
    ("hookq none; hookq_loop_limit 0 1m;", 'hookq_loop_limit: invalid count "0"'),
    ("hookq none; hookq_loop_limit twenty 1m;", 'hookq_loop_limit: invalid count "twenty"'),
    ("hookq none; hookq_loop_limit 20 soon;", 'hookq_loop_limit: invalid window "soon"'),
    ("hookq none; hookq_loop_limit 20 100ms;", 'hookq_loop_limit: invalid window "100ms"'),
    ("hookq none; hookq_loop_limit 20;", '"hookq_loop_limit"'),
    ("hookq none; hookq_loop_limit 20 1m; hookq_loop_action drop;",
     'hookq_loop_action: "drop" is neither "count" nor "hold"'),
    ("hookq none; hookq_loop_key $request_id;", 'hookq_loop_key: needs "hookq_loop_limit'),
    ("hookq none; hookq_loop_action hold;", 'hookq_loop_action: needs "hookq_loop_limit'),
])
def test_bad_values_fail_nginx_t(loc, needle):
    rc, out = harness.nginx_test_config(conf(loc))
    assert rc != 0 and needle in out, out


def test_good_values_pass_nginx_t():
    rc, out = harness.nginx_test_config(conf(
        "hookq none; hookq_loop_key $request_uri; hookq_loop_limit 20 10m; "
        "hookq_loop_action hold;"))
    assert rc == 0, out


# --- the worker side: hookqctl loops, release (delivered), clear; audited ----------------------

HOLD_HTTP = """
    hookq_redis {redis};
    hookq_json_var $ms_href /events/0/meta/href;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/ms {
            hookq none; hookq_queue ms; hookq_source ms;
            hookq_loop_key $ms_href; hookq_loop_limit 20 1m; hookq_loop_action hold;
        }
    }
"""


def ctl(worker, *args):
    env = worker_env()
    env.pop("SUDO_USER", None)
    env["USER"] = "alice"
    r = subprocess.run([harness.CTL_PATH, "--config", worker.config_path, *args],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_release_delivers_the_held_ones(redis_server, pg_migrated, sink, workers):
    nginx = harness.Nginx(HOLD_HTTP, redis_port=redis_server.port)
    try:
        c = redis_server.client()
        # The worker's alerting: loop_detected fires per queue once the edge lists an entity.
        alerts = ('[alerts]\ninterval = "1s"\ngroup_wait = "0s"\n'
                  'runbook_url = "https://docs.example/runbooks.md"\n'
                  f'[[alerts.channels]]\nname = "slack"\ntype = "slack"\n'
                  f'url = "{sink.url("/slack")}"\n')
        w = workers(config_text(redis_server, pg_migrated,
                                alerts + route("app", "ms", sink.url("/app"))))
        ids = [send(nginx, "/hooks/ms", update(HREF, n))[1]["x-request-id"] for n in range(25)]
        wait_until(lambda: sink.ids("/app") >= set(ids[:20]), 20, what="first 20 delivered")
        assert c.llen("hookq:{ms}:held") == 5 and not sink.ids("/app") & set(ids[20:])

        msg = wait_until(lambda: [json.loads(r.body)["text"] for r in sink.received("/slack")
                                  if "loop_detected" in json.loads(r.body)["text"]], 20,
                         what="loop_detected sent")[0]
        assert "FIRING P2] loop_detected" in msg and "queue=ms" in msg, msg
        assert "runbooks.md#webhook-loop" in msg, msg
        assert rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = %s",
                    "loop_detected{queue=ms}") == [("firing",)]

        [q] = json.loads(ctl(w, "loops", "--json"))
        assert q["queue"] == "ms" and q["held"] == 5
        [e] = q["loops"]
        assert (e["key"], e["count"], e["last_count"]) == (HREF, 25, 25)
        assert HREF in ctl(w, "loops")

        assert json.loads(ctl(w, "loops", "release", "ms", "--json")) == {"queue": "ms",
                                                                         "released": 5}
        wait_until(lambda: sink.ids("/app") >= set(ids), 20, what="held ones delivered")
        assert c.llen("hookq:{ms}:held") == 0

        assert json.loads(ctl(w, "loops", "clear", "ms", "--json")) == {"queue": "ms",
                                                                       "cleared": 1}
        assert not c.keys("hookq:{ms}:loop*")
        assert "no loops" in ctl(w, "loops")
        wait_until(lambda: rows(pg_migrated, "SELECT state FROM alerts WHERE fingerprint = %s",
                                "loop_detected{queue=ms}") == [("resolved",)], 20,
                   what="loop_detected resolved once cleared")
        audit = rows(pg_migrated, "SELECT action, actor, target FROM audit_log "
                                  "WHERE action LIKE %s ORDER BY id", "loops.%")
        assert audit == [("loops.release", "alice", "ms"), ("loops.clear", "alice", "ms")]
        assert w.stop() == 0
    finally:
        nginx.close()
