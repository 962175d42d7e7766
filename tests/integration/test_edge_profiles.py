"""Every profile end to end through real nginx + the built module + real redis-server.

Accepted requests must be in their queue byte-exact inside an envelope that decodes; rejected ones
must not be anywhere in Redis, and must be counted by reason at the status location.
"""

import base64
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest

import edge
import harness

VERDICT_STATUS = {"ok": None, "missing_signature": 401, "malformed_signature": 400,
                  "bad_signature": 401, "stale_timestamp": 401}
VERDICT_OUTCOME = {"missing_signature": "missing_signature", "malformed_signature": "malformed",
                   "bad_signature": "bad_signature", "stale_timestamp": "stale_timestamp"}


@pytest.fixture(scope="module")
def stack():
    redis = harness.RedisServer()
    secrets_dir = harness.TempDir("hookq-secrets-")
    paths = edge.secret_files(secrets_dir.path)
    nginx = harness.Nginx(edge.all_profiles_conf(paths), redis_port=redis.port,
                          env={"MS_TOKEN": edge.SECRETS["moysklad"]})
    yield nginx, redis.client()
    nginx.close()
    redis.close()
    secrets_dir.cleanup()


def queue(client, name):
    return [edge.decode_envelope(e) for e in client.lrange(f"hookq:{{{name}}}:queue", 0, -1)]


def find(client, name, request_id):
    matches = [e for e in queue(client, name) if e["request_id"] == request_id]
    assert len(matches) == 1, f"{request_id} queued {len(matches)} times in {name}"
    return matches[0]


def path_for(item):
    if item["scheme"] == "twilio":
        u = urlsplit(item["url"])
        return u.path + ("?" + u.query if u.query else "")
    return f"/hooks/{item['scheme']}"


def test_sdk_signed_requests(stack):
    nginx, client = stack
    # The locations hold the canonical secrets; items made to check a verifier against another
    # secret (wrong / bare forms) are unit-test material. Twilio items signed for another origin
    # than this location's hookq_public_url are too.
    items = [i for i in edge.sdk_vectors()
             if i["secret"] == edge.SECRETS[i["scheme"]]
             and (i["scheme"] != "twilio" or i["url"].startswith("https://example.com/"))]
    assert len(items) >= 30, "the SDK vectors shrank"
    schemes = set()
    for item in items:
        body = base64.b64decode(item["body_b64"])
        before = edge.status_counters(nginx.port)
        status, headers, _ = edge.post(nginx.port, path_for(item), body, item["headers"])
        expected = VERDICT_STATUS[item["expect"]]
        where = f"{item['name']} ({item['sdk']})"
        source = item["scheme"]
        after = edge.status_counters(nginx.port)
        if expected is None:
            # Some items reuse a delivery id on purpose: the repeat is a duplicate, same id.
            assert status == 202 or (status == 200 and headers["idempotent-replayed"] == "true"), where
            env = find(client, source, headers["x-request-id"])
            assert env["body"] == body or status == 200, where
            assert env["source"] == source.encode()
            assert env["method"] == b"POST"
            assert env["target"] == path_for(item).encode()
            if status == 202:
                for name, value in item["headers"].items():
                    assert edge.header_of(env, name) == value.encode(), (where, name)
            outcome = "accepted" if status == 202 else "duplicate"
            assert after[(source, outcome)] == before.get((source, outcome), 0) + 1
            schemes.add(source)
        else:
            assert status == expected, where
            assert after[(source, VERDICT_OUTCOME[item["expect"]])] == \
                before.get((source, VERDICT_OUTCOME[item["expect"]]), 0) + 1, where
    assert schemes == {"github", "stripe", "standard", "svix", "twilio"}


def test_rejected_requests_never_reach_redis(stack):
    nginx, client = stack
    client.flushdb()
    body = b'{"x":1}'
    bad = [("/hooks/github", {"X-Hub-Signature-256": "sha256=" + "0" * 64}),
           ("/hooks/shopify", {"X-Shopify-Hmac-Sha256": base64.b64encode(b"x" * 32).decode()}),
           ("/hooks/slack", edge.slack_headers(body, ts=1_000_000_000)),
           ("/hooks/custom", {"X-Signature": "sha256=" + "a" * 63}),
           ("/hooks/moysklad?token=wrong&requestId=1", {}),
           ("/hooks/github", {})]
    for path, headers in bad:
        status, _, _ = edge.post(nginx.port, path, body, headers)
        assert status in (400, 401), path
    assert client.keys("*") == []


