"""The edge on a Redis Cluster (hookq_redis_cluster): each queue's commands go to the master that
owns its {queue} slot, MOVED and ASK are followed, a failover is survived without a reload; and
hookq_redis_wait: a 2xx only once WAIT has seen the write reach a replica, so nothing answered 2xx
is lost when the master dies and its replica takes over."""

import json
import os
import threading
import time
import uuid

import pytest

import edge
import harness
from redis_cluster import RedisCluster, key_slot

SECRET = edge.SECRETS["github"]


def conf(seeds, queues, wait="", timeout="1s"):
    locs = "\n".join(
        f"location = /hooks/{q} {{ hookq github; hookq_secret \"{SECRET}\"; hookq_queue {q}; }}"
        for q in queues)
    return f"""
    hookq_redis_cluster {" ".join(seeds)};
    hookq_redis_timeout {timeout};
    hookq_redis_connect_timeout 300ms;
    {wait}
    server {{
        listen 127.0.0.1:{{port}};
        {locs}
        location = /hookq/status {{ hookq_status; }}
    }}
"""


def signed_post(port, queue, delivery=None, timeout=10, pad=0):
    # pad: a body that large goes by the guarded transaction (test_edge_guarded.py), not a script
    body = json.dumps({"n": os.urandom(6).hex(), "pad": "p" * pad}).encode()
    return edge.post(port, f"/hooks/{queue}", body, edge.github_headers(body, delivery),
                     timeout=timeout)


def stored_ids(node, queue, asking=False):
    pipe = node.client().pipeline(transaction=False)
    if asking:  # the slot is still being imported: ASKING on the same connection
        pipe.execute_command("ASKING")
    pipe.lrange(f"hookq:{{{queue}}}:queue", 0, -1)
    return {edge.decode_envelope(e)["request_id"] for e in pipe.execute()[-1]}


def until(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def accepts(port, queue):
    return lambda: signed_post(port, queue, timeout=5)[0] == 202


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)
    yield c
    c.close()


@pytest.fixture(scope="module")
def queues(cluster):
    return cluster.queues_on_distinct_masters(3, prefix="cq")


def test_ingest_goes_to_each_queues_master_and_dedups(cluster, queues):
    nginx = harness.Nginx(conf(cluster.seeds, queues))
    try:
        ids = {q: set() for q in queues}
        for q in queues:
            for _ in range(5):
                status, headers, _ = signed_post(nginx.port, q)
                assert status == 202, nginx.log()
                ids[q].add(headers["x-request-id"])
        masters = {q: cluster.master_for_queue(q) for q in queues}
        assert len({m.port for m in masters.values()}) == 3
        for q in queues:
            assert stored_ids(masters[q], q) == ids[q]
            slot = key_slot("{" + q + "}")
            for other in queues:
                if other != q:  # nothing of q anywhere else
                    assert masters[other].client().execute_command(
                        "CLUSTER COUNTKEYSINSLOT", slot) == 0
        # a provider's retry: the first delivery's id, nothing written
        delivery = str(uuid.uuid4())
        first = signed_post(nginx.port, queues[0], delivery)
        again = signed_post(nginx.port, queues[0], delivery)
        assert (first[0], again[0]) == (202, 200)
        assert again[1]["x-request-id"] == first[1]["x-request-id"]
        assert masters[queues[0]].client().llen(f"hookq:{{{queues[0]}}}:queue") == 6
    finally:
        nginx.close()


