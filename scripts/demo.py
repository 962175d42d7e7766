"""The whole of hookq on loopback, for scripts/demo.sh: redis-server, PostgreSQL (initdb into a temp
folder), nginx with the hookq module, hookq-worker, and a small sample application that verifies
hookq's own signature on what it receives. Sends a signed GitHub webhook and shows it queued,
delivered and recorded, then prints the dashboard's URL with a viewer and an admin token made for
this run.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import edge  # noqa: E402
import harness  # noqa: E402

GITHUB_SECRET = "demo-github-secret"
# The key hookq signs deliveries with (Standard Webhooks: whsec_ + base64 of the key bytes).
APP_SECRET = "whsec_" + base64.b64encode(b"demo application signing key 32b").decode()


class App(BaseHTTPRequestHandler):
    """The application's webhook endpoint: verifies hookq's signature, then 'processes'."""

    received = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        wid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        key = base64.b64decode(APP_SECRET[len("whsec_"):])
        want = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest())
        ok = any(hmac.compare_digest(s.split(",", 1)[-1].encode(), want)
                 for s in self.headers["webhook-signature"].split())
        App.received.append((self.headers["X-Request-ID"], ok))
        print(f"  app: got {self.headers['X-Request-ID']} from {self.headers.get('X-Hookq-Source')} "
              f"attempt {self.headers.get('X-Retry-Attempt')}/{self.headers.get('X-Max-Attempts')}, "
              f"{len(body)} bytes, hookq signature {'valid' if ok else 'INVALID'}")
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()


def admin_port():
    """The admin API's default port when it is free (a URL to remember), else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 9187))
            return 9187
        except OSError:
            return harness.free_port()


