"""A local HTTP sink standing in for the application the worker delivers to.

Behaviour is chosen per path (or as a default), either as a standing mode or as a script of modes
consumed one request at a time. Modes:
  "200", "204", "400", "410", "500", ... : answer with that status
  "429:5"                                : 429 with Retry-After: 5
  "hang"                                 : never answer (until the sink closes)
  "reset"                                : read the request, then reset the connection (RST)
  "sleep:1500"                           : answer 200 after 1.5 s
  "trickle:100"                          : 200 with a 100-byte body sent one byte every 100 ms
  "body:500:1048576"                     : 500 with a 1 MiB body, streamed as fast as it is read
                                           (it starts with BODY_PREFIX)
For trickle and body modes, `sent` records (path, bytes written, whether the body was finished).
Every request is recorded (method, path, headers, body, time). It can also be driven over HTTP:
POST /_control with {"path": ..., "mode": ...} or {"path": ..., "script": [...]} or {"default": ...}.
"""

import collections
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Request = collections.namedtuple("Request", "method path headers body at raw", defaults=(None,))

BODY_PREFIX = b"oops: backend exploded <db=primary>\r\n\x01"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the worker's connection cache expects

    def log_message(self, *args):
        pass

    def do_POST(self):
        sink = self.server.sink
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/_control":
            sink.control(json.loads(body))
            return self._reply(204)
        mode = sink.next_mode(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = list(self.headers.items())
        if mode == "reset":
            sink.record(Request("POST", self.path, headers, body, time.time(), raw))
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if mode == "hang":
            sink.record(Request("POST", self.path, headers, body, time.time(), raw))
            sink.closing.wait(120)
            self.close_connection = True
            return
        if mode.startswith("trickle:") or mode.startswith("body:"):
            sink.record(Request("POST", self.path, headers, body, time.time(), raw))
            return self._stream(mode)
        if mode.startswith("sleep:"):
            sink.closing.wait(int(mode[6:]) / 1000)
            mode = "200"
        status, _, retry_after = mode.partition(":")
        extra = {"Retry-After": retry_after} if retry_after else {}
        sink.record(Request("POST", self.path, headers, body, time.time(), raw))
        self._reply(int(status), extra)

    def _stream(self, mode):
        sink = self.server.sink
        kind, _, arg = mode.partition(":")
        if kind == "trickle":
            status, total, chunk, pause = 200, 100, b"x", int(arg) / 1000
        else:
            code, _, size = arg.partition(":")
            status, total, chunk, pause = int(code), int(size), b"z" * (1 << 20), 0
        self.send_response(status)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        sent, done = 0, False
        try:
            if kind == "body":
                first = BODY_PREFIX + b"y" * (4096 - len(BODY_PREFIX))
                self.wfile.write(first[:total])
                sent = min(total, len(first))
            while sent < total and not sink.closing.is_set():
                piece = chunk[:total - sent]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                if pause:
                    sink.closing.wait(pause)
            done = sent == total
        except OSError:
            pass
        with sink.lock:
            sink.sent.append((self.path, sent, done))
        self.close_connection = True

    def _reply(self, status, extra=None):
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    # Read by listen() in the constructor: the default backlog of 5 drops connections when the
    # worker opens its whole per-host connection pool at once.
    request_queue_size = 1024
    daemon_threads = True


class Sink:
    def __init__(self, default="200"):
        self.default = default
        self.modes = {}
        self.scripts = collections.defaultdict(collections.deque)
        self.requests = []
        self.sent = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path, mode):
        with self.lock:
            self.modes[path] = mode

    def set_default(self, mode):
        with self.lock:
            self.default = mode

    def script(self, path, modes):
        with self.lock:
            self.scripts[path].extend(modes)

    def control(self, msg):
        if "default" in msg:
            self.set_default(msg["default"])
        if "mode" in msg:
            self.set(msg["path"], msg["mode"])
        if "script" in msg:
            self.script(msg["path"], msg["script"])

    def next_mode(self, path):
        with self.lock:
            if self.scripts[path]:
                return self.scripts[path].popleft()
            return self.modes.get(path, self.default)

    def record(self, req):
        with self.lock:
            self.requests.append(req)

    def received(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def ids(self, path=None):
        return {r.headers.get("x-request-id") for r in self.received(path)}

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