@pytest.mark.parametrize("pad", [0, 20_000], ids=["script", "guarded"])
def test_moved_and_ask_are_followed_without_reload(cluster, queues, pad):
    """One queue's slot migrates to another master: while its keys are on the target and the slot
    still MIGRATING, the source answers ASK; once it is moved, MOVED. The edge follows both,
    without a reload, for a script call and for the guarded transaction (whose MOVED or ASK comes
    as a queued command's reply, EXEC then refusing it all)."""
    q = queues[0]
    nginx = harness.Nginx(conf(cluster.seeds, queues))
    try:
        assert until(accepts(nginx.port, q), what="the edge to accept")
        slot = key_slot("{" + q + "}")
        source = cluster.master_for_slot(slot)
        before = source.client().llen(f"hookq:{{{q}}}:queue")
        target = next(m for m in cluster.masters() if m.port != source.port)
        sid = source.client().execute_command("CLUSTER MYID")
        tid = target.client().execute_command("CLUSTER MYID")
        sid, tid = (x.decode() if isinstance(x, bytes) else x for x in (sid, tid))
        target.client().execute_command("CLUSTER SETSLOT", slot, "IMPORTING", sid)
        source.client().execute_command("CLUSTER SETSLOT", slot, "MIGRATING", tid)
        while keys := source.client().execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                             "KEYS", *keys)
        # ASK: the keys are on the target. There a script with a key not created yet (the new
        # dedup key) gets TRYAGAIN until the slot is moved, whatever the client: 503, nothing
        # written, and the error comes from the target, so the ASK was followed.
        status, headers, _ = signed_post(nginx.port, q, pad=pad)
        assert status == 503 and headers["retry-after"] == "5"
        assert f"redis 127.0.0.1:{target.port}: ingest failed: TRYAGAIN" in nginx.log()
        assert len(stored_ids(target, q, asking=True)) == before
        assert source.client().execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
        for m in cluster.masters():
            m.client().execute_command("CLUSTER SETSLOT", slot, "NODE", tid)
        for _ in range(3):  # MOVED once, then the refreshed map
            status, headers, _ = signed_post(nginx.port, q, pad=pad)
            assert status == 202, nginx.log()
            assert headers["x-request-id"] in stored_ids(target, q)
        assert target.client().llen(f"hookq:{{{q}}}:queue") == before + 3
        assert source.client().execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
        execs = target.client().info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        assert (execs > 0) == (pad > 0), execs
        # The other queues did not notice.
        for other in queues[1:]:
            assert signed_post(nginx.port, other, pad=pad)[0] == 202
    finally:
        nginx.close()


