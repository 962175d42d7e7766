"""Envelope v1 and retry records exactly as DESIGN.md fixes them, for tests that enqueue directly.

    "HQE1" | request id (16 bytes, UUIDv7) | received_at u64 unix microseconds |
    u32-length-prefixed: source, dedup key, method, path+query, remote address |
    headers: u32 count, then (u32 len, name, u32 len, value) | u32-length-prefixed body

    "HQR1" | u32 attempt | u64 first_attempt_us | u32-length-prefixed route | envelope (rest)

All integers little-endian.
"""

import os
import struct
import time
import uuid


def uuid7(unix_ms=None):
    ms = int(time.time() * 1000) if unix_ms is None else unix_ms
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return uuid.UUID(bytes=bytes(b))


def _b(v):
    return v.encode() if isinstance(v, str) else bytes(v)


def _field(v):
    v = _b(v)
    return struct.pack("<I", len(v)) + v


def encode(request_id, received_at_us, source, dedup_key, method, target, remote_addr, headers,
           body):
    out = [b"HQE1", request_id.bytes, struct.pack("<Q", received_at_us)]
    for f in (source, dedup_key, method, target, remote_addr):
        out.append(_field(f))
    out.append(struct.pack("<I", len(headers)))
    for name, value in headers:
        out.append(_field(name))
        out.append(_field(value))
    out.append(_field(body))
    return b"".join(out)


def make(source, body=b'{"hello":"world"}', headers=None, content_type="application/json",
         request_id=None, received_at_us=None, target=None):
    """Returns (request id text, envelope bytes)."""
    rid = request_id or uuid7()
    hdrs = [("Host", "hooks.example.com"), ("Content-Type", content_type)]
    hdrs += list(headers or [])
    env = encode(rid, received_at_us or int(time.time() * 1_000_000), source, str(rid), "POST",
                 target or f"/hooks/{source}", "203.0.113.7", hdrs, body)
    return str(rid), env


def decode(data):
    """Decodes an envelope into a dict (for assertions)."""
    assert data[:4] == b"HQE1", data[:4]
    rid = uuid.UUID(bytes=data[4:20])
    (received_at,) = struct.unpack_from("<Q", data, 20)
    pos = 28

    def field():
        nonlocal pos
        (n,) = struct.unpack_from("<I", data, pos)
        v = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        return v

    source, dedup, method, target, remote = (field() for _ in range(5))
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    headers = [(field(), field()) for _ in range(count)]
    body = field()
    assert pos == len(data)
    return {"id": str(rid), "received_at_us": received_at, "source": source.decode(),
            "dedup_key": dedup, "method": method, "target": target, "remote": remote,
            "headers": headers, "body": body}


def decode_retry(data):
    assert data[:4] == b"HQR1", data[:4]
    attempt, first = struct.unpack_from("<IQ", data, 4)
    (n,) = struct.unpack_from("<I", data, 16)
    route = data[20:20 + n].decode()
    return {"attempt": attempt, "first_attempt_us": first, "route": route,
            "envelope": decode(data[20 + n:])}


def element_id(data):
    """Request id of a queue element, whether envelope or retry record."""
    if data[:4] == b"HQR1":
        return decode_retry(data)["envelope"]["id"]
    return decode(data)["id"]
