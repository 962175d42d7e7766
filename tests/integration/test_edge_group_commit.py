"""Group commit at the edge: the requests one nginx worker reads in one turn of its event loop are
ingested by ONE script call (one EVALSHA per turn, not per webhook), each webhook still all or
nothing, in arrival order, with its own answer.

To put a known set of requests into one turn, the test stops the nginx worker (SIGSTOP), writes
one request on each of many idle keep-alive connections, and lets it go on (SIGCONT): its next
epoll_wait() returns every one of them at once."""

import http.client
import os
import signal
import socket
import threading
import time
from collections import Counter

import pytest

import edge
import harness

HTTP = """
    hookq_redis {redis};
    hookq_redis_timeout 2s;
    hookq_redis_connect_timeout 500ms;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/open { hookq none; hookq_dedup_key $http_x_request_id; }
        location = /hooks/other { hookq none; hookq_queue other; hookq_dedup_key $http_x_request_id; }
        location = /hooks/hold {
            hookq none; hookq_queue lh; hookq_dedup_key $http_x_request_id;
            hookq_loop_key $http_x_entity; hookq_loop_limit 3 1m; hookq_loop_action hold;
        }
        location = /hooks/small {
            hookq none; hookq_queue small; hookq_dedup_key $http_x_request_id; hookq_max_queue_depth 5;
        }
        location = /hookq/status { hookq_status; }
    }
"""

QUEUE = "hookq:{none}:queue"


def worker_pid(nginx):
    pid = nginx.proc.pid
    kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert len(kids) == 1, kids
    return int(kids[0])


def stop_idle_worker(nginx):
    """SIGSTOPs the worker once it waits in epoll_wait(), i.e. between two turns: stopped in the
    middle of one (still answering the previous burst) it could read part of the next burst in
    that turn."""
    pid = worker_pid(nginx)
    deadline = time.monotonic() + 10
    while "epoll" not in open(f"/proc/{pid}/wchan").read():
        assert time.monotonic() < deadline, "the worker never went idle"
        time.sleep(0.001)
    os.kill(pid, signal.SIGSTOP)
    while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.001)
    return pid


def ingest_calls(client):
    """Ingest calls so far: script calls, a guarded transaction (two script calls in one EXEC,
    shared/redis_keys.h kIngestGuarded) counted once."""
    stats = client.info("commandstats")
    scripts = sum(stats.get(k, {}).get("calls", 0) for k in ("cmdstat_evalsha", "cmdstat_eval"))
    return scripts - stats.get("cmdstat_exec", {}).get("calls", 0)