def load(port, queue, stop, results, slow, pad=0):
    """Keeps one request in flight at a time on `queue`, recording (status, request id)."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            status, headers, _ = signed_post(port, queue, timeout=10, pad=pad)
        except OSError as e:
            results.append(("error", repr(e)))
            continue
        results.append((status, headers.get("x-request-id")))
        slow.append(time.monotonic() - t0)


def lpushx_calls(node):
    return node.client().info("commandstats").get("cmdstat_lpushx", {}).get("calls", 0)


def kill_master_under_load(cluster, queues, wait, pad=0):
    # The queue whose master dies must still have a replica (an earlier failover may have used
    # one up): choose among the queues still replicated.
    victim_q = next(q for q in queues
                    if any(r for r in cluster.replicas()
                           if int(r.info("replication").get("master_port", 0))
                           == cluster.master_for_queue(q).port))
    victim = cluster.master_for_queue(victim_q)
    replica = cluster.replica_of(victim)
    nginx = harness.Nginx(conf(cluster.seeds, queues, wait, timeout="500ms"), workers=2)
    try:
        assert until(accepts(nginx.port, victim_q), what="the edge to accept")
        stop = threading.Event()
        results = {q: [] for q in queues}
        took = []
        lpushx_before = lpushx_calls(victim)
        threads = [threading.Thread(target=load,
                                    args=(nginx.port, q, stop, results[q], took, pad))
                   for q in queues for _ in range(4)]
        for t in threads:
            t.start()
        until(lambda: sum(s == 202 for s, _ in results[victim_q]) >= 50, what="load")
        # The ingest went as it was meant to: LPUSHX is the guarded transaction's alone (a
        # replica's EXEC count would not tell: Redis replicates a script's writes in MULTI/EXEC).
        assert (lpushx_calls(victim) > lpushx_before) == (pad > 0)
        cluster.kill(victim)
        killed_at = time.monotonic()
        cluster.wait_failover(30)
        assert cluster.master_for_queue(victim_q).port == replica.port
        if wait:
            # The promoted replica has no replica of its own: WAIT 1 cannot be met, and every
            # write there is answered 503 (stored, not confirmed). The old master, back, rejoins
            # as its replica, and writes are confirmed again.
            victim.start()
            until(lambda: replica.info("replication")["connected_slaves"] == 1, timeout=30,
                  what="the old master to rejoin as a replica")
        # The edge accepts again on the promoted replica, without a reload.
        n_before = len(results[victim_q])
        try:
            until(lambda: any(s == 202 for s, _ in results[victim_q][n_before:]), timeout=20,
                  what="the edge to accept on the promoted replica")
        except AssertionError:
            stop.set()
            lines = [line for line in nginx.log().splitlines() if "hookq:" in line]
            raise AssertionError("no 202 on the promoted replica:\n" + "\n".join(lines[-40:]))
        recovered_after = time.monotonic() - killed_at
        stop.set()
        for t in threads:
            t.join(30)
        for q in queues:
            assert {s for s, _ in results[q]} <= {202, 503}, results[q]
        # Never a hang: a request for the dead master's slot is answered 503 at once, one in
        # flight when it died at its timeout (500ms, plus the wait's 200ms); slack for a busy box.
        assert max(took) < 3, max(took)
        assert any(s == 503 for s, _ in results[victim_q]) or recovered_after < 1
        return victim_q, replica, results, nginx.log()
    finally:
        nginx.close()


# Also with 20 KB bodies, which go by the guarded transaction (MULTI ... EXEC): a master killed
# mid-transaction leaves nothing half-applied on its replica. Each run gives the queue its replica
# back (the old master rejoins), so the test after still finds a replicated queue.
@pytest.mark.parametrize("pad", [0, 20_000], ids=["script", "guarded"])
def test_master_killed_under_load_nothing_accepted_is_lost_with_wait(cluster, queues, pad):
    victim_q, promoted, results, log = kill_master_under_load(cluster, queues,
                                                              "hookq_redis_wait 1 200ms;", pad)
    accepted = {rid for s, rid in results[victim_q] if s == 202}
    stored = stored_ids(promoted, victim_q)
    lost = accepted - stored
    assert not lost, f"{len(lost)} of {len(accepted)} answered 202 are not on the promoted replica"
    # Every queue's 2xx are where they belong.
    for q in queues:
        if q != victim_q:
            ok = {rid for s, rid in results[q] if s == 202}
            assert ok <= stored_ids(cluster.master_for_queue(q), q)
    assert "WAIT" not in log or "answering 503" in log


def test_master_killed_without_wait_is_2xx_or_503_and_recovers(cluster, queues):
    kill_master_under_load(cluster, queues, "")


def test_config_errors_name_the_directive():
    seeds = "127.0.0.1:7000 127.0.0.1:7001"
    cases = [
        ("hookq_redis_cluster 127.0.0.1:0;", "hookq_redis_cluster: invalid address"),
        (f"hookq_redis_cluster {seeds} db=1;", "hookq_redis_cluster: unknown parameter"),
        ("hookq_redis_cluster unix:/run/redis.sock;",
         "hookq_redis_cluster: \"unix:/run/redis.sock\""),
        (f"hookq_redis_cluster {seeds} password_file=/nonexistent/pass;",
         "hookq_redis_cluster: cannot open secret file"),
        ("hookq_redis_cluster foo.invalid:7000;", "hookq_redis_cluster: cannot resolve"),
        (f"hookq_redis 127.0.0.1:6379; hookq_redis_cluster {seeds};",
         "hookq_redis_cluster: \"hookq_redis\" is set already"),
        (f"hookq_redis_cluster {seeds}; hookq_redis 127.0.0.1:6379;",
         "hookq_redis: \"hookq_redis_cluster\" is set already"),
        (f"hookq_redis_cluster {seeds}; hookq_redis_wait 0;",
         "hookq_redis_wait: invalid replica count \"0\""),
        (f"hookq_redis_cluster {seeds}; hookq_redis_wait many;",
         "hookq_redis_wait: invalid replica count"),
        (f"hookq_redis_cluster {seeds}; hookq_redis_wait 1 0ms;",
         "hookq_redis_wait: invalid timeout"),
    ]
    server = "server { listen 127.0.0.1:{port}; location = /h { hookq none; } }"
    for head, message in cases:
        rc, out = harness.nginx_test_config(head + server)
        assert rc != 0 and message in out, (head, out)
    rc, out = harness.nginx_test_config(
        f"hookq_redis_cluster {seeds}; hookq_redis_wait 2 50ms;" + server)
    assert rc == 0, out


def test_wait_on_single_redis_answers_503_when_no_replica_confirms():
    master = harness.RedisServer()
    replica = harness.RedisServer(["--replicaof", "127.0.0.1", str(master.port)])
    nginx = None
    try:
        until(lambda: master.client().info("replication")["connected_slaves"] == 1, what="replica")
        nginx = harness.Nginx("""
            hookq_redis {redis};
            hookq_redis_timeout 3s;
            hookq_redis_wait 1 1s;
            server { listen 127.0.0.1:{port};
                     location = /h { hookq none; hookq_dedup_key $http_x_request_id; }
                     location = /hookq/status { hookq_status; } }
        """, redis_port=master.port)
        until(lambda: edge.post(nginx.port, "/h", b"warm", {"X-Request-ID": str(uuid.uuid4())})[0]
              == 202, what="the edge to accept")
        status, headers, _ = edge.post(nginx.port, "/h", b"one", {"X-Request-ID": "k1"})
        assert status == 202
        # 202 came after WAIT: the replica has it already, no polling needed.
        on_replica = [edge.decode_envelope(e)
                      for e in replica.client().lrange("hookq:{none}:queue", 0, -1)]
        assert headers["x-request-id"] in {e["request_id"] for e in on_replica}

        replica.pause()  # connected, silent: WAIT counts 0
        before = edge.status_counters(nginx.port)
        t0 = time.monotonic()
        status, headers, _ = edge.post(nginx.port, "/h", b"two", {"X-Request-ID": "k2"})
        elapsed = time.monotonic() - t0
        assert status == 503 and headers["retry-after"] == "5"
        assert 0.95 <= elapsed < 2.9, elapsed  # the WAIT timeout, within the request's
        on_master = [edge.decode_envelope(e)
                     for e in master.client().lrange("hookq:{none}:queue", 0, -1)]
        assert b"k2" in {e["dedup_key"] for e in on_master}  # stored, just not confirmed
        assert "WAIT counted 0 of 1 replicas" in nginx.log()
        # Counted as its own outcome, not as Redis being down.
        after = edge.status_counters(nginx.port)
        assert after[("none", "unreplicated")] == before.get(("none", "unreplicated"), 0) + 1
        assert after.get(("none", "redis_error"), 0) == before.get(("none", "redis_error"), 0)
        # The provider's retry is a duplicate now (the master has it): 200 with the first id.
        status, _, _ = edge.post(nginx.port, "/h", b"two", {"X-Request-ID": "k2"})
        assert status == 200
        replica.resume()
        until(lambda: edge.post(nginx.port, "/h", b"x", {"X-Request-ID": str(uuid.uuid4())})[0]
              == 202, what="the edge to accept again")
    finally:
        if nginx:
            nginx.close()
        replica.close()
        master.close()


def test_wait_is_one_per_turn_and_covers_every_call_of_it():
    """A turn whose webhooks go as several script calls (fewer than 3: one call each) is followed
    by ONE WAIT: it counts the replicas that have the connection's last write, hence all of them.
    Every 202 of the turn is then on the replica. The same for a turn of large webhooks, which go
    as guarded transactions (two script calls in each EXEC), two of them for 16 KB each."""
    from test_edge_group_commit import Conns, request_bytes
    master = harness.RedisServer()
    replica = harness.RedisServer(["--replicaof", "127.0.0.1", str(master.port)])
    nginx = None
    try:
        until(lambda: master.client().info("replication")["connected_slaves"] == 1, what="replica")
        nginx = harness.Nginx("""
            hookq_redis {redis};
            hookq_redis_timeout 2s;
            hookq_redis_wait 1 1s;
            server { listen 127.0.0.1:{port};
                     location = /hooks/open { hookq none; hookq_dedup_key $http_x_request_id; } }
        """, redis_port=master.port)
        until(lambda: edge.post(nginx.port, "/hooks/open", b"w",
                                {"X-Request-ID": str(uuid.uuid4())})[0] == 202,
              what="the edge to accept")
        conns = Conns(nginx, 8)
        try:
            # two single calls; one batch call; two guarded transactions
            for n, body, calls, execs in ((2, b"x", 2, 0), (8, b"x", 1, 0), (4, b"g" * 7000, 4, 2)):
                master.client().config_resetstat()
                answers = conns.burst(nginx, [request_bytes("/hooks/open", str(uuid.uuid4()), body)
                                              for _ in range(n)])
                assert [a[0] for a in answers] == [202] * n
                stats = master.client().info("commandstats")
                assert stats["cmdstat_evalsha"]["calls"] == calls
                assert stats.get("cmdstat_exec", {}).get("calls", 0) == execs
                assert stats["cmdstat_wait"]["calls"] == 1
                on_replica = {edge.decode_envelope(e)["request_id"]
                              for e in replica.client().lrange("hookq:{none}:queue", 0, -1)}
                assert {a[1]["x-request-id"] for a in answers} <= on_replica
        finally:
            conns.close()
    finally:
        if nginx:
            nginx.close()
        replica.close()
        master.close()


def test_seed_not_in_cluster_mode_is_503_at_once_and_logged(redis_server):
    nginx = harness.Nginx(conf([f"127.0.0.1:{redis_server.port}"], ["cq0"]))
    try:
        until(lambda: "CLUSTER SLOTS failed" in nginx.log(), what="the refused CLUSTER SLOTS")
        t0 = time.monotonic()
        status, headers, _ = signed_post(nginx.port, "cq0")
        assert status == 503 and headers["retry-after"] == "5"
        assert time.monotonic() - t0 < 0.5  # not at hookq_redis_timeout (1s)
        assert "cluster support disabled" in nginx.log()
    finally:
        nginx.close()
