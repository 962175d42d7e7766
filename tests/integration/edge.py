"""Support for the edge tests: signing, raw HTTP, reading back what the module queued."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import struct
import subprocess
import tempfile
import time
import uuid

import harness

SECRETS = {
    "github": "It's a Secret to Everybody",
    "stripe": "whsec_hookqTestSecret0123456789abcdef",
    "standard": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "svix": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "shopify": "shpss_hookq_test_secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "twilio": "12345678901234567890123456789012",
    "moysklad": "ms-shared-token-1",
    "hmac": "custom-partner-secret",
}


def secret_files(directory):
    """Writes each secret to a file (with the trailing newline editors add) and returns the paths."""
    paths = {}
    for name, value in SECRETS.items():
        path = os.path.join(directory, f"{name}.secret")
        with open(path, "w") as f:
            f.write(value + "\n")
        paths[name] = path
    return paths


def all_profiles_conf(paths, extra_loc="", twilio_public_url="https://example.com"):
    """One location per profile, as an operator would write them."""
    locs = []
    for name in ("github", "stripe", "standard", "svix", "shopify", "slack"):
        locs.append(f"location = /hooks/{name} {{ hookq {name}; hookq_secret file:{paths[name]}; {extra_loc} }}")
    locs.append(f"location = /hooks/twilio {{ hookq twilio; hookq_secret file:{paths['twilio']}; "
                f"hookq_public_url {twilio_public_url}; {extra_loc} }}")
    locs.append(f"location = /hooks/moysklad {{ hookq moysklad; hookq_secret env:MS_TOKEN; "
                f"hookq_accept_status 204; {extra_loc} }}")
    locs.append(f"location = /hooks/custom {{ hookq hmac; hookq_secret file:{paths['hmac']}; "
                f"hookq_signature_header X-Signature sha256 hex prefix=sha256=; "
                f"hookq_dedup_key $http_x_request_id; {extra_loc} }}")
    locs.append(f"location = /hooks/open {{ hookq none; {extra_loc} }}")
    body = "\n        ".join(locs)
    return """
    hookq_redis {redis};
    hookq_redis_timeout 300ms;
    server {
        listen 127.0.0.1:{port};
        BODY
        location = /hookq/status { hookq_status; }
        location = /plain { return 204; }
    }
""".replace("BODY", body)


def post(port, path, body=b"", headers=None, method="POST", timeout=10):
    """Sends one request on a fresh connection; returns (status, headers dict lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def status_counters(port):
    """Parses hookq_edge_requests_total from the status location: {(source, outcome): n}."""
    _, _, text = post(port, "/hookq/status", method="GET")
    counters = {}
    for line in text.decode().splitlines():
        if line.startswith("hookq_edge_requests_total{"):
            labels, value = line[len("hookq_edge_requests_total{"):].split("} ")
            parts = dict(p.split("=", 1) for p in labels.split(","))
            counters[(parts["source"].strip('"'), parts["outcome"].strip('"'))] = int(value)
    return counters


# --- envelope v1 (DESIGN.md) -------------------------------------------------------------------

def decode_envelope(data):
    """Decodes envelope v1 strictly: every length checked, no trailing bytes."""
    assert data[:4] == b"HQE1", data[:8]
    pos = 4
    rid = uuid.UUID(bytes=bytes(data[pos:pos + 16]))
    pos += 16
    (received_at_us,) = struct.unpack_from("<Q", data, pos)
    pos += 8

    def field():
        nonlocal pos
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        assert pos + n <= len(data), "field overruns the envelope"
        value = bytes(data[pos:pos + n])
        pos += n
        return value

    env = {"request_id": str(rid), "received_at_us": received_at_us}
    for name in ("source", "dedup_key", "method", "target", "remote_addr"):
        env[name] = field()
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    env["headers"] = [(field(), field()) for _ in range(count)]
    env["body"] = field()
    assert pos == len(data), "trailing bytes after the body"
    return env


def header_of(env, name):
    for k, v in env["headers"]:
        if k.lower() == name.lower().encode():
            return v
    return None


# --- signed requests ----------------------------------------------------------------------------

def sdk_vectors():
    """Fresh requests signed by the providers' own SDKs (timestamps are now, so none is stale)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(["node", os.path.join(harness.SOURCE_DIR, "tests/sdk/make-vectors.mjs"), f.name],
                       check=True, capture_output=True)
        with open(f.name) as g:
            return json.load(g)


def hmac_hex(key, msg, alg=hashlib.sha256):
    return hmac.new(key.encode() if isinstance(key, str) else key, msg, alg).hexdigest()


def hmac_b64(key, msg, alg=hashlib.sha256):
    return base64.b64encode(hmac.new(key.encode(), msg, alg).digest()).decode()


def github_headers(body, delivery=None, secret=SECRETS["github"]):
    return {"X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body),
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-GitHub-Event": "push",
            "Content-Type": "application/json"}


def shopify_headers(body, webhook_id=None):
    return {"X-Shopify-Hmac-Sha256": hmac_b64(SECRETS["shopify"], body),
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "Content-Type": "application/json"}


def slack_headers(body, ts=None):
    ts = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + ts.encode() + b":" + body
    return {"X-Slack-Signature": "v0=" + hmac_hex(SECRETS["slack"], base),
            "X-Slack-Request-Timestamp": ts, "Content-Type": "application/json"}


def custom_headers(body, request_id=None):
    return {"X-Signature": "sha256=" + hmac_hex(SECRETS["hmac"], body),
            "X-Request-ID": request_id or str(uuid.uuid4())}
