"""PayPal, verified offline against certificates issued by a local test CA: the signed string
"transmission_id|transmission_time|webhook_id|crc32(body)", RSA-SHA256, the certificate URL pinned
to PayPal's hosts and never fetched, the transmission time within tolerance. Valid requests, and
every kind of invalid one, through real nginx; bad certificates fail `nginx -t` naming them; a
certificate that expires while nginx runs stops verifying at that moment, without a reload."""

import base64
import datetime
import os
import subprocess
import time
import uuid
import zlib

import pytest

import edge
import harness

WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA; PayPal's signing certificate from it; one with another name; one from a CA nobody
    trusts."""
    d = str(tmp_path_factory.mktemp("paypal-pki"))
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
                f"{ca}.pem", "-subj", f"/CN=hookq test {ca}", "-days", "3", cwd=d)
    for name, cn, ca in (("paypal", "messageverificationcerts.paypal.com", "ca"),
                         ("other-name", "example.com", "ca"),
                         ("rogue", "messageverificationcerts.paypal.com", "rogue-ca")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", cwd=d)
    issue(d, "expired", not_before=-2 * 86400, not_after=-86400)
    return d


def issue(pki, name, not_before, not_after):
    """PayPal's certificate name from the test CA, valid from/until these offsets (seconds) from
    now: what `openssl x509 -days` cannot express. Returns its notAfter (Unix seconds)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    with open(os.path.join(pki, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(pki, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    until = now + datetime.timedelta(seconds=not_after)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "messageverificationcerts.paypal.com")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(seconds=not_before))
            .not_valid_after(until)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(pki, f"{name}.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(pki, f"{name}.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return until.timestamp()


def sign(pki, key, message):
    p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(pki, key)],
                       input=message, capture_output=True, check=True)
    return base64.b64encode(p.stdout).decode()


def paypal_headers(pki, body, key="paypal.key", webhook_id=WEBHOOK_ID, when=None,
                   cert_url=CERT_URL, algo="SHA256withRSA", tid=None):
    tid = tid or str(uuid.uuid4())
    when = when or datetime.datetime.now(datetime.timezone.utc)
    ts = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    msg = f"{tid}|{ts}|{webhook_id}|{zlib.crc32(body)}".encode()
    return {"Content-Type": "application/json", "PAYPAL-TRANSMISSION-ID": tid,
            "PAYPAL-TRANSMISSION-TIME": ts, "PAYPAL-TRANSMISSION-SIG": sign(pki, key, msg),
            "PAYPAL-CERT-URL": cert_url, "PAYPAL-AUTH-ALGO": algo}


def location(pki, cert="paypal.pem", extra=""):
    return f"""
    hookq_redis {{redis}};
    hookq_json_var $paypal_event /id;
    server {{
        listen 127.0.0.1:{{port}};
        location = /hooks/paypal {{
            hookq paypal;
            hookq_secret literal:{WEBHOOK_ID};
            hookq_paypal_cert {pki}/{cert};
            hookq_paypal_ca {pki}/ca.pem;
            hookq_dedup_key $paypal_event;
            {extra}
        }}
    }}
"""


@pytest.fixture(scope="module")
def stack(pki):
    redis = harness.RedisServer()
    nginx = harness.Nginx(location(pki), redis_port=redis.port)
    yield nginx, redis, pki
    nginx.close()
    redis.close()


BODY = b'{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_type":"PAYMENT.CAPTURE.COMPLETED"}'


def test_a_request_paypal_signed_is_accepted_once(stack):
    nginx, redis, pki = stack
    status, h, _ = edge.post(nginx.port, "/hooks/paypal", BODY, paypal_headers(pki, BODY))
    assert status == 202, nginx.log()[-1500:]
    # PayPal's retry is a new transmission of the same event: a duplicate by the event id.
    status2, h2, _ = edge.post(nginx.port, "/hooks/paypal", BODY, paypal_headers(pki, BODY))
    assert (status2, h2.get("idempotent-replayed"), h2["x-request-id"]) == (
        200, "true", h["x-request-id"])
    [raw] = redis.client().lrange("hookq:{paypal}:queue", 0, -1)
    env = edge.decode_envelope(raw)
    assert env["body"] == BODY and env["dedup_key"] == b"WH-2WR32451HC0233532-67976317FL4543714"


def test_sandbox_host_and_offset_times_are_fine(stack):
    nginx, _, pki = stack
    body = b'{"id":"WH-sandbox-1"}'
    h = paypal_headers(pki, body, cert_url="https://api-m.sandbox.paypal.com/v1/notifications/"
                                           "certs/CERT-1")
    assert edge.post(nginx.port, "/hooks/paypal", body, h)[0] == 202


