"""MoySklad's shared token never reaches Redis, in any letter case or token mode, and the shipped
log format keeps it out of the access log; the error log's quoted request line is redacted too."""

import os
import re

import pytest

import edge
import harness

TOKEN = edge.SECRETS["moysklad"]


def shipped_log_format():
    with open(os.path.join(harness.SOURCE_DIR, "conf", "nginx", "hookq-http.conf")) as f:
        text = "\n".join(line.split("#", 1)[0] for line in f.read().splitlines())
    m = re.search(r"log_format\s+hookq_redacted\b.*?;", text, re.S)
    assert m, "hookq-http.conf ships log_format hookq_redacted"
    return m.group(0)


@pytest.fixture(scope="module")
def stack():
    redis = harness.RedisServer()
    nginx = harness.Nginx("""
    hookq_redis {redis};
    LOGFORMAT
    server {
        listen 127.0.0.1:{port};
        access_log {dir}/access.log hookq_redacted;
        location = /hooks/moysklad { hookq moysklad; hookq_secret env:MS_TOKEN; }
        location = /hooks/ms-header {
            hookq moysklad; hookq_secret env:MS_TOKEN; hookq_token_header X-Token;
            hookq_source ms-header;
        }
        location = /hooks/ms-arg {
            hookq moysklad; hookq_secret env:MS_TOKEN; hookq_token_arg key; hookq_source ms-arg;
        }
    }
""".replace("LOGFORMAT", shipped_log_format()), redis_port=redis.port, env={"MS_TOKEN": TOKEN})
    yield nginx, redis.client()
    nginx.close()
    redis.close()


def stored(client, source, request_id):
    for raw in client.lrange(f"hookq:{{{source}}}:queue", 0, -1):
        if edge.decode_envelope(raw)["request_id"] == request_id:
            return raw
    raise AssertionError(f"{request_id} not queued in {source}")


@pytest.mark.parametrize("path,headers,source,target", [
    (f"/hooks/moysklad?TOKEN={TOKEN}&requestId=r1", {}, "moysklad",
     b"/hooks/moysklad?TOKEN=[redacted]&requestId=r1"),
    (f"/hooks/moysklad?requestId=r2&Token={TOKEN}", {}, "moysklad",
     b"/hooks/moysklad?requestId=r2&Token=[redacted]"),
    (f"/hooks/moysklad?token={TOKEN}&requestId=r3&tOkEn={TOKEN}x", {}, "moysklad",
     b"/hooks/moysklad?token=[redacted]&requestId=r3&tOkEn=[redacted]"),
    (f"/hooks/ms-header?token={TOKEN}&requestId=r4", {"X-Token": TOKEN}, "ms-header",
     b"/hooks/ms-header?token=[redacted]&requestId=r4"),
    (f"/hooks/ms-arg?KEY={TOKEN}&token={TOKEN}&requestId=r5", {}, "ms-arg",
     b"/hooks/ms-arg?KEY=[redacted]&token=[redacted]&requestId=r5"),
])
def test_token_never_stored(stack, path, headers, source, target):
    nginx, client = stack
    status, h, _ = edge.post(nginx.port, path, b'{"ms":1}', headers)
    assert status == 202
    raw = stored(client, source, h["x-request-id"])
    assert TOKEN.encode() not in raw
    env = edge.decode_envelope(raw)
    assert env["target"] == target
    if headers:
        assert edge.header_of(env, "X-Token") == b"[redacted]"


def test_logs_carry_no_token(stack):
    nginx, client = stack
    # Accepted, refused (405 before any body is read, 401 wrong token) and a client that hangs up
    # mid-body, which nginx reports in error.log quoting the request line.
    assert edge.post(nginx.port, f"/hooks/moysklad?Token={TOKEN}&requestId=l1", b"x")[0] == 202
    assert edge.post(nginx.port, f"/hooks/moysklad?TOKEN={TOKEN}", method="GET")[0] == 405
    assert edge.post(nginx.port, f"/hooks/ms-header?token={TOKEN}", b"x", {"X-Token": "no"})[0] == 401
    import socket
    with socket.create_connection(("127.0.0.1", nginx.port)) as s:
        s.sendall(f"POST /hooks/moysklad?token={TOKEN}&requestId=l2 HTTP/1.1\r\nHost: x\r\n"
                  "Content-Length: 100\r\n\r\npartial".encode())
    edge.post(nginx.port, "/hooks/moysklad", method="GET")  # flushes the access log line order
    nginx.stop()  # flushes and closes both logs
    access = open(os.path.join(nginx.dir.path, "access.log")).read()
    assert "/hooks/moysklad" in access and "/hooks/ms-header" in access
    assert TOKEN not in access
    error = nginx.log()
    assert "prematurely closed" in error and "token=[redacted]" in error
    assert TOKEN not in error
