"""`hookqctl sign` prints a curl command; run as printed against the real edge, it is accepted.
This keeps the operator's signing tool and the module's verifiers in agreement, profile by profile."""

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
        argv += ["--secret", edge.SECRETS[secret] if profile == "moysklad" else f"file:{paths[secret]}"]
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