def request_bytes(path, key, body, extra=None):
    head = [f"POST {path} HTTP/1.1", "Host: edge", f"X-Request-ID: {key}",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Conns:
    """Idle keep-alive connections, each already accepted by the worker (one request served)."""

    def __init__(self, nginx, n):
        self.socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", nginx.port), timeout=15)
            self.socks.append(s)
            s.sendall(request_bytes("/hooks/open", f"warm-{os.urandom(6).hex()}", b"warm"))
            status, _, _ = self.read(s)
            assert status == 202

    @staticmethod
    def read(s):
        resp = http.client.HTTPResponse(s)
        resp.begin()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def burst(self, nginx, requests):
        """Sends requests[i] on connection i while the worker is stopped, so that it reads them all
        in one turn; returns the answers in the same order."""
        assert len(requests) <= len(self.socks)
        pid = stop_idle_worker(nginx)
        try:
            for s, raw in zip(self.socks, requests):
                s.sendall(raw)
        finally:
            os.kill(pid, signal.SIGCONT)
        return [self.read(s) for s in self.socks[:len(requests)]]

    def close(self):
        for s in self.socks:
            s.close()


@pytest.fixture
def stack():
    redis = harness.RedisServer()
    nginx = harness.Nginx(HTTP, redis_port=redis.port)
    deadline = time.monotonic() + 10
    while edge.post(nginx.port, "/hooks/open", b"ready")[0] != 202:
        assert time.monotonic() < deadline, nginx.log()
        time.sleep(0.05)
    yield nginx, redis
    nginx.close()
    redis.close()


def stored(client, key=QUEUE):
    return [edge.decode_envelope(e) for e in client.lrange(key, 0, -1)]


def test_bursts_with_repeated_keys_are_one_call_each_and_exactly_right(stack):
    """200 requests in 4 bursts over 50 connections, each burst with keys repeated inside it (and
    keys of an earlier burst): one script call per burst, the first of each key stored and 202, the
    others 200 duplicates naming it, and exactly one envelope per key in Redis."""
    nginx, redis = stack
    client = redis.client()
    conns = Conns(nginx, 50)
    try:
        client.delete(QUEUE)
        calls_before = ingest_calls(client)
        answers = []  # (key, body, status, headers)
        for burst in range(4):
            # 30 new keys, 10 of them twice in this burst; burst > 0 also repeats 10 of the last one's.
            keys = [f"b{burst}-k{i}" for i in range(30)] + [f"b{burst}-k{i}" for i in range(10)]
            keys += [f"b{max(burst - 1, 0)}-k{20 + i}" for i in range(10)]
            reqs, sent = [], []
            for j, key in enumerate(keys):
                body = f"burst {burst} request {j} key {key}".encode()
                reqs.append(request_bytes("/hooks/open", key, body))
                sent.append((key, body))
            for (key, body), (status, headers, _) in zip(sent, conns.burst(nginx, reqs)):
                answers.append((key, body, status, headers))
        calls = ingest_calls(client) - calls_before
    finally:
        conns.close()

    assert len(answers) == 200
    assert all(status in (200, 202) for _, _, status, _ in answers), Counter(a[2] for a in answers)
    accepted = {}
    for key, body, status, headers in answers:
        if status == 202:
            assert key not in accepted, f"{key} accepted twice"
            accepted[key] = (headers["x-request-id"], body)
    keys = {a[0] for a in answers}
    assert set(accepted) == keys
    for key, body, status, headers in answers:
        if status == 200:
            assert headers["idempotent-replayed"] == "true"
            assert headers["x-request-id"] == accepted[key][0]
    envs = stored(client)
    assert len(envs) == len(keys) == 120
    assert {e["dedup_key"].decode(): (e["request_id"], e["body"]) for e in envs} == accepted
    # Without group commit each of the 200 requests is its own call.
    assert calls == 4, calls


def test_a_small_burst_goes_as_single_calls(stack):
    """Under kMinBatch (3) the batch script costs Redis more than it saves: 2 requests of one turn
    with one key are 2 calls of the single script, with the same answers a batch gives; 3 are one
    call of the batch script."""
    nginx, redis = stack
    client = redis.client()
    conns = Conns(nginx, 3)
    try:
        calls_before = ingest_calls(client)
        answers = conns.burst(nginx, [request_bytes("/hooks/open", "small-c", b"s %d" % i)
                                      for i in range(2)])
        calls = ingest_calls(client) - calls_before
        calls_before = ingest_calls(client)
        three = conns.burst(nginx, [request_bytes("/hooks/open", k, b"t")
                                    for k in ("small-d", "small-e", "small-d")])
        calls_of_three = ingest_calls(client) - calls_before
    finally:
        conns.close()
    assert sorted(a[0] for a in answers) == [200, 202]
    first = next(a for a in answers if a[0] == 202)
    dup = next(a for a in answers if a[0] == 200)
    assert dup[1]["x-request-id"] == first[1]["x-request-id"]
    assert calls == 2, calls
    assert sorted(a[0] for a in three) == [200, 202, 202]
    assert calls_of_three == 1, calls_of_three


def test_a_burst_over_the_batch_cap_is_split(stack):
    """300 requests in one turn: a batch carries at most kMaxBatchBytes (16 KB) of arguments, so
    they go as several calls (not one, not 300), and every one is stored."""
    nginx, redis = stack
    client = redis.client()
    conns = Conns(nginx, 300)
    try:
        client.delete(QUEUE)
        calls_before = ingest_calls(client)
        keys = [f"cap-{i:03d}" for i in range(300)]
        answers = conns.burst(nginx, [request_bytes("/hooks/open", k, k.encode()) for k in keys])
        calls = ingest_calls(client) - calls_before
    finally:
        conns.close()
    assert [a[0] for a in answers] == [202] * 300
    envs = client.lrange(QUEUE, 0, -1)
    assert sorted(edge.decode_envelope(e)["dedup_key"].decode() for e in envs) == sorted(keys)
    size = sum(len(e) for e in envs)
    # (+ the other arguments per envelope, and a last batch under kMinBatch sent singly)
    assert size // 16384 < calls <= size // 16384 + 7, (calls, size)


def test_queues_of_one_worker_share_a_batch_and_loops_count_inside_it(stack):
    """One burst to three locations (two queues without a loop part, one with it): one call. The
    loop limit (3 of one entity a minute, then hold) counts each envelope of the batch in order."""
    nginx, redis = stack
    client = redis.client()
    conns = Conns(nginx, 30)
    try:
        calls_before = ingest_calls(client)
        reqs = []
        for i in range(10):
            reqs.append(request_bytes("/hooks/open", f"mix-open-{i}", b"open %d" % i))
            reqs.append(request_bytes("/hooks/other", f"mix-other-{i}", b"other %d" % i))
            reqs.append(request_bytes("/hooks/hold", f"mix-hold-{i}", b"hold %d" % i,
                                      {"X-Entity": "entity-1"}))
        answers = conns.burst(nginx, reqs)
        calls = ingest_calls(client) - calls_before
    finally:
        conns.close()
    assert [a[0] for a in answers] == [202] * 30
    assert calls == 1, calls
    assert len([e for e in stored(client) if e["dedup_key"].startswith(b"mix-open-")]) == 10
    assert len(stored(client, "hookq:{other}:queue")) == 10
    queued, held = stored(client, "hookq:{lh}:queue"), stored(client, "hookq:{lh}:held")
    assert len(queued) == 3 and len(held) == 7
    # The first three of the entity (in arrival order) were queued, the later ones held.
    order = {a[1]["x-request-id"]: n for n, a in enumerate(answers[2::3])}
    assert max(order[e["request_id"]] for e in queued) < min(order[e["request_id"]] for e in held)
    (member, score), = client.zrange("hookq:{lh}:loops", 0, -1, withscores=True)
    assert score == 10


def test_depth_limit_and_wrong_type_inside_a_batch(stack):
    """hookq_max_queue_depth 5 with 2 queued: of 10 in one batch the first 3 (arrival order) are
    202 and the rest 503 leaving no dedup key; then, with the queue key SET as a string, a whole
    batch is 503 and writes nothing."""
    nginx, redis = stack
    client = redis.client()
    queue = "hookq:{small}:queue"
    for i in range(2):
        assert edge.post(nginx.port, "/hooks/small", b"pre", {"X-Request-ID": f"pre-{i}"})[0] == 202
    conns = Conns(nginx, 10)
    try:
        answers = conns.burst(nginx, [request_bytes("/hooks/small", f"deep-{i}", b"deep %d" % i)
                                      for i in range(10)])
        assert sorted(a[0] for a in answers) == [202] * 3 + [503] * 7
        assert client.llen(queue) == 5
        stored_keys = {e["dedup_key"] for e in stored(client, queue)}
        for i, (status, _, _) in enumerate(answers):
            key = f"deep-{i}"
            assert (key.encode() in stored_keys) == (status == 202)
            assert client.exists(f"hookq:{{small}}:dedup:{key}") == (status == 202)

        client.delete(queue)
        client.set(queue, "not a list")
        answers = conns.burst(nginx, [request_bytes("/hooks/small", f"wt-{i}", b"wt") for i in range(10)])
        assert [a[0] for a in answers] == [503] * 10
        assert client.keys("hookq:{small}:dedup:wt-*") == []
        assert client.get(queue) == b"not a list"
    finally:
        conns.close()


def test_a_batch_in_flight_when_redis_dies_is_all_503(stack):
    """The batch is on the wire to a Redis that is hung, which then dies: every request of it gets
    its own 503 (none waits for its timeout alone, none is 2xx), nothing is stored, and the link
    comes back."""
    nginx, redis = stack
    conns = Conns(nginx, 40)
    try:
        redis.pause()
        pid = stop_idle_worker(nginx)
        try:
            for i, s in enumerate(conns.socks):
                s.sendall(request_bytes("/hooks/open", f"dead-{i}", b"dead %d" % i))
        finally:
            os.kill(pid, signal.SIGCONT)
        # The worker has sent its batch once the hung Redis's socket holds it.
        deadline = time.monotonic() + 5
        while redis_unread_bytes(redis) < 40 * 100:  # every envelope is over 100 bytes
            assert time.monotonic() < deadline, "the batch never reached Redis's socket"
            time.sleep(0.01)
        redis.proc.kill()
        redis.proc.wait()
        answers = [conns.read(s) for s in conns.socks]
    finally:
        conns.close()
    assert [a[0] for a in answers] == [503] * 40
    assert all("retry-after" in a[1] for a in answers)
    redis.start()
    deadline = time.monotonic() + 10
    while edge.post(nginx.port, "/hooks/open", b"back")[0] != 202:
        assert time.monotonic() < deadline, nginx.log()
        time.sleep(0.05)
    assert not any(e["dedup_key"].startswith(b"dead-") for e in stored(redis.client()))


def redis_unread_bytes(redis):
    """Bytes waiting unread in the sockets of a (hung) Redis, from the kernel's socket table."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(f":{redis.port:04X}") and fields[3] == "01":  # ESTABLISHED
                total += int(fields[4].split(":")[1], 16)
    return total


@pytest.mark.parametrize("pad", [0, 3000], ids=["scripts", "guarded"])
def test_redis_killed_under_concurrent_load_loses_no_2xx(pad):
    """Redis (AOF, fsync always) is killed while 32 clients send as fast as they can: requests get
    503 or 2xx, never a hang, and every request answered 2xx is in the queue once Redis is back.
    With 3 KB bodies the turns go as guarded transactions (MULTI/EXEC in the AOF)."""
    redis = harness.RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
    nginx = harness.Nginx(HTTP, redis_port=redis.port)
    try:
        deadline = time.monotonic() + 10
        while edge.post(nginx.port, "/hooks/open", b"ready")[0] != 202:
            assert time.monotonic() < deadline, nginx.log()
            time.sleep(0.05)
        client = redis.client()
        results, lock = [], threading.Lock()
        stop = threading.Event()

        def sender(t):
            conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=15)
            n = 0
            while not stop.is_set():
                key = f"kill-{t}-{n}"
                try:
                    conn.request("POST", "/hooks/open", body=key.encode() + b"." * pad,
                                 headers={"X-Request-ID": key})
                    resp = conn.getresponse()
                    resp.read()
                    status, rid = resp.status, resp.getheader("X-Request-ID")
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=15)
                    status, rid = None, None
                with lock:
                    results.append((key, status, rid))
                n += 1
            conn.close()

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(32)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(1 for r in results if r[1] == 202) >= 300, "load before the kill")
            redis.proc.kill()
            redis.proc.wait()
            wait_for(lambda: sum(1 for r in results[-64:] if r[1] == 503) >= 32, "503s while down")
            redis.start()  # same folder: the AOF is loaded
            mark = len(results)
            wait_for(lambda: sum(1 for r in results[mark:] if r[1] == 202) >= 100, "load after")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not any(t.is_alive() for t in threads), "a client hung"
        statuses = Counter(r[1] for r in results)
        assert set(statuses) <= {202, 503}, statuses
        envs = {e["dedup_key"].decode(): e["request_id"] for e in stored(client)}
        missing = [(k, rid) for k, s, rid in results if s == 202 and envs.get(k) != rid]
        assert not missing, (len(missing), missing[:5], statuses)
        assert not pad or client.info("commandstats")["cmdstat_exec"]["calls"] > 0
    finally:
        nginx.close()
        redis.close()


def wait_for(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_batching_can_be_turned_off(redis_server):
    """hookq_redis_batch off: every request of a turn is its own script call, as before group
    commit (the commands are still pipelined in one write); a value other than on/off is refused."""
    nginx = harness.Nginx(HTTP.replace("hookq_redis_timeout 2s;", "hookq_redis_timeout 2s; hookq_redis_batch off;"),
                          redis_port=redis_server.port)
    client = redis_server.client()
    try:
        wait_for(lambda: edge.post(nginx.port, "/hooks/open", b"ready")[0] == 202, "ready")
        conns = Conns(nginx, 20)
        try:
            calls_before = ingest_calls(client)
            answers = conns.burst(nginx, [request_bytes("/hooks/open", f"off-{i}", b"off") for i in range(20)])
            calls = ingest_calls(client) - calls_before
        finally:
            conns.close()
        assert [a[0] for a in answers] == [202] * 20
        assert calls == 20
    finally:
        nginx.close()
    code, out = harness.nginx_test_config(HTTP.replace("hookq_redis_timeout 2s;", "hookq_redis_batch maybe;"))
    assert code != 0 and 'hookq_redis_batch: "maybe" is neither on nor off' in out, out
