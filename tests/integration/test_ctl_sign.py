"""`hookqctl sign` prints a curl command; run as printed against the real edge, it is accepted.
This keeps the operator's signing tool and the module's verifiers in agreement, profile by profile."""

import os
import subprocess

import pytest

import edge
import harness


@pytest.fixture(scope="module")
def stack():
    redis = harness.RedisServer()
    secrets = harness.TempDir("hookq-sign-")
    paths = edge.secret_files(secrets.path)
    nginx = harness.Nginx(edge.all_profiles_conf(paths, twilio_public_url="http://127.0.0.1:{port}"),
                          redis_port=redis.port, env={"MS_TOKEN": edge.SECRETS["moysklad"]})
    yield nginx, redis.client(), paths
    nginx.close()
    redis.close()
    secrets.cleanup()


CASES = [
    ("github", "/hooks/github", [], "github"),
    ("stripe", "/hooks/stripe", [], "stripe"),
    ("standard", "/hooks/standard", [], "standard"),
    ("svix", "/hooks/svix", [], "svix"),
    ("shopify", "/hooks/shopify", [], "shopify"),
    ("slack", "/hooks/slack", [], "slack"),
    ("twilio", "/hooks/twilio?AccountSid=AC1", [], "twilio"),
    ("moysklad", "/hooks/moysklad", [], "moysklad"),
    ("hmac", "/hooks/custom", ["--header", "X-Signature", "--prefix", "sha256="], "hmac"),
    ("none", "/hooks/open", [], None),
]


@pytest.mark.parametrize("profile,path,extra,secret", CASES, ids=[c[0] for c in CASES])
def test_signed_request_is_accepted(stack, profile, path, extra, secret):
    nginx, client, paths = stack
    argv = [harness.CTL_PATH, "sign", "--profile", profile, "--url", nginx.url(path),
            "--body", '{"id":"evt_%s","it\'s":"quoted"}' % profile] + extra
    if secret:
        argv += ["--secret", "literal:" + edge.SECRETS[secret] if profile == "moysklad" else f"file:{paths[secret]}"]
    cmd = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert cmd.startswith("curl ")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout
    status = int(out.split()[1])
    assert status == (204 if profile == "moysklad" else 202), out
    request_id = [l.split(": ", 1)[1].strip() for l in out.splitlines()
                  if l.lower().startswith("x-request-id:")][0]
    queue = "none" if profile == "none" else profile
    ids = [edge.decode_envelope(e)["request_id"] for e in client.lrange(f"hookq:{{{queue}}}:queue", 0, -1)]
    assert request_id in ids


def test_refuses_to_sign_without_a_secret():
    r = subprocess.run([harness.CTL_PATH, "sign", "--profile", "stripe", "--url", "http://x/h"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--secret" in r.stderr


def sign(*args):
    return subprocess.run([harness.CTL_PATH, "sign", "--url", "http://x/h", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("option,value,accepted", [
    ("--alg", "md5", ["sha1", "sha256", "sha512"]),
    ("--alg", "SHA256", ["sha1", "sha256", "sha512"]),
    ("--encoding", "base32", ["hex", "base64"]),
])
def test_refuses_unknown_alg_and_encoding(option, value, accepted):
    # Used to sign with sha256/hex anyway, a request the edge then refused for no visible reason.
    r = sign("--profile", "hmac", "--header", "X-Sig", "--secret", "literal:s", option, value)
    assert r.returncode != 0, r.stdout
    assert r.stdout == ""
    assert option in r.stderr and value in r.stderr, r.stderr
    for name in accepted:
        assert name in r.stderr, r.stderr


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "gh.secret"
    p.write_text("topsecret-value\n")
    p.chmod(0o600)
    return p


def refused(spec, needle, env=None):
    r = subprocess.run([harness.CTL_PATH, "sign", "--url", "http://x/h", "--profile", "github",
                        "--secret", spec], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    assert r.returncode != 0 and r.stdout == "", r.stdout
    assert f"hookqctl sign: --secret: {needle}" in r.stderr, r.stderr
    assert "topsecret-value" not in r.stderr and "env-secret" not in r.stderr, r.stderr


def test_secret_follows_the_edge_rules(tmp_path, secret_file):
    # The same refusals, in the same words, as `hookq_secret` at `nginx -t`.
    refused(str(secret_file), 'secret looks like a path but has no "file:" prefix '
            "(write file:PATH, env:NAME or literal:VALUE)")
    refused("fiel:/etc/hookq/x", "secret starts with an unknown source before ':'")
    refused("file:/dev/zero", 'secret file "/dev/zero" is not a regular file')
    big = tmp_path / "big.secret"
    big.write_text("k" * 5000)
    refused(f"file:{big}", f'secret file "{big}" is larger than 4096 bytes')
    two = tmp_path / "two.secret"
    two.write_text("topsecret-value\nanother\n")
    refused(f"file:{two}", f'secret file "{two}" holds more than one line')
    refused("env:HOOKQ_SIGN_EMPTY", "secret environment variable HOOKQ_SIGN_EMPTY is empty",
            env={"HOOKQ_SIGN_EMPTY": ""})
    refused("env:HOOKQ_SIGN_TWO", "secret environment variable HOOKQ_SIGN_TWO holds more than one line",
            env={"HOOKQ_SIGN_TWO": "env-secret\nenv-secret-2"})
    refused("literal:", 'secret spec "literal:" gives no value')


def test_world_readable_secret_file_warns_but_signs(secret_file):
    ok = sign("--profile", "github", "--secret", f"file:{secret_file}")
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    secret_file.chmod(0o644)
    r = sign("--profile", "github", "--secret", f"file:{secret_file}")
    assert r.returncode == 0 and r.stdout.startswith("curl "), r.stderr
    assert (f'hookqctl sign: warning: --secret: secret file "{secret_file}" is readable by every '
            "user of this host (chmod o-r it)") in r.stderr, r.stderr
    assert "topsecret-value" not in r.stderr
