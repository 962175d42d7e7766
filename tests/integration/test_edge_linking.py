"""How the module sits inside nginx: what it exports, living beside another module's hiredis, and
one pipelined Redis connection per nginx worker process."""

import subprocess
import time

import pytest

import edge
import harness

NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"

CONF = """
    hookq_redis {redis};
    server {
        listen 127.0.0.1:{port};
        location = /hooks/open { hookq none; }
        location = /hookq/status { hookq_status; }
    }
"""


def test_exports_only_nginx_module_symbols():
    out = subprocess.run(["nm", "-D", "--defined-only", harness.MODULE_PATH],
                         capture_output=True, text=True, check=True).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert names == ["ngx_module_names", "ngx_module_order", "ngx_modules"]


@pytest.mark.parametrize("nchan_first", [True, False])
def test_beside_nchan_and_its_hiredis(redis_server, nchan_first):
    """Debian's nchan exports hiredis 1.x symbols; ours (0.14, static, hidden) must not bind to it."""
    nginx = harness.Nginx(CONF, redis_port=redis_server.port, extra_main=f"load_module {NCHAN};",
                          module_last=nchan_first)  # nchan loaded first when True
    try:
        deadline = time.monotonic() + 10
        while True:
            status, headers, _ = edge.post(nginx.port, "/hooks/open", f"nchan-{nchan_first}".encode())
            if status == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 202
        env = edge.decode_envelope(redis_server.client().lindex("hookq:{none}:queue", 0))
        assert env["request_id"] == headers["x-request-id"]
    finally:
        nginx.close()


def test_one_pipelined_connection_per_worker(redis_server):
    nginx = harness.Nginx(CONF, redis_port=redis_server.port, workers=2)
    try:
        from concurrent.futures import ThreadPoolExecutor
        time.sleep(0.5)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(
                lambda i: edge.post(nginx.port, "/hooks/open", f"p{i}".encode())[0], range(400)))
        assert statuses == [202] * 400
        client = redis_server.client()
        nginx_conns = [c for c in client.client_list() if c["cmd"] in ("evalsha", "eval")]
        assert len(nginx_conns) == 2, nginx_conns
        assert client.llen("hookq:{none}:queue") == 400
        # Both workers count into the same shared-memory counters.
        assert edge.status_counters(nginx.port)[("none", "accepted")] == 400
    finally:
        nginx.close()