@pytest.mark.parametrize("body", [b'{"id":1}', b"\x00\xff\xfe binary \x00", b"x" * (256 * 1024), b""])
def test_own_signers_byte_exact(stack, body):
    nginx, client = stack
    cases = [("/hooks/github", edge.github_headers(body), "github"),
             ("/hooks/shopify", edge.shopify_headers(body), "shopify"),
             ("/hooks/slack", edge.slack_headers(body), "slack"),
             ("/hooks/custom", edge.custom_headers(body), "hmac"),
             ("/hooks/open", {}, "none")]
    for path, headers, source in cases:
        status, h, _ = edge.post(nginx.port, path, body, headers)
        assert status == 202, path
        env = find(client, source, h["x-request-id"])
        assert env["body"] == body
        assert uuid.UUID(env["request_id"]).version == 7


def test_dedup_keys_per_profile(stack):
    nginx, client = stack
    body = b'{"n":42}'
    gh = edge.github_headers(body, delivery="gh-delivery-1")
    _, h, _ = edge.post(nginx.port, "/hooks/github", body, gh)
    assert find(client, "github", h["x-request-id"])["dedup_key"] == b"gh-delivery-1"
    custom = edge.custom_headers(body, request_id="partner-77")
    _, h, _ = edge.post(nginx.port, "/hooks/custom", body, custom)
    assert find(client, "hmac", h["x-request-id"])["dedup_key"] == b"partner-77"
    status, h, _ = edge.post(nginx.port, f"/hooks/moysklad?token={edge.SECRETS['moysklad']}&requestId=ms-9", body)
    assert status == 204
    env = find(client, "moysklad", h["x-request-id"])
    assert env["dedup_key"] == b"ms-9"
    # The shared token is a secret: checked at the edge, never stored.
    assert env["target"] == b"/hooks/moysklad?token=[redacted]&requestId=ms-9"
    # No delivery id in the request: the body's SHA-256 is the key.
    _, h, _ = edge.post(nginx.port, "/hooks/open", b"unique body 1")
    import hashlib
    assert find(client, "none", h["x-request-id"])["dedup_key"] == \
        hashlib.sha256(b"unique body 1").hexdigest().encode()


def test_duplicate_answers_with_original_id(stack):
    nginx, client = stack
    body = b'{"dup":true}'
    headers = edge.github_headers(body, delivery="dup-1")
    s1, h1, _ = edge.post(nginx.port, "/hooks/github", body, headers)
    s2, h2, _ = edge.post(nginx.port, "/hooks/github", body, headers)
    assert (s1, s2) == (202, 200)
    assert h2["x-request-id"] == h1["x-request-id"]
    assert h2["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in h1
    ttl = client.ttl("hookq:{github}:dedup:dup-1")
    assert 71 * 3600 < ttl <= 72 * 3600


def test_slack_url_verification_answered_by_edge(stack):
    nginx, client = stack
    client.flushdb()
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    status, _, text = edge.post(nginx.port, "/hooks/slack", body, edge.slack_headers(body))
    assert status == 200
    assert text == b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert client.llen("hookq:{slack}:queue") == 0
    # Unsigned challenges are refused like anything else.
    status, _, _ = edge.post(nginx.port, "/hooks/slack", body, {"X-Slack-Signature": "v0=" + "0" * 64,
                                                                "X-Slack-Request-Timestamp": "1"})
    assert status == 401


def test_method_and_size_limits(stack):
    nginx, _ = stack
    before = edge.status_counters(nginx.port)
    status, headers, _ = edge.post(nginx.port, "/hooks/github", method="GET")
    assert status == 405 and headers["allow"] == "POST"
    big = b"x" * (1024 * 1024 + 1)
    status, _, _ = edge.post(nginx.port, "/hooks/github", big, edge.github_headers(big))
    assert status == 413
    # nginx answers an oversized Content-Length before reading the body and logs the request
    # (where it is counted) only once it has discarded the rest: allow it a moment.
    deadline = time.monotonic() + 5
    while True:
        after = edge.status_counters(nginx.port)
        if after[("github", "too_large")] > before.get(("github", "too_large"), 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after[("github", "method_not_allowed")] == before.get(("github", "method_not_allowed"), 0) + 1
    assert after[("github", "too_large")] == before.get(("github", "too_large"), 0) + 1


def test_status_has_latency_histogram(stack):
    nginx, _ = stack
    _, _, text = edge.post(nginx.port, "/hookq/status", method="GET")
    text = text.decode()
    assert 'hookq_edge_latency_seconds_bucket{source="github",le="+Inf"}' in text
    count = [l for l in text.splitlines() if l.startswith('hookq_edge_latency_seconds_count{source="github"}')]
    assert int(count[0].split()[-1]) > 0
