"""The edge across reloads and nginx's helper processes: the status zone follows the number of
sources, and only worker processes hold a Redis connection."""

import os
import time

import edge
import harness


def sources_conf(n, extra_http=""):
    locs = "\n        ".join(
        f"location = /hooks/s{i} {{ hookq none; hookq_source s{i}; }}" for i in range(n))
    return """
    hookq_redis {redis};
    EXTRA
    server {
        listen 127.0.0.1:{port};
        LOCS
        location = /hookq/status { hookq_status; }
    }
""".replace("LOCS", locs).replace("EXTRA", extra_http)


def wait_for(predicate, timeout=15, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def hit_all_and_check(nginx, n, hits):
    for i in range(n):
        for j in range(hits):
            status, _, _ = edge.post(nginx.port, f"/hooks/s{i}", os.urandom(8).hex().encode())
            assert status == 202
    counters = edge.status_counters(nginx.port)
    for i in range(n):
        assert counters[(f"s{i}", "accepted")] == hits, (i, counters)


def test_reload_changing_the_number_of_sources(redis_server):
    """A reload that adds sources must size the shared counters for them: the old code reused the
    previous zone (same page-rounded size) and zeroed and counted past the block it had allocated."""
    nginx = harness.Nginx(sources_conf(1), redis_port=redis_server.port)
    try:
        wait_for(lambda: edge.post(nginx.port, "/hooks/s0", b"warm")[0] == 202, what="ready")
        # 1 -> 21 sources keeps the old zone's page-rounded size; 21 -> 40 -> 3 changes it.
        for n in (21, 40, 3, 21):
            old_workers = set(children(nginx))
            nginx.reload(sources_conf(n))
            # Until an old worker has exited it may still accept (and count in the old zone).
            wait_for(lambda: (lambda c: len(c) == 1 and not set(c) & old_workers)(children(nginx)),
                     what=f"reload to {n} sources")
            hit_all_and_check(nginx, n, 2)
        assert nginx.proc.poll() is None
        assert "exited on signal" not in nginx.log()
    finally:
        nginx.close()


def children(nginx):
    """{pid: process title} of the nginx master's children."""
    pid = nginx.proc.pid
    out = {}
    for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
        try:
            out[int(child)] = open(f"/proc/{child}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except FileNotFoundError:
            pass
    return out


def tcp_peers_by_inode():
    """{socket inode: remote port} of every IPv4 TCP socket on the machine."""
    peers = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            peers[fields[9]] = int(fields[2].split(":")[1], 16)
    return peers


def redis_sockets(pid, redis_port):
    peers = tcp_peers_by_inode()
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if link.startswith("socket:[") and peers.get(link[8:-1]) == redis_port:
            n += 1
    return n


def test_only_workers_connect_to_redis(redis_server):
    """nginx calls init_process in its cache manager and loader too; they must not connect."""
    workers = 2
    nginx = harness.Nginx(sources_conf(1, "proxy_cache_path {dir}/cache keys_zone=hookq_test:1m;"),
                          redis_port=redis_server.port, workers=workers)
    try:
        procs = wait_for(lambda: (lambda c: c if sum("worker process" in t for t in c.values()) == workers
                                  and any("cache manager" in t for t in c.values()) else None)(children(nginx)),
                         what="workers and the cache manager")
        # A helper's title is set after its init_process ran: a connection it opened exists now.
        manager = next(pid for pid, t in procs.items() if "cache manager" in t)
        client = redis_server.client()

        def nginx_clients():
            return [c for c in client.client_list() if c["name"] != "hookq-test"]

        client.client_setname("hookq-test")
        wait_for(lambda: len(nginx_clients()) >= workers, what="each worker's connection")
        assert redis_sockets(manager, redis_server.port) == 0
        for pid, title in procs.items():
            if "worker process" in title:
                assert redis_sockets(pid, redis_server.port) == 1
        assert len(nginx_clients()) == workers
    finally:
        nginx.close()


def test_unseedable_rng_stops_the_worker_loudly(redis_server, tmp_path):
    """If the request id generator cannot be seeded, every request would be a 500: the worker must
    refuse to start, with a line saying why, instead of serving silently broken."""
    import subprocess
    src = tmp_path / "norand.c"
    src.write_text("int RAND_bytes(unsigned char *b, int n) { (void)b; (void)n; return 0; }\n")
    lib = tmp_path / "norand.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    preload = str(lib)
    if harness.SANITIZE:  # the sanitizer runtime must stay first
        preload = harness.sanitizer_env()["LD_PRELOAD"] + ":" + preload
    nginx = harness.Nginx(sources_conf(1), redis_port=redis_server.port, env={"LD_PRELOAD": preload})
    try:
        wait_for(lambda: "cannot seed the request id generator" in nginx.log(), what="the EMERG line")
        wait_for(lambda: "exited with fatal code 2" in nginx.log(), what="the worker to stop")
        assert [l for l in nginx.log().splitlines() if "cannot seed" in l][0].find("[emerg]") >= 0
    finally:
        nginx.close()
