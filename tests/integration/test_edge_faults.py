"""The edge under faults: Redis down, hung or restarted, a full queue, a flood of one dedup key,
reloads under load, clients that hang up mid-flight. Never a hang, never a false 2xx."""

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import edge
import harness

TIMEOUT_MS = 300


def conf(extra_loc="", redis_extra=""):
    return """
    hookq_redis {redis} REDISOPTS;
    hookq_redis_timeout TIMEOUTms;
    hookq_redis_connect_timeout 500ms;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/open { hookq none; EXTRA }
        location = /hooks/github { hookq github; hookq_secret SECRET; EXTRA }
        location = /hookq/status { hookq_status; }
        location = /nginx/status { stub_status; }
    }
""".replace("REDISOPTS", redis_extra).replace("EXTRA", extra_loc).replace("TIMEOUT", str(TIMEOUT_MS)) \
   .replace("SECRET", '"' + edge.SECRETS["github"] + '"')


@pytest.fixture
def stack(redis_server):
    nginx = harness.Nginx(conf(), redis_port=redis_server.port)
    wait_ready(nginx)
    yield nginx, redis_server
    nginx.close()


def wait_ready(nginx, path="/hooks/open", timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, _ = edge.post(nginx.port, path, os.urandom(8).hex().encode())
        if status == 202:
            return
        time.sleep(0.05)
    raise AssertionError("edge never became ready")


def test_redis_down_is_503_fast_and_recovers_without_reload(stack):
    nginx, redis = stack
    redis.stop()
    for _ in range(5):
        t0 = time.monotonic()
        status, headers, _ = edge.post(nginx.port, "/hooks/open", os.urandom(8).hex().encode())
        elapsed = time.monotonic() - t0
        assert status == 503
        assert headers["retry-after"] == "5"
        assert "x-request-id" not in headers
        # Answered by the timer at worst, never held until the client gives up (10 s); the bound
        # is loose because CI machines (and ASan) stall.
        assert elapsed < TIMEOUT_MS / 1000 + 3
    redis.start()  # same port, empty dataset
    wait_ready(nginx, timeout=10)
    assert redis.client().llen("hookq:{none}:queue") >= 1
    counters = edge.status_counters(nginx.port)
    assert counters[("none", "redis_error")] >= 5


def test_hung_redis_times_out_then_recovers(stack):
    nginx, redis = stack
    redis.pause()
    try:
        errors_before = edge.status_counters(nginx.port).get(("none", "redis_error"), 0)
        t0 = time.monotonic()
        status, headers, _ = edge.post(nginx.port, "/hooks/open", b"while hung")
        elapsed = time.monotonic() - t0
        assert status == 503
        assert "retry-after" in headers
        # The answer came from hookq_redis_timeout's timer: not before it, and the link was then
        # dropped as unresponsive (its log line is the event). The upper bound only rules out a
        # hang (the client would wait 10 s); CI machines stall, so it is loose.
        assert elapsed >= TIMEOUT_MS / 1000 * 0.9
        assert elapsed < TIMEOUT_MS / 1000 + 3
        assert "no reply within hookq_redis_timeout" in nginx.log()
        assert edge.status_counters(nginx.port)[("none", "redis_error")] == errors_before + 1
    finally:
        redis.resume()
    wait_ready(nginx)
    # The command that timed out may still have been applied once Redis woke up; the provider's
    # retry of it is then answered as a duplicate of what is stored, never lost.
    status, _, _ = edge.post(nginx.port, "/hooks/open", b"while hung")
    assert status in (200, 202)
    assert redis.client().llen("hookq:{none}:queue") >= 1


def test_script_cache_flushed_is_reloaded(stack):
    nginx, redis = stack
    redis.client().script_flush()
    status, _, _ = edge.post(nginx.port, "/hooks/open", b"after SCRIPT FLUSH")
    assert status == 202
    status, _, _ = edge.post(nginx.port, "/hooks/open", b"after SCRIPT FLUSH 2")
    assert status == 202


def test_queue_depth_limit_is_503_and_not_remembered(redis_server):
    nginx = harness.Nginx(conf("hookq_max_queue_depth 3;"), redis_port=redis_server.port)
    try:
        client = redis_server.client()
        wait_ready(nginx)  # one accepted
        statuses = [edge.post(nginx.port, "/hooks/open", f"b{i}".encode())[0] for i in range(4)]
        assert statuses == [202, 202, 503, 503]
        status, headers, _ = edge.post(nginx.port, "/hooks/open", b"b2")
        assert status == 503 and headers["retry-after"] == "5"
        assert client.llen("hookq:{none}:queue") == 3
        # Refused requests left no dedup key: once drained, the provider's retry is accepted.
        client.rpop("hookq:{none}:queue")
        status, _, _ = edge.post(nginx.port, "/hooks/open", b"b2")
        assert status == 202
        assert edge.status_counters(nginx.port)[("none", "queue_full")] == 3
    finally:
        nginx.close()


def test_hundred_concurrent_requests_one_dedup_key(stack):
    nginx, redis = stack
    body = b'{"same":"delivery"}'
    headers = edge.github_headers(body, delivery="flood-1")
    barrier = threading.Barrier(100)

    def one(_):
        barrier.wait()
        return edge.post(nginx.port, "/hooks/github", body, headers)

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 99 + [202]
    first = next(r for r in results if r[0] == 202)[1]["x-request-id"]
    assert all(r[1]["x-request-id"] == first for r in results)
    assert all(r[1].get("idempotent-replayed") == "true" for r in results if r[0] == 200)
    envelopes = redis.client().lrange("hookq:{github}:queue", 0, -1)
    assert [edge.decode_envelope(e)["request_id"] for e in envelopes] == [first]


def test_reload_under_load_fails_no_request(stack):
    nginx, redis = stack
    stop = threading.Event()
    failures, done = [], []

    def load(n):
        i = 0
        while not stop.is_set():
            body = f"reload-{n}-{i}".encode()
            try:
                status, _, _ = edge.post(nginx.port, "/hooks/open", body)
                (done if status == 202 else failures).append(status)
            except OSError as e:
                failures.append(repr(e))
            i += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(0.7)
            nginx.reload()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert len(done) > 100
    assert redis.client().llen("hookq:{none}:queue") == len(done) + 1  # +1: wait_ready's


def redis_rx_queue(redis_port):
    """Bytes waiting unread in Redis's sockets (Redis stopped: what clients sent it meanwhile)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == redis_port and fields[3] == "01":  # ESTABLISHED
                total += int(fields[4].split(":")[1], 16)
    return total


def active_connections(nginx):
    _, _, text = edge.post(nginx.port, "/nginx/status", method="GET")
    return int(text.decode().split("Active connections:")[1].split()[0])


def wait_until(predicate, what, timeout=15):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def abort_after_sending(port, body):
    """Sends a whole request, then resets the connection without reading the answer."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    reset(s)


def worker_rss_kb(nginx):
    pids = [int(p) for p in open(f"/proc/{nginx.proc.pid}/task/{nginx.proc.pid}/children").read().split()]
    return sum(int(l.split()[1]) for pid in pids for l in open(f"/proc/{pid}/status")
               if l.startswith("VmRSS:"))


def queued_bodies(client, prefix):
    return [e for e in (edge.decode_envelope(x)["body"] for x in client.lrange("hookq:{none}:queue", 0, -1))
            if e.startswith(prefix)]


def test_clients_hanging_up_mid_flight(redis_server):
    """Run in the ASan build too: a reply for a request that is gone must never touch it."""
    # A long hookq_redis_timeout: no request timer may fire while Redis is stopped, so each request
    # can only end by its client going away.
    nginx = harness.Nginx(conf().replace(f"hookq_redis_timeout {TIMEOUT_MS}ms", "hookq_redis_timeout 60s"),
                          redis_port=redis_server.port)
    redis = redis_server
    client = redis.client()
    try:
        wait_ready(nginx)
        accepted_before = edge.status_counters(nginx.port)[("none", "accepted")]

        # 1. Hung Redis. Each request's command is proven on its way to Redis (it shows up unread
        # in Redis's socket) before its client resets the connection.
        n = 100
        redis.pause()
        try:
            for i in range(n):
                before = redis_rx_queue(redis.port)
                s = socket.create_connection(("127.0.0.1", nginx.port))
                body = b"gone-while-hung-%d" % i
                s.sendall(b"POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                wait_until(lambda: redis_rx_queue(redis.port) > before, "the command to reach Redis")
                reset(s)
            # nginx noticed every hang-up and freed the request (its command still in flight).
            wait_until(lambda: active_connections(nginx) == 1, "nginx to free the aborted requests")
            assert nginx.log().count("client prematurely closed connection") >= n
        finally:
            redis.resume()
        # Redis runs every command it was sent; the replies reach nginx for requests that are gone.
        wait_until(lambda: len(queued_bodies(client, b"gone-while-hung-")) == n, "the commands to run")
        wait_ready(nginx)
        # Those replies were dropped: nothing was answered or counted for a freed request.
        counters = edge.status_counters(nginx.port)
        assert counters[("none", "accepted")] == accepted_before + 1  # + wait_ready's

        # 2. Under load: clients hang up at random points while others carry on.
        def churn(k):
            for i in range(150):
                abort_after_sending(nginx.port, f"churn-{k}-{i}".encode())

        def rounds():
            tag = os.urandom(6).hex()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(churn, range(8)))
                ok = list(pool.map(lambda i: edge.post(nginx.port, "/hooks/open", f"ok-{tag}-{i}".encode())[0],
                                   range(200)))
            assert ok == [202] * 200
            # Every aborted request ends and frees its connection.
            wait_until(lambda: active_connections(nginx) == 1, "nginx to free the aborted requests")

        rounds()
        rounds()
        rss_warm = worker_rss_kb(nginx)
        for _ in range(4):
            rounds()
        # Detached commands are recycled and aborted requests' pools freed: four more rounds (4800
        # aborted requests, each holding several KB while alive) leave the worker's RSS well under
        # what keeping them would cost (~20 MB). The bound is loose on purpose: allocator noise.
        # (ASan's quarantine holds freed memory on purpose, so RSS says nothing there.)
        if not harness.SANITIZE:
            assert worker_rss_kb(nginx) - rss_warm < 8192
        assert nginx.proc.poll() is None
    finally:
        nginx.close()


def test_password_and_db(tmp_path):
    pw = tmp_path / "redis.pass"
    pw.write_text("s3cret-pass\n")
    redis = harness.RedisServer(["--requirepass", "s3cret-pass"])
    nginx = harness.Nginx(conf(redis_extra=f"db=3 password_file={pw}"), redis_port=redis.port)
    try:
        wait_ready(nginx)
        client = redis.client(password="s3cret-pass", db=3)
        assert client.llen("hookq:{none}:queue") == 1
        assert "s3cret-pass" not in nginx.log()
    finally:
        nginx.close()
        redis.close()


def test_redis_out_of_memory_is_503_and_leaves_nothing():
    """With maxmemory reached, the ingest script fails at its first write (the dedup SET), so a
    refused request leaves no dedup key behind: its retry is not mistaken for a duplicate."""
    redis = harness.RedisServer(["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
    nginx = harness.Nginx(conf(), redis_port=redis.port)
    try:
        wait_ready(nginx)
        filler = os.urandom(150_000).hex().encode()
        statuses = [edge.post(nginx.port, "/hooks/open", filler + b"%d" % i)[0] for i in range(30)]
        assert 202 in statuses and statuses[-1] == 503
        refused = statuses.index(503)
        assert all(s == 503 for s in statuses[refused:])
        client = redis.client()
        accepted = statuses.count(202) + 1  # + wait_ready's
        assert client.llen("hookq:{none}:queue") == accepted
        assert len(client.keys("hookq:{none}:dedup:*")) == accepted
        # The provider's retry of a refused request is refused again, not answered "duplicate".
        assert edge.post(nginx.port, "/hooks/open", filler + b"%d" % refused)[0] == 503
        assert edge.status_counters(nginx.port)[("none", "redis_error")] >= 30 - refused
    finally:
        nginx.close()
        redis.close()


def test_queue_key_of_wrong_type_writes_nothing(stack):
    """Someone SET the queue key as a string: the ingest script must refuse before its first write,
    or the dedup key it left would make the provider's retry a "duplicate" of nothing stored."""
    nginx, redis = stack
    client = redis.client()
    queue = "hookq:{github}:queue"
    client.set(queue, "not a list")
    body = b'{"wrong":"type"}'
    headers = edge.github_headers(body, delivery="wrongtype-1")
    status, resp_headers, _ = edge.post(nginx.port, "/hooks/github", body, headers)
    assert status == 503 and resp_headers["retry-after"] == "5"
    assert client.keys("hookq:{github}:dedup:*") == []
    assert client.get(queue) == b"not a list"
    assert f'queue key "{queue}" holds a string' in nginx.log()

    client.delete(queue)  # the operator fixes the key; the provider retries the same delivery
    status, resp_headers, _ = edge.post(nginx.port, "/hooks/github", body, headers)
    assert status == 202
    stored = [edge.decode_envelope(e) for e in client.lrange(queue, 0, -1)]
    assert [e["request_id"] for e in stored] == [resp_headers["x-request-id"]]
    assert stored[0]["body"] == body and stored[0]["dedup_key"] == b"wrongtype-1"


def test_failed_select_never_runs_commands_in_db0():
    """hookq_redis db=99 on a Redis with 16 databases: SELECT fails. Commands must not be pipelined
    behind it, or Redis runs them in db 0. Redis is paused while the worker connects, so requests
    arrive while the handshake is pending (before the fix they were queued right behind it)."""
    redis = harness.RedisServer()
    redis.pause()
    nginx = None
    try:
        nginx = harness.Nginx(conf(redis_extra="db=99").replace("500ms", "5s"), redis_port=redis.port)
        statuses = [edge.post(nginx.port, "/hooks/open", f"db99-{i}".encode())[0] for i in range(5)]
        assert statuses == [503] * 5
        redis.resume()
        client = redis.client()
        wait_log(nginx, "handshake failed: ERR DB index is out of range")
        statuses = [edge.post(nginx.port, "/hooks/open", f"db99-after-{i}".encode())[0] for i in range(5)]
        assert statuses == [503] * 5
        assert client.dbsize() == 0, client.keys("*")
    finally:
        if nginx:
            nginx.close()
        redis.close()


def wait_log(nginx, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in nginx.log():
        assert time.monotonic() < deadline, f"no {text!r} in the error log"
        time.sleep(0.05)


def test_redis_at_maxmemory_logs_a_handful_of_lines():
    """Every request fails the same way while Redis is at maxmemory: 503 each, but the error log
    gets at most about one line a second per worker, with a count of the lines held back."""
    redis = harness.RedisServer(["--maxmemory", "1", "--maxmemory-policy", "noeviction"])
    nginx = harness.Nginx(conf(), redis_port=redis.port)
    try:
        t0 = time.monotonic()
        statuses = []
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(
                lambda i: edge.post(nginx.port, "/hooks/open", f"oom-{i}".encode())[0], range(200)))
        elapsed = time.monotonic() - t0
        assert statuses == [503] * 200
        lines = [l for l in nginx.log().splitlines() if "ingest failed" in l]
        assert lines and "OOM" in lines[0]
        assert len(lines) <= 2 + int(elapsed), (elapsed, lines)
        # What was held back is counted on the next line written.
        edge_deadline = time.monotonic() + 5
        while time.monotonic() < edge_deadline and "not logged" not in nginx.log():
            edge.post(nginx.port, "/hooks/open", os.urandom(8).hex().encode())
            time.sleep(0.1)
        assert "similar lines not logged" in nginx.log()
        assert redis.client().dbsize() == 0
    finally:
        nginx.close()
        redis.close()
