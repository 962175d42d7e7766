"""`nginx -t` refuses every wrong hookq directive with a message naming the directive and value,
and never prints a secret."""

import pytest

import harness

GOOD_SECRET_FILE = "/dev/null"  # replaced per test by a real file


def conf(loc, http_extra="hookq_redis 127.0.0.1:6379;"):
    return """
    HTTP_EXTRA
    server {
        listen 127.0.0.1:{port};
        location = /hooks/x { LOC }
    }
""".replace("HTTP_EXTRA", http_extra).replace("LOC", loc)


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "gh.secret"
    p.write_text("topsecret-value\n")
    return str(p)


def test_valid_config_passes(secret):
    rc, out = harness.nginx_test_config(conf(
        f"hookq github; hookq_secret file:{secret}; hookq_queue gh; hookq_dedup_ttl 72h; "
        "hookq_max_body 2m; hookq_max_queue_depth 1000000; hookq_accept_status 204; "
        "hookq_retry_after 10s; hookq_timestamp_tolerance 5m; hookq_dedup_key $http_x_github_delivery;",
        "hookq_redis 127.0.0.1:6379 db=2; hookq_redis_timeout 200ms;"))
    assert rc == 0, out


@pytest.mark.parametrize("loc,http_extra,needle", [
    ("hookq gitlab;", None, 'unknown profile "gitlab"'),
    ("hookq github;", None, 'hookq github: no "hookq_secret"'),
    ("hookq github; hookq_secret file:/nonexistent/gh.secret;", None, "/nonexistent/gh.secret"),
    ("hookq github; hookq_secret env:HOOKQ_NO_SUCH_VAR;", None, "HOOKQ_NO_SUCH_VAR"),
    ("hookq none; hookq_max_body lots;", None, 'hookq_max_body: invalid size "lots"'),
    ("hookq none; hookq_max_body 100m;", None, 'hookq_max_body: invalid size "100m"'),
    ("hookq none; hookq_dedup_ttl forever;", None, 'hookq_dedup_ttl: invalid duration "forever"'),
    ("hookq none; hookq_max_queue_depth -5;", None, 'hookq_max_queue_depth: invalid depth "-5"'),
    ("hookq none; hookq_accept_status 500;", None, 'hookq_accept_status: invalid status "500"'),
    ("hookq none; hookq_queue \"a:b\";", None, 'hookq_queue: invalid name'),
    ("hookq hmac; hookq_secret s;", None, 'no "hookq_signature_header"'),
    ("hookq hmac; hookq_secret s; hookq_signature_header X-Sig md5 hex;", None,
     'unknown algorithm "md5"'),
    ("hookq hmac; hookq_secret s; hookq_signature_header X-Sig sha256 base32;", None,
     'unknown encoding "base32"'),
    ("hookq hmac; hookq_secret s; hookq_signature_header X-Sig sha256 hex pfx=a;", None,
     'unknown parameter "pfx=a"'),
    ("hookq twilio; hookq_secret s; hookq_public_url ftp://x;", None, 'hookq_public_url: invalid URL'),
    ("hookq none; hookq none;", None, '"hookq" directive is duplicate'),
    ("hookq none;", "", 'no "hookq_redis"'),
    ("hookq none;", "hookq_redis 127.0.0.1:99999;", 'hookq_redis: invalid address "127.0.0.1:99999"'),
    ("hookq none;", "hookq_redis 127.0.0.1:6379 db=x;", 'hookq_redis: invalid "db=x"'),
    ("hookq none;", "hookq_redis 127.0.0.1:6379 user=me;", 'unknown parameter "user=me"'),
    ("hookq none;", "hookq_redis 127.0.0.1:6379; hookq_redis_timeout 0;",
     'hookq_redis_timeout: invalid duration "0"'),
    ("hookq none;", "hookq_redis no.such.host.invalid:6379;", 'cannot resolve "no.such.host.invalid"'),
])
def test_bad_directives_fail_nginx_t(loc, http_extra, needle):
    rc, out = harness.nginx_test_config(conf(loc) if http_extra is None else conf(loc, http_extra))
    assert rc != 0
    assert needle in out, out
    assert "[emerg]" in out


def test_secrets_never_in_errors(tmp_path):
    # A standard-webhooks secret that is not valid base64: refused, without echoing it.
    bad = "whsec_!!not-base64-but-very-secret!!"
    rc, out = harness.nginx_test_config(conf(f"hookq standard; hookq_secret {bad};"))
    assert rc != 0
    assert "not-base64-but-very-secret" not in out, out
    pw = tmp_path / "empty.secret"
    pw.write_text("")
    rc, out = harness.nginx_test_config(conf(f"hookq github; hookq_secret file:{pw};"))
    assert rc != 0 and str(pw) in out, out
