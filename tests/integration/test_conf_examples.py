"""The example nginx snippets in conf/nginx pass `nginx -t` with the built module, one by one and
all in one server, so the examples can never rot. Their /etc/hookq/... paths are rewritten to
temporary secret files."""

import base64
import os
import re

import pytest

import harness

CONF_DIR = os.path.join(harness.SOURCE_DIR, "conf", "nginx")
HTTP_CONF = "hookq-http.conf"
SNIPPETS = ["github.conf", "stripe.conf", "standard.conf", "svix.conf", "shopify.conf",
            "slack.conf", "twilio.conf", "moysklad.conf", "partner-hmac.conf", "status.conf"]

# Valid for every profile: standard/svix base64-decode what follows whsec_, stripe uses it as is.
SECRET = "whsec_" + base64.b64encode(b"hookq-example-secret-32-bytes!!!").decode() + "\n"
ETC_PATH = re.compile(r"/etc/hookq/([A-Za-z0-9_.-]+)")
ENV_SPEC = re.compile(r"\benv:([A-Za-z_][A-Za-z0-9_]*)")


def read(name):
    with open(os.path.join(CONF_DIR, name)) as f:
        return f.read()


def directives(text):
    """Non-comment text of a snippet (comments stripped, as nginx does)."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


class Rewriter:
    """Copies snippets into tmp_path with /etc/hookq/X turned into tmp_path/etc-hookq/X (created with
    a valid secret) and collects the env: variables they need."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.secrets = tmp_path / "etc-hookq"
        self.secrets.mkdir(exist_ok=True)
        self.env = {}

    def text(self, text):
        for name in ETC_PATH.findall(directives(text)):
            (self.secrets / name).write_text(SECRET)
            (self.secrets / name).chmod(0o600)  # as conf/nginx/README.md says: else nginx -t warns
        for var in ENV_SPEC.findall(directives(text)):
            self.env[var] = SECRET.strip()
        return ETC_PATH.sub(lambda m: str(self.secrets / m.group(1)), text)

    def file(self, name, text=None):
        out = self.dir / name
        out.write_text(self.text(read(name) if text is None else text))
        return str(out)

    def http_conf(self, snippet_files, http_text=None):
        includes = "\n".join(f"        include {p};" for p in snippet_files)
        return f"""
    include {self.file(HTTP_CONF, http_text)};
    server {{
        listen 127.0.0.1:{{port}};
{includes}
    }}
"""


def nginx_t(rw, snippet_files, http_text=None):
    rc, out = harness.nginx_test_config(rw.http_conf(snippet_files, http_text), env=rw.env)
    assert rc == 0, out
    assert "[warn]" not in out, out
    return out


def test_every_snippet_is_listed():
    present = sorted(f for f in os.listdir(CONF_DIR) if f.endswith(".conf"))
    assert present == sorted(SNIPPETS + [HTTP_CONF])


@pytest.mark.parametrize("name", SNIPPETS + [HTTP_CONF])
def test_snippet_is_commented_and_uses_secret_files(name):
    text = read(name)
    assert text.startswith("#"), f"{name}: start with a comment on the scheme and dedup key"
    for spec in re.findall(r"hookq_secret\s+(\S+);", directives(text)):
        assert re.fullmatch(r"file:/etc/hookq/[a-z0-9-]+\.secret", spec), spec


@pytest.mark.parametrize("name", SNIPPETS)
def test_snippet_passes_nginx_t(tmp_path, name):
    rw = Rewriter(tmp_path)
    nginx_t(rw, [rw.file(name)])


def test_all_snippets_coexist_in_one_server(tmp_path):
    rw = Rewriter(tmp_path)
    nginx_t(rw, [rw.file(name) for name in SNIPPETS])


def test_moysklad_allow_deny_when_uncommented(tmp_path):
    rw = Rewriter(tmp_path)
    text = re.sub(r"^(\s*)# ((?:allow|deny) [^;]+;)", r"\1\2", read("moysklad.conf"), flags=re.M)
    assert "\n    deny all;" in text
    nginx_t(rw, [rw.file("moysklad.conf", text)])


def test_http_conf_password_file_variant(tmp_path):
    rw = Rewriter(tmp_path)
    text = read(HTTP_CONF)
    variant = re.search(r"^# (hookq_redis .*password_file=.*;)$", text, flags=re.M)
    assert variant, "hookq-http.conf shows the password_file= form"
    text = re.sub(r"^hookq_redis .*;$", variant.group(1), text, count=1, flags=re.M)
    nginx_t(rw, [rw.file("github.conf")], http_text=text)
