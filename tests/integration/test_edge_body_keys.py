"""Keys from the body: hookq_json_var fields and $hookq_body_sha256 in hookq_dedup_key, so one line
of nginx configuration dedups on "{tenant}:{action}:{entity}" or on content. A key that names a
field the body does not have falls back to the body's hash: distinct webhooks never share a key."""

import hashlib
import json

import pytest

import edge
import harness

QUEUE = "hookq:{none}:queue"

HTTP = """
    hookq_redis {redis};
    hookq_json_var $hk_tenant /tenant;
    hookq_json_var $hk_action /events/0/action;
    hookq_json_var $hk_href /events/0/meta/href;
    hookq_json_var $hk_odd /a~1b/c~0d;
    hookq_json_var $hk_num /n;
    log_format keys '$request_uri key-parts=$hk_tenant|$hookq_body_sha256';
    server {
        listen 127.0.0.1:{port};
        location = /hooks/entity {
            hookq none;
            hookq_dedup_key "$hk_tenant:$hk_action:$hk_href";
            access_log {dir}/keys.log keys;
        }
        location = /hooks/content { hookq none; hookq_dedup_key "$hk_tenant:$hookq_body_sha256"; }
        location = /hooks/small { hookq none; hookq_dedup_key "t=$hk_tenant"; hookq_json_max_size 64; }
        location = /hooks/odd { hookq none; hookq_dedup_key "$hk_odd|$hk_num"; }
        location = /hookq/status { hookq_status; }
    }
"""


@pytest.fixture(scope="module")
def stack():
    redis = harness.RedisServer()
    nginx = harness.Nginx(HTTP, redis_port=redis.port)
    yield nginx, redis
    nginx.close()
    redis.close()


def send(nginx, path, doc):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, headers, _ = edge.post(nginx.port, path, body, {"Content-Type": "application/json"})
    assert status in (200, 202), (status, nginx.log()[-2000:])
    return status, headers, body


def key_of(redis, request_id):
    for raw in redis.client().lrange(QUEUE, 0, -1):
        env = edge.decode_envelope(raw)
        if env["request_id"] == request_id:
            return env["dedup_key"].decode()
    raise AssertionError(f"{request_id} not queued")


def sha(body):
    return hashlib.sha256(body).hexdigest()


def product_update(tenant, href, pad):
    return {"tenant": tenant, "events": [{"meta": {"type": "product", "href": href},
                                          "action": "UPDATE"}], "pad": pad}


def test_fields_make_the_key_and_repeats_are_duplicates(stack):
    nginx, redis = stack
    status, h1, _ = send(nginx, "/hooks/entity", product_update("t1", "https://x/p/1", 1))
    assert status == 202
    assert key_of(redis, h1["x-request-id"]) == "t1:UPDATE:https://x/p/1"
    # Another body (other padding, other member order), same fields: the same webhook.
    again = {"pad": 2, "events": [{"action": "UPDATE", "meta": {"href": "https://x/p/1"}}],
             "tenant": "t1"}
    status, h2, _ = send(nginx, "/hooks/entity", again)
    assert (status, h2["idempotent-replayed"], h2["x-request-id"]) == (200, "true",
                                                                       h1["x-request-id"])
    # Any field different: a different webhook.
    for tenant, href in (("t2", "https://x/p/1"), ("t1", "https://x/p/2")):
        status, h, _ = send(nginx, "/hooks/entity", product_update(tenant, href, 1))
        assert status == 202
        assert key_of(redis, h["x-request-id"]) == f"{tenant}:UPDATE:{href}"
    # The variables read in the access log, after the request, are the same values.
    log = open(nginx.dir.path + "/keys.log").read()
    assert f"/hooks/entity key-parts=t1|{sha(json.dumps(product_update('t1', 'https://x/p/1', 1)).encode())}" in log


def test_body_sha256_is_the_hex_hash_of_the_raw_body(stack):
    nginx, redis = stack
    _, h, body = send(nginx, "/hooks/content", {"tenant": "acme", "x": "é"})
    assert key_of(redis, h["x-request-id"]) == "acme:" + sha(body)
    # One byte of whitespace more is other content.
    status, h2, body2 = send(nginx, "/hooks/content", body + b" ")
    assert status == 202 and key_of(redis, h2["x-request-id"]) == "acme:" + sha(body2)


@pytest.mark.parametrize("body", [
    b'{"events": [{"action": "UPDATE", "meta": {"href": "h"}}]}',     # no tenant
    b'{"tenant": {"id": 1}, "events": [{"action": "A", "meta": {"href": "h"}}]}',  # not a scalar
    b'{"tenant": null, "events": [{"action": "A", "meta": {"href": "h"}}]}',
    b'not json at all',
    b'',
])
def test_a_missing_field_makes_the_key_the_body_hash(stack, body):
    nginx, redis = stack
    status, h, _ = send(nginx, "/hooks/entity", body)
    assert status == 202
    assert key_of(redis, h["x-request-id"]) == sha(body)
    assert "field of hookq_dedup_key is not in the body" in nginx.log()


def test_two_different_bodies_without_the_field_are_both_kept(stack):
    nginx, redis = stack
    s1, h1, _ = send(nginx, "/hooks/entity", {"events": [], "n": 1})
    s2, h2, _ = send(nginx, "/hooks/entity", {"events": [], "n": 2})
    assert (s1, s2) == (202, 202) and h1["x-request-id"] != h2["x-request-id"]


def test_json_is_read_only_up_to_hookq_json_max_size(stack):
    nginx, redis = stack
    small = b'{"tenant":"t9"}'
    _, h, _ = send(nginx, "/hooks/small", small)
    assert key_of(redis, h["x-request-id"]) == "t=t9"
    big = b'{"tenant":"t9","pad":"' + b"x" * 100 + b'"}'
    status, h, _ = send(nginx, "/hooks/small", big)
    assert status == 202 and key_of(redis, h["x-request-id"]) == sha(big)
    assert "over hookq_json_max_size (64)" in nginx.log()


def test_escaped_keys_unicode_and_numbers_as_written(stack):
    nginx, redis = stack
    body = '{"a/b": {"c~d": "caf\\u00e9"}, "n": 1.50}'.encode()
    _, h, _ = send(nginx, "/hooks/odd", body)
    assert key_of(redis, h["x-request-id"]) == "café|1.50"


@pytest.mark.parametrize("directive,message", [
    ("hookq_json_var tenant /tenant;", 'hookq_json_var: "tenant" is not a variable name'),
    ("hookq_json_var $t tenant;", 'hookq_json_var: invalid JSON Pointer "tenant": a JSON Pointer '
                                  'starts with "/"'),
    ("hookq_json_var $t /a~2;", 'hookq_json_var: invalid JSON Pointer "/a~2": "~" must be followed'),
    ("hookq_json_var $t /a; hookq_json_var $t /b;", "hookq_json_var: $t is declared twice"),
    ("hookq_json_var $t;", 'invalid number of arguments in "hookq_json_var"'),
])
def test_bad_declarations_fail_nginx_t_naming_them(directive, message):
    code, out = harness.nginx_test_config("""
    hookq_redis {redis};
    DIRECTIVE
    server { listen 127.0.0.1:{port}; location = /h { hookq none; } }
""".replace("DIRECTIVE", directive))
    assert code != 0 and message in out, out


def test_bad_json_max_size_fails_nginx_t():
    code, out = harness.nginx_test_config("""
    hookq_redis {redis};
    server { listen 127.0.0.1:{port}; location = /h { hookq none; hookq_json_max_size 0; } }
""")
    assert code != 0 and 'hookq_json_max_size: invalid size "0"' in out, out