def admin_get(port, token, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def show(label, status, headers, body):
    keep = {k: v for k, v in headers.items() if k in ("x-request-id", "idempotent-replayed")}
    print(f"  {label}: HTTP {status} {keep} {body.decode().strip()}")


def main():
    once = "--once" in sys.argv
    work = tempfile.mkdtemp(prefix="hookq-demo-")
    redis = harness.RedisServer()
    print(f"redis-server on 127.0.0.1:{redis.port}")
    pg = harness.Postgres()
    print(f"PostgreSQL on 127.0.0.1:{pg.port} ({pg.dsn})")
    subprocess.run([harness.CTL_PATH, "migrate", "--dsn", pg.dsn], check=True)

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    print(f"sample application on http://127.0.0.1:{app.server_port}/webhooks/github")

    secret_file = os.path.join(work, "github.secret")
    with open(secret_file, "w") as f:
        f.write(GITHUB_SECRET + "\n")
    port = admin_port()
    config = os.path.join(work, "worker.toml")
    with open(config, "w") as f:
        f.write(f"""
[worker]
id = "demo"
queues = ["github"]
[redis]
address = "127.0.0.1:{redis.port}"
[postgres]
dsn = "{pg.dsn}"
[sources.github]
event_header = "X-GitHub-Event"
[[routes]]
name = "app"
source = "github"
url = "http://127.0.0.1:{app.server_port}/webhooks/github"
timeout = "5s"
secret = "{APP_SECRET}"

[admin]
listen = "127.0.0.1:{port}"
[[admin.tokens]]
name = "demo-viewer"
role = "viewer"
token = "env:HOOKQ_DEMO_VIEWER_TOKEN"
[[admin.tokens]]
name = "demo-admin"
role = "admin"
token = "env:HOOKQ_DEMO_ADMIN_TOKEN"
""")
    # Fresh tokens every run, handed to the worker through its environment (never in a file).
    viewer, admin = secrets.token_hex(16), secrets.token_hex(16)
    env = dict(os.environ, HOOKQ_DEMO_VIEWER_TOKEN=viewer, HOOKQ_DEMO_ADMIN_TOKEN=admin)
    log = open(os.path.join(work, "worker.log"), "ab")
    worker = subprocess.Popen([harness.WORKER_PATH, "--config", config], stdout=log, stderr=log,
                              env=env)
    nginx = harness.Nginx("""
    hookq_redis {redis};
    hookq_redis_timeout 200ms;
    server {
        listen 127.0.0.1:{port};
        location = /hooks/github { hookq github; hookq_secret file:SECRET; }
        location = /hookq/status { hookq_status; allow 127.0.0.1; deny all; }
    }
""".replace("SECRET", secret_file), redis_port=redis.port)
    print(f"nginx + hookq on http://127.0.0.1:{nginx.port}/hooks/github (secret: {GITHUB_SECRET})")
    try:
        harness.wait_port(port, timeout=30, proc=worker)
        print(f"hookq-worker admin API on http://127.0.0.1:{port}/api/v1/")
        body = json.dumps({"zen": "Design for failure.", "hook_id": 1,
                           "repository": {"full_name": "acme/shop"}}).encode()
        delivery = str(uuid.uuid4())
        headers = edge.github_headers(body, delivery=delivery, secret=GITHUB_SECRET)
        headers["X-GitHub-Event"] = "push"
        print("\n== GitHub posts a signed webhook, then retries it; a forger tries too")
        show("signed   ", *edge.post(nginx.port, "/hooks/github", body, headers))
        show("retry    ", *edge.post(nginx.port, "/hooks/github", body, headers))
        forged = dict(headers, **{"X-Hub-Signature-256": "sha256=" + "0" * 64,
                                  "X-GitHub-Delivery": str(uuid.uuid4())})
        show("forged   ", *edge.post(nginx.port, "/hooks/github", body, forged))

        print("\n== hookq-worker delivers it to the application")
        deadline = time.monotonic() + 20
        rows = []
        with pg.connect() as conn:
            while time.monotonic() < deadline:
                cur = conn.cursor()
                cur.execute("SELECT id, source, event_type, status, attempts FROM webhook_events")
                rows = cur.fetchall()
                if rows and rows[0][3] == "delivered":
                    break
                time.sleep(0.2)
            print("\n== recorded in PostgreSQL")
            for r in rows:
                print(f"  webhook_events: id={r[0]} source={r[1]} event={r[2]} status={r[3]} attempts={r[4]}")
            cur = conn.cursor()
            cur.execute("SELECT event_id, route, attempt, http_status, outcome, round(duration_ms::numeric, 2)"
                        " FROM delivery_attempts ORDER BY started_at")
            for r in cur.fetchall():
                print(f"  delivery_attempts: event={r[0]} route={r[1]} attempt={r[2]} "
                      f"http={r[3]} outcome={r[4]} {r[5]} ms")
        print(f"  Redis queue now: {redis.client().llen('hookq:{github}:queue')} waiting")
        print("\n== edge counters (/hookq/status)")
        for (source, outcome), n in sorted(edge.status_counters(nginx.port).items()):
            if n:
                print(f"  hookq_edge_requests_total{{source={source},outcome={outcome}}} {n}")
        if not rows or rows[0][3] != "delivered":
            print("the webhook was not delivered; worker log:\n" + open(os.path.join(work, "worker.log")).read())
            return 1
        print("\n== the admin API sees it")
        status = admin_get(port, viewer, "/api/v1/status")
        events = admin_get(port, viewer, "/api/v1/events?limit=5")
        db = status.get("database", {})
        print("  GET /api/v1/status: queues " +
              ", ".join(f"{q['queue']} depth {q['depth']}" for q in status.get("queues", [])) +
              "; last hour " +
              ", ".join(f"{k} {v}" for k, v in db.get("events_last_hour", {}).items() if v) +
              f"; dead letters {db.get('dead_letters')}")
        for e in events["items"]:
            print(f"  GET /api/v1/events: {e['id']} {e['source']} {e['event_type']} {e['status']}")
        dashboard = f"http://127.0.0.1:{port}/ui/"
        ui = urllib.request.urlopen(dashboard, timeout=5).status
        print(f"""
== dashboard (HTTP {ui})
  open      {dashboard}
  viewer    {viewer}    (reads)
  admin     {admin}    (also retries and deletes dead letters; audited)
  API       curl -H 'Authorization: Bearer {viewer}' http://127.0.0.1:{port}/api/v1/status
  metrics   curl -H 'Authorization: Bearer {viewer}' http://127.0.0.1:{port}/metrics
  (fresh tokens on every run, passed to the worker as env:HOOKQ_DEMO_VIEWER_TOKEN and
   env:HOOKQ_DEMO_ADMIN_TOKEN; paste one into the dashboard's token field)""")
        if not once:
            print("\nRunning; post more webhooks to the URL above. Ctrl-C to stop.")
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        nginx.close()
        worker.terminate()
        worker.wait(30)
        app.shutdown()
        pg.close()
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
