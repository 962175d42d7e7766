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
            nginx.reload(sources_conf(n))
            last = f's{n - 1}"'
            wait_for(lambda: last in edge.post(nginx.port, "/hookq/status", method="GET")[2].decode()
                     and f's{n}"' not in edge.post(nginx.port, "/hookq/status", method="GET")[2].decode(),
                     what=f"reload to {n} sources")
            # Old workers may still finish in-flight requests; new ones serve these.
            hit_all_and_check(nginx, n, 2)
        assert nginx.proc.poll() is None
        assert "exited on signal" not in nginx.log()
    finally:
        nginx.close()