def now():
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.mark.parametrize("case,change,status", [
    ("body changed", lambda h, pki: ({}, b'{"id":"WH-other"}'), 401),
    ("another webhook id", lambda h, pki: (paypal_headers(pki, BODY, webhook_id="WH-X"), None), 401),
    ("signed by a key of another certificate", lambda h, pki: (
        paypal_headers(pki, BODY, key="other-name.key"), None), 401),
    ("signed by a rogue CA's certificate", lambda h, pki: (
        paypal_headers(pki, BODY, key="rogue.key"), None), 401),
    ("cert URL on another host", lambda h, pki: (
        paypal_headers(pki, BODY, cert_url="https://evil.example/certs/CERT-1"), None), 401),
    ("cert URL over http", lambda h, pki: (
        paypal_headers(pki, BODY, cert_url=CERT_URL.replace("https:", "http:")), None), 401),
    ("cert URL with user info", lambda h, pki: (
        paypal_headers(pki, BODY, cert_url="https://api.paypal.com@evil.example/c"), None), 401),
    ("too old", lambda h, pki: (
        paypal_headers(pki, BODY, when=now() - datetime.timedelta(minutes=10)), None), 401),
    ("from the future", lambda h, pki: (
        paypal_headers(pki, BODY, when=now() + datetime.timedelta(minutes=10)), None), 401),
    ("other algorithm", lambda h, pki: (paypal_headers(pki, BODY, algo="SHA1withRSA"), None), 400),
    ("signature not base64", lambda h, pki: ({"PAYPAL-TRANSMISSION-SIG": "%%%"}, None), 400),
    ("time not RFC 3339", lambda h, pki: ({"PAYPAL-TRANSMISSION-TIME": "yesterday"}, None), 400),
    ("no signature", lambda h, pki: ({"PAYPAL-TRANSMISSION-SIG": None}, None), 401),
    ("no transmission id", lambda h, pki: ({"PAYPAL-TRANSMISSION-ID": None}, None), 401),
    ("no cert URL", lambda h, pki: ({"PAYPAL-CERT-URL": None}, None), 400),
])
def test_every_kind_of_invalid_is_refused(stack, case, change, status):
    nginx, redis, pki = stack
    before = redis.client().llen("hookq:{paypal}:queue")
    headers = paypal_headers(pki, BODY)
    delta, body = change(headers, pki)
    if "PAYPAL-TRANSMISSION-ID" in delta and len(delta) > 3:
        headers = delta
    else:
        for k, v in delta.items():
            if v is None:
                headers.pop(k)
            else:
                headers[k] = v
    got, _, _ = edge.post(nginx.port, "/hooks/paypal", body or BODY, headers)
    assert got == status, case
    assert redis.client().llen("hookq:{paypal}:queue") == before


@pytest.mark.parametrize("cert,extra,message", [
    ("other-name.pem", "", "paypal: certificate #1 is not issued to "
                           "messageverificationcerts.paypal.com"),
    ("rogue.pem", "", "paypal: certificate #1 does not verify: unable to get local issuer"),
    ("expired.pem", "", "paypal: certificate #1 does not verify: certificate has expired"),
    ("paypal.key", "", 'hookq_paypal_cert: "PKI/paypal.key" holds no PEM certificate'),
    ("missing.pem", "", 'hookq_paypal_cert: cannot open "PKI/missing.pem" (2: No such file'),
])
def test_bad_certificates_fail_nginx_t(pki, cert, extra, message):
    code, out = harness.nginx_test_config(location(pki, cert, extra))
    assert code != 0 and message.replace("PKI", pki) in out, out


def test_paypal_directives_elsewhere_and_a_missing_webhook_id_fail_nginx_t(pki):
    code, out = harness.nginx_test_config(f"""
    hookq_redis {{redis}};
    server {{ listen 127.0.0.1:{{port}};
        location = /h {{ hookq github; hookq_secret literal:x; hookq_paypal_cert {pki}/paypal.pem; }}
    }}""")
    assert code != 0 and 'only "hookq paypal" reads them' in out, out
    code, out = harness.nginx_test_config(f"""
    hookq_redis {{redis}};
    server {{ listen 127.0.0.1:{{port}};
        location = /h {{ hookq paypal; hookq_paypal_cert {pki}/paypal.pem;
                        hookq_paypal_ca {pki}/ca.pem; }}
    }}""")
    assert code != 0 and "PayPal's webhook id" in out, out


def test_a_certificate_that_expires_while_nginx_runs_stops_verifying(stack):
    """Validity is checked per request against the bounds read at load: nothing reloads here."""
    _, redis, pki = stack
    # Long enough for nginx to start and answer once, even under ASan.
    not_after = issue(pki, "short", not_before=-60, not_after=6)
    nginx = harness.Nginx(location(pki, "short.pem", f"hookq_paypal_cert {pki}/paypal.pem;"),
                          redis_port=redis.port)
    try:
        def post(key, n):
            body = f'{{"id":"WH-short-{key}-{n}"}}'.encode()
            return edge.post(nginx.port, "/hooks/paypal", body,
                             paypal_headers(pki, body, key=f"{key}.key"))

        status, _, _ = post("short", 0)
        assert time.time() < not_after, "nginx took too long to start for this test"
        assert status == 202, nginx.log()[-1500:]
        assert "certificate expired" not in nginx.log()

        n = 0
        deadline = not_after + 30
        while time.time() < deadline:
            n += 1
            status, _, text = post("short", n)
            if status != 202:
                break
            time.sleep(0.2)
        # Refused like any bad signature, only once its notAfter has passed.
        assert time.time() > not_after
        assert (status, text) == (401, b"invalid signature\n"), nginx.log()[-1500:]
        log = nginx.log()
        assert ("hookq: paypal: verification failed (certificate expired): signed under a "
                "hookq_paypal_cert outside its validity") in log, log[-1500:]
        assert WEBHOOK_ID not in log
        # PayPal retries every refused webhook: one line a minute per worker says it, not one each.
        assert log.count("certificate expired") == 1, log[-1500:]
        for k in range(3):
            assert post("short", n + 10 + k)[0] == 401
        log = nginx.log()
        assert log.count("certificate expired") == 1, log[-1500:]
        # The other certificate is still valid: PayPal's signatures under it still pass.
        assert post("paypal", n + 1)[0] == 202
        # And a forgery is a plain bad signature, with nothing logged about the certificate.
        before = log.count("certificate expired")
        assert post("rogue", n + 2)[0] == 401
        assert nginx.log().count("certificate expired") == before
    finally:
        nginx.close()
