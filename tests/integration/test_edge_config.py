"""`nginx -t` refuses every wrong hookq directive with a message naming the directive and value,
and never prints a secret."""

import os

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


@pytest.fixture
def private_secret(tmp_path):
    p = tmp_path / "private.secret"
    p.write_text("topsecret-value\n")
    p.chmod(0o600)
    return str(p)


def refused(loc, needle, http_extra=None, env=None, never=()):
    """nginx -t fails with an [emerg] carrying `needle`, and none of `never` appears."""
    text = conf(loc) if http_extra is None else conf(loc, http_extra)
    rc, out = harness.nginx_test_config(text, env=env)
    assert rc != 0, out
    assert "[emerg]" in out and needle in out, out
    for secret in never:
        assert secret not in out, out
    return out


def test_bare_path_secret_is_refused(private_secret):
    # Taken literally, the README's path would be the HMAC key: anyone could sign with it.
    refused(f"hookq github; hookq_secret {private_secret};",
            'hookq_secret: secret looks like a path but has no "file:" prefix '
            '(write file:PATH, env:NAME or literal:VALUE)',
            never=[private_secret, "topsecret-value"])
    refused("hookq github; hookq_secret ./github.secret;", "looks like a path",
            never=["github.secret"])


@pytest.mark.parametrize("spec", ["fiel:/etc/hookq/x.secret", "File:/etc/hookq/x.secret",
                                  "vault:kv/hookq", "s3cret-prefix:rest-of-it"])
def test_unknown_secret_source_is_refused(spec):
    refused(f"hookq github; hookq_secret {spec};",
            "hookq_secret: secret starts with an unknown source before ':' "
            "(write file:PATH, env:NAME or literal:VALUE)",
            never=[spec.split(":")[0], spec.split(":")[1]])


def test_literal_prefix_is_accepted():
    rc, out = harness.nginx_test_config(conf(
        "hookq github; hookq_secret literal:/looks/like/a/path; hookq_secret literal:a:b;"))
    assert rc == 0, out


@pytest.mark.parametrize("loc,needle", [
    ("hookq none; hookq_secret SECRET;",
     'hookq_secret: "hookq none" verifies nothing, so a secret there protects nothing'),
    ("hookq_secret SECRET; hookq none;", '"hookq none" verifies nothing'),
    ("hookq_secret SECRET;", 'hookq_secret: no "hookq <profile>" in this location'),
    ("hookq_status; hookq_secret SECRET;", 'hookq_secret: no "hookq <profile>" in this location'),
])
def test_secret_where_it_verifies_nothing_is_refused(private_secret, loc, needle):
    refused(loc.replace("SECRET", f"file:{private_secret}"), needle, never=["topsecret-value"])


def test_secret_file_bounds(tmp_path):
    refused("hookq github; hookq_secret file:/dev/zero;",
            'hookq_secret: secret file "/dev/zero" is not a regular file')
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(f"hookq github; hookq_secret file:{fifo};", "is not a regular file")
    big = tmp_path / "big.secret"
    big.write_text("k" * 4097)
    big.chmod(0o600)
    refused(f"hookq github; hookq_secret file:{big};",
            f'hookq_secret: secret file "{big}" is larger than 4096 bytes', never=["kkkk"])
    refused("hookq none;", 'hookq_redis: secret file "/dev/zero" is not a regular file',
            http_extra="hookq_redis 127.0.0.1:6379 password_file=/dev/zero;")


def test_multi_line_secret_is_refused(tmp_path):
    p = tmp_path / "two.secret"
    p.write_text("old-secret-value\nnew-secret-value\n")
    p.chmod(0o600)
    refused(f"hookq github; hookq_secret file:{p};",
            f'hookq_secret: secret file "{p}" holds more than one line',
            never=["old-secret-value", "new-secret-value"])
    refused("hookq github; hookq_secret env:HOOKQ_TWO_LINES;",
            "hookq_secret: secret environment variable HOOKQ_TWO_LINES holds more than one line",
            env={"HOOKQ_TWO_LINES": "env-secret-one\nenv-secret-two"}, never=["env-secret-"])


def test_empty_secret_sources_are_refused():
    refused("hookq github; hookq_secret env:HOOKQ_EMPTY;",
            "hookq_secret: secret environment variable HOOKQ_EMPTY is empty", env={"HOOKQ_EMPTY": ""})
    refused("hookq github; hookq_secret literal:;", 'hookq_secret: secret spec "literal:" gives no value')
    refused('hookq github; hookq_secret "";', "hookq_secret: secret is empty")


def warned(loc, needle, http_extra=None):
    text = conf(loc) if http_extra is None else conf(loc, http_extra)
    rc, out = harness.nginx_test_config(text)
    assert rc == 0, out  # a warning, so `nginx -t` still passes
    assert "[warn]" in out and needle in out, out
    assert "topsecret-value" not in out, out
    return out


def passes_quietly(loc, http_extra=None):
    text = conf(loc) if http_extra is None else conf(loc, http_extra)
    rc, out = harness.nginx_test_config(text)
    assert rc == 0, out
    assert "[warn]" not in out, out


def test_world_readable_secret_file_warns(secret, private_secret):
    os.chmod(secret, 0o644)
    warned(f"hookq github; hookq_secret file:{secret};",
           f'hookq_secret: secret file "{secret}" is readable by every user of this host '
           "(chmod o-r it)")
    warned("hookq none;", f'hookq_redis: secret file "{secret}" is readable by every user',
           http_extra=f"hookq_redis 127.0.0.1:6379 password_file={secret};")
    passes_quietly(f"hookq github; hookq_secret file:{private_secret};")
    os.chmod(secret, 0o640)
    passes_quietly(f"hookq github; hookq_secret file:{secret};")


MOYSKLAD_OPEN = ('hookq moysklad: no "hookq_secret" token and no "allow"/"deny" in this location: '
                 "anyone who finds the URL can queue webhooks")


def test_moysklad_without_token_or_access_rules_warns(private_secret):
    warned("hookq moysklad;", MOYSKLAD_OPEN)
    passes_quietly("hookq moysklad; allow 10.0.0.0/8; deny all;")
    passes_quietly("hookq moysklad; deny all;")
    passes_quietly(f"hookq moysklad; hookq_secret file:{private_secret};")
    # Rules inherited from the server block protect the location too.
    rc, out = harness.nginx_test_config(conf("hookq moysklad;").replace(
        "location = /hooks/x", "allow 127.0.0.1; deny all; location = /hooks/x"))
    assert rc == 0 and "[warn]" not in out, out


@pytest.mark.parametrize("loc,needle", [
    ("hookq github; hookq_secret s; hookq_signature_header X-Sig sha256 hex;",
     'hookq_signature_header: only "hookq hmac" reads it, this location is "hookq github"'),
    ("hookq github; hookq_secret s; hookq_token_arg t;",
     'hookq_token_header/hookq_token_arg: only "hookq moysklad" reads them, this location is '
     '"hookq github"'),
    ("hookq none; hookq_token_header X-Token;", 'only "hookq moysklad" reads them'),
    ("hookq moysklad; hookq_secret s; hookq_token_header X-Token; hookq_token_arg token;",
     "hookq_token_header and hookq_token_arg: the token comes from one place, choose one"),
    ("hookq_signature_header X-Sig sha256 hex;",
     'hookq_signature_header: no "hookq <profile>" in this location'),
    ("hookq_token_arg token;", 'hookq_token_arg: no "hookq <profile>" in this location'),
])
def test_directive_of_another_profile_is_refused(loc, needle):
    # Each used to be ignored without a word.
    refused(loc, needle)
