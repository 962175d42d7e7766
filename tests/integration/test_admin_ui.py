"""The dashboard at /ui/ in a real browser (Debian's chromium, headless, driven over the DevTools
protocol) against a real worker, Redis and PostgreSQL: sign in with a token, read the queues,
retry a dead letter through the confirm dialog (redelivered, audited with the token's name), a
viewer's disabled controls, attacker-controlled payloads rendered as text, and the CSP."""

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

import envelope
import harness
from test_admin_api import ADMIN, VIEWER, admin_config, dead_letter_of
from worker_fixtures import (route, rows, wait_until, pg_migrated, sink, workers)  # noqa: F401

CHROMIUM = shutil.which("chromium")
UI_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
XSS_HEADER = '<img src=x onerror="window.__pwned=1">'
XSS_PATH = "/hooks/github/<script>window.__pwned=2</script>"
XSS_BODY = b'{"comment":"<img src=x onerror=alert(1)><script>window.__pwned=3</script>"}'



class Browser:
    """Headless chromium and one page, over the DevTools protocol's websocket."""

    def __init__(self):
        # Not skipped when missing: scripts/deps.sh installs both, and a skip would hide the test.
        assert CHROMIUM, "chromium is not installed (scripts/deps.sh installs it)"
        import websocket  # python3-websocket
        self.profile = tempfile.mkdtemp(prefix="hookq-chromium-")
        port = harness.free_port()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", "--window-size=1400,1000",
             f"--remote-debugging-port={port}", "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def page():
            try:
                got = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
            except (requests.ConnectionError, ValueError):
                return None
            return next((t for t in got if t["type"] == "page"), None)
        target = wait_until(page, 20, interval=0.1, what="chromium's DevTools endpoint")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=15)
        self.ids = itertools.count(1)
        self.events = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method, **params):
        mid = next(self.ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                assert "error" not in msg, (method, msg["error"])
                return msg["result"]
            self.events.append(msg)

    def js(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in r, (expr, r["exceptionDetails"])
        return r["result"].get("value")

    def wait(self, expr, timeout=15, what=None):
        wait_until(lambda: self.js(f"!!({expr})"), timeout, interval=0.1, what=what or expr)

    def goto(self, url):
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'")

    def login(self, token):
        self.wait("!document.getElementById('login').hidden", what="the token prompt")
        self.js(f"document.getElementById('token').value = {json.dumps(token)};"
                "document.getElementById('login-form').requestSubmit()")

    def text(self, selector):
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText")

    def errors(self):
        """Uncaught exceptions, console errors and CSP violations; failed requests (the API's
        deliberate 401/403s) are the page's business, not errors."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"])
            elif m == "Runtime.consoleAPICalled" and p["type"] == "error":
                out.append(p["args"])
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error" and \
                    p["entry"]["source"] != "network":
                out.append(p["entry"])
        return out

    def screenshot(self, path):
        import base64
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def dead_letter(redis_client, pg, source, body, headers, target=None):
    rid, env = envelope.make(source, body=body, headers=headers, target=target)
    redis_client.lpush(f"hookq:{{{source}}}:queue", env)
    return rid, wait_until(lambda: dead_letter_of(pg, rid), 20, what="dead letter")


def test_dashboard_in_a_browser(redis_server, pg_migrated, sink, workers, tmp_path, browser):
    port = harness.free_port()
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    w = workers(admin_config(redis_server, pg_migrated, routes, tmp_path, port))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(base + "/healthz") == 200, 15, what="admin API listening")

    # The static files need no token and carry the strict policy; the API keeps its own.
    for path in ("/ui/", "/ui/index.html", "/ui/app.js", "/ui/style.css"):
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["Content-Security-Policy"] == UI_CSP, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "Set-Cookie" not in r.headers
    # Embedded byte for byte (the build's generator must not rewrite them).
    for name in sorted(os.listdir(os.path.join(harness.SOURCE_DIR, "worker/admin/ui"))):
        with open(os.path.join(harness.SOURCE_DIR, "worker/admin/ui", name), "rb") as f:
            assert requests.get(f"{base}/ui/{name}", timeout=10).content == f.read(), name
    assert requests.get(base + "/ui/app.js", timeout=10).headers["Content-Type"].startswith(
        "text/javascript")
    r = requests.get(base + "/ui", allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == "ui/"
    assert requests.get(base + "/ui/../migrations", timeout=10).status_code == 404
    assert requests.get(base + "/ui/nope.js", timeout=10).status_code == 404
    assert requests.post(base + "/ui/", timeout=10).status_code == 405

    rc = redis_server.client()
    # Numbers the overview must show: three poisoned envelopes and a retry due in an hour.
    rc.lpush("hookq:{stripe}:poison", b"x", b"y", b"z")
    rc.zadd("hookq:{stripe}:retry", {b"not-yet": 4102444800000})
    now_ms = int(time.time() * 1000)
    rc.hset("hookq:breaker:pay.example.com:443",
            mapping={"state": "open", "open_until": now_ms + 3_600_000, "changed_at": now_ms})
    sink.set("/app", "400")
    rid, dl_id = dead_letter(rc, pg_migrated, "github", b'{"n":1}', [("X-GitHub-Event", "push")])
    _, xss_id = dead_letter(rc, pg_migrated, "github", XSS_BODY,
                            [("X-GitHub-Event", XSS_HEADER), ("X-Note", "<script>x()</script>")],
                            target=XSS_PATH)

    b = browser
    b.goto(base + "/ui/")
    # A wrong token: back to the prompt, with the API's reason.
    b.login("w" * 40)
    b.wait("/not one of/.test(document.getElementById('login-error').innerText)")
    assert b.js("sessionStorage.getItem('hookq.token')") is None
    assert b.js("document.cookie") == ""

    b.login(ADMIN)
    b.wait("document.querySelector('#queues tr[data-queue=stripe]')", what="the queues table")
    cells = b.js("[...document.querySelectorAll('#queues tr[data-queue=stripe] td')]"
                 ".map(td => td.innerText)")
    # queue, depth, inflight, retry, retry due, parked, poison, dead letters, workers
    assert cells[:9] == ["stripe", "0", "0", "1", "0", "0", "3", "0", "1 / 1"], cells
    assert b.js("[...document.querySelectorAll('#breakers td')].map(td => td.innerText)")[:2] == \
        ["pay.example.com:443", "open"]
    gh = b.js("[...document.querySelectorAll('#queues tr[data-queue=github] td')]"
              ".map(td => td.innerText)")
    assert gh[7] == "2", gh
    assert b.text("#who") == "admin token"
    # The events tab only where the worker has the events API (the page works without it).
    has_events = requests.get(base + "/api/v1/events?limit=1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert b.js("document.getElementById('nav-events').hidden") is not has_events
    b.wait("/updated \\d+s ago/.test(document.getElementById('updated').innerText)")
    assert b.js("document.cookie") == ""
    shots = os.environ.get("HOOKQ_UI_SCREENSHOTS", str(tmp_path))
    b.screenshot(os.path.join(shots, "overview.png"))

    # Dead letters: both listed, newest first; a filter that matches nothing says so.
    b.js("location.hash = 'dead-letters'")
    b.wait("document.querySelectorAll('#dl-table tbody tr').length === 2")
    assert b.js("[...document.querySelectorAll('#dl-table tbody tr')].map(r => r.dataset.id)") == \
        [str(xss_id), str(dl_id)]
    b.js("document.getElementById('f-source').value = 'stripe';"
         "document.getElementById('dl-filters').requestSubmit()")
    b.wait("!document.getElementById('dl-empty').hidden")
    b.js("document.getElementById('f-source').value = '';"
         "document.getElementById('f-route').value = 'app';"
         "document.getElementById('dl-filters').requestSubmit()")
    b.wait("document.querySelectorAll('#dl-table tbody tr').length === 2")
    # Paging by cursor, one per page (a page size the menu does not offer, for two letters).
    b.js("const l = document.getElementById('f-limit'); l.add(new Option('1', '1')); l.value = '1';"
         "document.getElementById('dl-filters').requestSubmit()")
    ids_on_page = "[...document.querySelectorAll('#dl-table tbody tr')].map(r => r.dataset.id)"
    b.wait(f"{ids_on_page}.join() === '{xss_id}'")
    assert b.js("document.getElementById('dl-prev').disabled") is True
    b.js("document.getElementById('dl-next').click()")
    b.wait(f"{ids_on_page}.join() === '{dl_id}'")
    b.js("document.getElementById('dl-prev').click()")
    b.wait(f"{ids_on_page}.join() === '{xss_id}'")
    b.js("document.getElementById('dl-next').click()")
    b.wait(f"{ids_on_page}.join() === '{dl_id}'")
    assert b.js("document.getElementById('dl-next').disabled") is True

    # Retry from the page, through the confirm dialog: redelivered and audited.
    sink.set("/app", "200")
    b.js(f"document.querySelector('#dl-table tr[data-id=\"{dl_id}\"]').click()")
    b.wait("document.getElementById('dl-headers').innerText.includes('push')")
    assert b.js("document.getElementById('dl-retry').disabled") is False
    # Cancelled: nothing happens.
    b.js("document.getElementById('dl-retry').click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-cancel').click()")
    b.wait("!document.getElementById('confirm').open")
    b.js("document.getElementById('dl-retry').click()")
    b.wait("document.getElementById('confirm').open")
    for kind in ("keyDown", "keyUp"):  # Escape, as a key press
        b.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
               windowsVirtualKeyCode=27)
    b.wait("!document.getElementById('confirm').open")
    b.js("document.getElementById('dl-retry').click()")
    b.wait("document.getElementById('confirm').open")
    # Nothing happens before the confirmation.
    assert [r.headers["x-request-id"] for r in sink.received("/app")].count(rid) == 1
    b.js("document.getElementById('confirm-ok').click()")
    b.wait("/Requeued/.test(document.getElementById('dl-result').innerText)")
    wait_until(lambda: len([r for r in sink.received("/app")
                            if r.headers["x-request-id"] == rid]) == 2, 20, what="redelivery")
    [(actor, action, target, details)] = rows(
        pg_migrated, "SELECT actor, action, target, details FROM audit_log")
    assert (actor, action, target) == ("ops-admin", "dlq.retry", str(dl_id))
    assert details["via"] == "api" and "Chrome" in details["user_agent"]
    b.screenshot(os.path.join(shots, "dead-letter.png"))

    # Attacker-controlled header, path and body: shown as text, no element created, no script run.
    before = b.js("[document.querySelectorAll('img').length, "
                  "document.querySelectorAll('script').length]")
    b.js(f"location.hash = 'dl/{xss_id}'")
    b.wait("document.getElementById('dl-headers').innerText.includes('onerror')")
    shown = b.js("document.getElementById('view-dl').innerText")
    assert XSS_HEADER in shown and "<script>x()</script>" in shown and XSS_PATH in shown
    assert b.js("[document.querySelectorAll('img').length, "
                "document.querySelectorAll('script').length]") == before == [0, 1]
    assert b.js("window.__pwned === undefined")

    # A viewer: no write controls; and the API's 403 is shown if one is forced.
    b.js("document.getElementById('logout').click()")
    assert b.js("sessionStorage.getItem('hookq.token')") is None
    b.login(VIEWER)
    b.wait("document.getElementById('who').innerText === 'viewer token'")
    b.wait("document.getElementById('dl-headers').innerText.includes('onerror')")
    assert b.js("[document.getElementById('dl-retry').disabled, "
                "document.getElementById('dl-delete').disabled, "
                "document.getElementById('dl-ro').hidden]") == [True, True, False]
    b.js("const r = document.getElementById('dl-retry'); r.disabled = false; r.click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-ok').click()")
    b.wait("/403/.test(document.getElementById('dl-result').innerText)")
    b.screenshot(os.path.join(shots, "viewer-hostile-payload.png"))
    assert "viewer" in b.text("#dl-result")
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(1,)]

    # An admin deletes the hostile letter, confirmed: gone, audited.
    b.js("document.getElementById('logout').click()")
    b.login(ADMIN)
    b.wait("document.getElementById('dl-headers').innerText.includes('onerror')")
    b.js("document.getElementById('dl-delete').click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-ok').click()")
    b.wait("document.getElementById('dl-result').innerText === 'Deleted.'")
    assert rows(pg_migrated, "SELECT id FROM dead_letters") == [(dl_id,)]
    assert rows(pg_migrated, "SELECT actor, action, target FROM audit_log ORDER BY id") == [
        ("ops-admin", "dlq.retry", str(dl_id)), ("ops-admin", "dlq.delete", str(xss_id))]

    # The API failing: an error banner, not a silently frozen page.
    b.js("location.hash = 'overview'")
    b.wait("document.querySelector('#queues tr[data-queue=stripe]')")
    redis_server.stop()
    b.wait("!document.getElementById('banner').hidden", 20)
    b.screenshot(os.path.join(shots, "api-down.png"))
    assert "503" in b.text("#banner")
    redis_server.start()
    b.wait("document.getElementById('banner').hidden", 20)

    assert b.errors() == []
    assert w.stop() == 0


def _get(url):
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return None
