"""The dashboard at /ui/ in a real browser (Debian's chromium, headless, driven over the DevTools
protocol) against a real worker, Redis and PostgreSQL: sign in with a token, read the queues,
retry a dead letter through the confirm dialog (redelivered, audited with the token's name), no
write controls for a viewer, attacker-controlled payloads rendered as text, and the CSP; then every
view (health, traffic charts, breakers, dead letters, event search and detail) without a console
error or CSP violation, a breaker reset and a dead letter delete from the page, and live refresh
that never stacks requests. Screenshots of every view go to $HOOKQ_UI_SCREENSHOTS, by default
<build>/ui-screenshots (printed)."""

import itertools
import json
import os
import re
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
        # Every CSP violation the page meets, whether or not chromium also logs it. Injected by
        # DevTools, so the page's own policy does not apply to this script.
        self.send("Page.addScriptToEvaluateOnNewDocument", source=(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', "
            "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + "
            "e.sourceFile + ':' + e.lineNumber));"))

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

    def wait_event(self, method, timeout=15):
        """The next DevTools event of that kind, read off the socket without evaluating anything
        (a page blocked in window.confirm() answers no Runtime.evaluate)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            assert left > 0, f"no {method} within {timeout}s"
            self.ws.settimeout(left)
            try:
                self.events.append(json.loads(self.ws.recv()))
            finally:
                self.ws.settimeout(15)

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
        out += self.js("window.__csp || []")
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
    for path in ("/ui/", "/ui/index.html", "/ui/app.js", "/ui/style.css", "/ui/chart.js"):
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["Content-Security-Policy"] == UI_CSP, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "Set-Cookie" not in r.headers
    # Embedded byte for byte (the build's generator must not rewrite them).
    for name in sorted(os.listdir(os.path.join(harness.SOURCE_DIR, "worker/admin/ui"))):
        with open(os.path.join(harness.SOURCE_DIR, "worker/admin/ui", name), "rb") as f:
            assert requests.get(f"{base}/ui/{name}", timeout=10).content == f.read(), name
    # Chart.js from the distribution's package, byte for byte the file the build was pointed at.
    with open(_chartjs_path(), "rb") as f:
        assert requests.get(base + "/ui/chart.js", timeout=10).content == f.read()
    for name in ("app.js", "chart.js"):
        assert requests.get(f"{base}/ui/{name}", timeout=10).headers["Content-Type"].startswith(
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
    gh = b.js("[...document.querySelectorAll('#queues tr[data-queue=github] td')]"
              ".map(td => td.innerText)")
    assert gh[7] == "2", gh
    # Redis's memory: no maxmemory on the test's Redis, so what it uses.
    assert re.fullmatch(r"redis memory, no maxmemory\n[0-9.]+ MiB", b.text("#redis-memory")), \
        b.text("#redis-memory")
    rc.config_set("maxmemory", str(rc.info("memory")["used_memory"] * 2))
    b.wait("/of maxmemory/.test(document.getElementById('redis-memory').innerText)",
           what="the memory card with maxmemory")
    share = re.fullmatch(r"redis memory of maxmemory\n([0-9.]+) %", b.text("#redis-memory"))
    assert share and 30 < float(share.group(1)) < 70, b.text("#redis-memory")
    rc.config_set("maxmemory", "0")
    assert b.text("#who") == "admin token"
    # The events tab only where the worker has the events API (the page works without it).
    has_events = requests.get(base + "/api/v1/events?limit=1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert b.js("document.getElementById('nav-events').hidden") is not has_events
    b.wait("/updated \\d+s ago/.test(document.getElementById('updated').innerText)")
    assert b.js("document.cookie") == ""
    shots = _screenshot_dir()
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
    b.js("{ const l = document.getElementById('f-limit'); l.add(new Option('1', '1')); l.value = '1';"
         "document.getElementById('dl-filters').requestSubmit() }")
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
    b.wait("/requeued on queue/.test(document.getElementById('dl-result').innerText)")
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
    # The page's own <script src> tags (chart.js, app.js, a view's file) and nothing else.
    scripts = requests.get(base + "/ui/index.html", timeout=10).text.count("<script src=")
    assert b.js("[document.querySelectorAll('img').length, "
                "document.querySelectorAll('script').length]") == before == [0, scripts]
    assert b.js("window.__pwned === undefined")

    # A viewer: no write controls at all, and a note saying why.
    b.js("document.getElementById('logout').click()")
    assert b.js("sessionStorage.getItem('hookq.token')") is None
    b.login(VIEWER)
    b.wait("document.getElementById('who').innerText === 'viewer token'")
    b.wait("document.getElementById('dl-headers').innerText.includes('onerror')")
    assert b.js("[!!document.getElementById('dl-retry'), !!document.getElementById('dl-delete'), "
                "document.getElementById('dl-ro').hidden]") == [False, False, False]
    b.screenshot(os.path.join(shots, "viewer-hostile-payload.png"))
    assert rows(pg_migrated, "SELECT count(*) FROM audit_log") == [(1,)]

    # An admin deletes the hostile letter, confirmed: gone, audited.
    b.js("document.getElementById('logout').click()")
    b.login(ADMIN)
    b.wait("document.getElementById('dl-headers').innerText.includes('onerror')")
    b.js("document.getElementById('dl-delete').click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-ok').click()")
    b.wait(f"document.getElementById('dl-result').innerText === 'Dead letter {xss_id} deleted.'")
    assert rows(pg_migrated, "SELECT id FROM dead_letters") == [(dl_id,)]
    audit = rows(pg_migrated, "SELECT actor, action, target FROM audit_log ORDER BY id")
    # The delete's action is named "dead_letter.delete" by this session's API contract, and
    # "dlq.delete" before it: the page is the same either way.
    assert audit[0] == ("ops-admin", "dlq.retry", str(dl_id)) and len(audit) == 2, audit
    assert audit[1] in [("ops-admin", a, str(xss_id)) for a in ("dlq.delete", "dead_letter.delete")]

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


def _chartjs_path():
    """The Chart.js file the build embedded (HOOKQ_CHARTJS in the build's cache)."""
    with open(os.path.join(harness.BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("HOOKQ_CHARTJS:"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("HOOKQ_CHARTJS is not in the build's CMakeCache.txt")


def _screenshot_dir():
    d = os.environ.get("HOOKQ_UI_SCREENSHOTS") or os.path.join(harness.BUILD_DIR, "ui-screenshots")
    os.makedirs(d, exist_ok=True)
    print(f"dashboard screenshots: {os.path.abspath(d)}")
    return d


def _api(base, method, path, token=ADMIN, **kw):
    return requests.request(method, base + "/api/v1/" + path, timeout=10,
                            headers={"Authorization": f"Bearer {token}"}, **kw)


# Write controls as the page draws them; the buttons' words too, so one drawn without the class
# would still be caught.
WRITE_CONTROLS = ("[...document.querySelectorAll('main button, main a')].filter(e => "
                  "e.classList.contains('write') || /retry|delete|reset/i.test(e.innerText))"
                  ".map(e => e.innerText)")
VIEWS = ("overview", "traffic", "breakers", "dead-letters", "events")
# What each view shows once loaded (or its "not available" note).
READY = {
    "overview": "document.querySelector('#queues tr[data-queue=stripe]') && "
                "(document.querySelector('#health tr[data-source]') || "
                "!document.getElementById('health-na').hidden)",
    "traffic": "document.querySelector('#tr-table tbody tr') || "
               "!document.getElementById('tr-empty').hidden || "
               "!document.getElementById('tr-na').hidden",
    "breakers": "document.querySelector('#breakers tr[data-destination]')",
    "dead-letters": "document.querySelector('#dl-table tbody tr[data-id]')",
    "events": "!document.getElementById('view-events').hidden",
}


def test_dashboard_views(redis_server, pg_migrated, sink, workers, tmp_path, browser):
    port = harness.free_port()
    # "pay" (paypal) receives nothing: its breaker, set open below, is listed as a configured
    # destination's (breakers are listed by the configuration's destinations, never by SCAN).
    routes = (route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st")) +
              route("pay", "paypal", "https://pay.example.com/hooks"))
    config = admin_config(redis_server, pg_migrated, routes, tmp_path, port).replace(
        "[retry]\n", '[retry]\ninitial = "100ms"\nmax_delay = "200ms"\njitter = false\n', 1)
    w = workers(config)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _get(base + "/healthz") == 200, 15, what="admin API listening")
    shots = _screenshot_dir()
    rc = redis_server.client()

    # A webhook delivered on its second attempt (a 503 first), and one that died.
    sink.script("/app", ["503"])
    rid, env = envelope.make("github", body=b'{"ok":1}', headers=[("X-GitHub-Event", "push")])
    rc.lpush("hookq:{github}:queue", env)
    wait_until(lambda: rows(pg_migrated, "SELECT status FROM webhook_events WHERE id = %s", rid) ==
               [("delivered",)], 20, what="delivered after a retry")
    sink.set("/st", "400")
    dead_rid, dl_id = dead_letter(rc, pg_migrated, "stripe", b'{"n":2}', [("X-Kind", "charge")])
    now_ms = int(time.time() * 1000)
    rc.hset("hookq:breaker:https://pay.example.com:443",
            mapping={"state": "open", "open_until": now_ms + 3_600_000, "changed_at": now_ms})

    b = browser
    b.goto(base + "/ui/")
    b.js("localStorage.clear()")
    b.login(ADMIN)
    b.wait(READY["overview"], what="the overview")
    stats_status = _api(base, "GET", "stats?window=1h&by=route").status_code
    health_status = _api(base, "GET", "health").status_code

    # Every view: drawn, screenshot, and the admin's write controls where there are any.
    for view in VIEWS:
        b.js(f"location.hash = '{view}'")
        b.wait(READY[view], 20, what=f"the {view} view")
        b.screenshot(os.path.join(shots, f"view-{view}.png"))
        assert b.errors() == [], view
    if health_status == 404:
        assert "not available" in b.text("#health-na")
    else:
        assert health_status == 200
        assert b.js("document.getElementById('health-badge').textContent.trim().toLowerCase()") in (
            "healthy", "degraded", "unhealthy")

    # Events: found by request id; its detail has the attempts timeline, one row per attempt.
    b.js("location.hash = 'events'")
    b.js(f"document.getElementById('ev-rid').value = '{rid}';"
         "document.getElementById('ev-form').requestSubmit()")
    b.wait(f"document.querySelector('#ev-table tr[data-id=\"{rid}\"]') && "
           "document.querySelectorAll('#ev-table tbody tr').length === 1")
    assert b.text("#ev-count") == "1 shown"
    b.js(f"document.querySelector('#ev-table tr[data-id=\"{rid}\"]').click()")
    b.wait("document.querySelectorAll('#evd-attempts tbody tr').length === 2")
    timeline = b.js("[...document.querySelectorAll('#evd-attempts tbody tr')].map("
                    "r => [...r.cells].map(c => c.innerText))")
    # started, after receipt, route, #, HTTP, ms, outcome, error, url
    assert [(r[2], r[3], r[4]) for r in timeline] == [("app", "1", "503"), ("app", "2", "200")]
    assert timeline[1][6] == "delivered" and timeline[0][6] != "delivered", timeline
    assert all(r[1].startswith("+") for r in timeline), timeline
    assert "push" in b.text("#evd-headers") and b.text("#evd-body") == '{"ok":1}'
    b.screenshot(os.path.join(shots, "event-detail.png"))
    # The dead one lists its dead letter, which opens the letter.
    b.js(f"location.hash = 'event/{dead_rid}'")
    b.wait(f"document.querySelector('#evd-dl tr[data-id=\"{dl_id}\"]')")
    b.js(f"document.querySelector('#evd-dl tr[data-id=\"{dl_id}\"]').click()")
    b.wait("document.getElementById('dl-headers').innerText.includes('charge')")
    assert b.errors() == []

    # Live refresh: the setting is kept; a worker slower than the interval never gets a second
    # request for the same thing while one is running.
    b.js("location.hash = 'overview'")
    b.wait(READY["overview"])
    b.js("{ const r = document.getElementById('refresh'); r.value = '1';"
         "r.dispatchEvent(new Event('change')) }")
    assert b.js("localStorage.getItem('hookq.refresh')") == "1"
    b.js("""(() => {
        const real = window.fetch, running = new Map();
        window.__calls = 0; window.__maxSame = 0;
        window.fetch = async (url, init) => {
            const key = String(url).split('?')[0];
            running.set(key, (running.get(key) || 0) + 1);
            window.__maxSame = Math.max(window.__maxSame, running.get(key));
            if (key.endsWith('/status')) window.__calls++;
            try {
                await new Promise(r => setTimeout(r, 2500));
                return await real(url, init);
            } finally { running.set(key, running.get(key) - 1); }
        };
        window.__realFetch = real;
    })()""")
    b.wait("window.__calls >= 2", 15, what="two refreshes through a slow API")
    assert b.js("window.__maxSame") == 1
    b.js("window.fetch = window.__realFetch")
    # Paused: says so, and no refresh happens; kept across a reload.
    b.js("document.getElementById('pause').click()")
    assert b.js("localStorage.getItem('hookq.paused')") == "1"
    b.wait("/paused/.test(document.getElementById('updated').innerText)")
    b.goto(base + "/ui/#overview")
    b.wait(READY["overview"])
    assert b.js("[document.getElementById('refresh').value, "
                "document.getElementById('pause').innerText]") == ["1", "Resume"]
    b.js("document.getElementById('pause').click()")

    # The viewer: no write control on any view, nor on a letter's or an event's page.
    b.js("document.getElementById('logout').click()")
    b.login(VIEWER)
    b.wait("document.getElementById('who').innerText === 'viewer token'")
    for view in VIEWS + (f"dl/{dl_id}", f"event/{dead_rid}"):
        b.js(f"location.hash = '{view}'")
        if view in READY:
            b.wait(READY[view], 20, what=f"the viewer's {view} view")
        elif view.startswith("dl/"):
            b.wait("!document.getElementById('dl-ro').hidden && "
                   "document.getElementById('dl-headers').innerText.includes('charge')")
        else:
            b.wait(f"document.querySelector('#evd-dl tr[data-id=\"{dl_id}\"]')")
        assert b.js(WRITE_CONTROLS) == [], view
        b.screenshot(os.path.join(shots, f"viewer-{view.replace('/', '-')}.png"))
    assert b.errors() == []

    # The admin sees them (so the check above can fail), and resets the breaker through the
    # browser's own confirm dialog: dismissed first (nothing happens), then accepted.
    b.js("document.getElementById('logout').click()")
    b.login(ADMIN)
    b.js("location.hash = 'breakers'")
    reset = "document.querySelector('#breakers tr[data-destination=\"https://pay.example.com:443\"] button')"
    b.wait(reset)
    assert b.js(f"{reset}.innerText") == "Reset"
    for accept in (False, True):
        b.js(f"setTimeout(() => {reset}.click(), 0)")
        dialog = b.wait_event("Page.javascriptDialogOpening")
        assert dialog["params"]["type"] == "confirm"
        assert "pay.example.com:443" in dialog["params"]["message"]
        b.send("Page.handleJavaScriptDialog", accept=accept)
        if not accept:
            assert _api(base, "GET", "breakers/https://pay.example.com:443").json()["state"] == "open"
    wait_until(lambda: _api(base, "GET", "breakers/https://pay.example.com:443").json()["state"] ==
               "closed", 10, what="the breaker closed by the page")
    b.wait("/reset \\(was open/.test(document.getElementById('br-result').innerText)")
    b.wait(f"!{reset}", what="no reset button on a closed breaker")
    b.screenshot(os.path.join(shots, "breaker-reset.png"))

    # A dead letter deleted from the list, through the page's confirm dialog: its row goes.
    b.js("location.hash = 'dead-letters'")
    row = f"document.querySelector('#dl-table tr[data-id=\"{dl_id}\"]')"
    b.wait(row)
    b.js(f"{row}.querySelector('button[data-act=delete]').click()")
    b.wait("document.getElementById('confirm').open")
    b.js("document.getElementById('confirm-ok').click()")
    b.wait("!document.getElementById('dl-list-result').hidden")
    msg = b.text("#dl-list-result")
    left = _api(base, "GET", f"dead-letters/{dl_id}").status_code
    # Skipped only where the worker has no DELETE (405, or a 404 for a letter that exists).
    skip_delete = msg.startswith("Failed: 405") or (msg.startswith("Failed: 404") and left == 200)
    if not skip_delete:
        assert msg == f"Dead letter {dl_id} deleted.", msg
        assert left == 404
        b.wait(f"!{row}", what="the deleted letter's row gone")
    b.screenshot(os.path.join(shots, "dead-letter-deleted.png"))
    assert b.errors() == []

    # Traffic: charts drawn once there are stats.
    b.js("location.hash = 'traffic'")
    if stats_status == 404:
        b.wait("!document.getElementById('tr-na').hidden")
        assert "not available" in b.text("#tr-na")
        assert b.errors() == []
        pytest.skip("GET /api/v1/stats answers 404 on this worker: the traffic charts are "
                    "checked once the stats endpoint is merged")
    assert stats_status == 200
    b.js("{ const r = document.getElementById('refresh'); r.value = '1';"
         "r.dispatchEvent(new Event('change')) }")
    # Rollups may trail the attempts a little: the page's own refresh picks them up.
    b.wait("document.querySelector('#tr-table tr[data-key=app]')", 60, what="route app's stats")
    drawn = b.js("['throughput', 'latency', 'errors'].map(n => { const c = "
                 "document.getElementById('ch-' + n); const ch = window.Chart.getChart(c); "
                 "return [c.width > 0 && c.height > 0, !!ch && ch.data.datasets.length > 0]; })")
    assert drawn == [[True, True]] * 3, drawn
    cells = b.js("[...document.querySelectorAll('#tr-table tr[data-key=app] td')]"
                 ".map(td => td.innerText)")
    assert cells[1] == "2" and cells[2] == "1", cells  # two attempts, one delivered
    # Focus on one route: its percentiles.
    b.js("document.querySelector('#tr-table tr[data-key=app]').click()")
    b.wait("document.getElementById('tr-focus').value === 'app'")
    assert b.js("window.Chart.getChart(document.getElementById('ch-latency'))"
                ".data.datasets.map(d => d.label)") == ["p50", "p95", "p99"]
    b.js("{ const s = document.getElementById('tr-window'); s.value = '24h';"
         "s.dispatchEvent(new Event('change')) }")
    b.wait("/hourly/.test(document.getElementById('tr-range').innerText)")
    b.screenshot(os.path.join(shots, "traffic.png"))
    assert b.errors() == []
    if skip_delete:
        pytest.skip("DELETE /api/v1/dead-letters/{id} is not on this worker (404/405)")
    assert w.stop() == 0



def _get(url):
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return None
