"""Real servers for the integration tests: redis-server, nginx with the built module, PostgreSQL.

Each server runs on a free loopback port inside its own temporary folder and is stopped (and its
folder removed) when the test that started it ends. Nothing here talks to a server that the test
did not start itself.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILD_DIR = os.environ.get("HOOKQ_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE_DIR = os.environ.get("HOOKQ_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
SANITIZE = os.environ.get("HOOKQ_SANITIZE", "0") == "1"
MODULE_PATH = os.path.join(BUILD_DIR, "ngx_module", "ngx_http_hookq_module.so")
WORKER_PATH = os.path.join(BUILD_DIR, "worker", "hookq-worker")
CTL_PATH = os.path.join(BUILD_DIR, "worker", "hookqctl")
NGINX_BIN = "/usr/sbin/nginx"


# Every server a test starts, so that none outlives the test run even when a fixture fails halfway
# (a test that raises before its teardown would otherwise leave a redis-server behind).
_live = set()


@atexit.register
def _close_leftovers():
    for server in list(_live):
        try:
            server.close()
        except Exception:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


def sanitizer_env():
    """Environment that lets an ASan-built module run inside Debian's (uninstrumented) nginx."""
    env = dict(os.environ)
    if not SANITIZE:
        return env
    cxx = os.environ.get("HOOKQ_CXX_COMPILER", "clang++")
    runtimes = []
    for name in ("libclang_rt.asan-x86_64.so", "libclang_rt.ubsan_standalone-x86_64.so"):
        path = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True,
                              text=True).stdout.strip()
        if os.path.isabs(path) and os.path.exists(path):
            runtimes.append(path)
            break  # asan's runtime includes ubsan's handlers
    if not runtimes:
        for name in ("libasan.so", "libubsan.so"):
            path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                                  text=True).stdout.strip()
            if os.path.isabs(path) and os.path.exists(path):
                runtimes.append(path)
    env["LD_PRELOAD"] = ":".join(runtimes)
    # nginx itself is not instrumented and never frees its cycle pool at exit: leak reports would
    # be nginx's, not ours. Use-after-free, overflows and UB still abort the process.
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1:halt_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


class TempDir:
    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


class RedisServer:
    def __init__(self, extra_args=()):
        self.dir = TempDir("hookq-redis-")
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        _live.add(self)
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir.path, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", os.path.join(self.dir.path, "redis.log")]
        self.proc = subprocess.Popen(args + self.extra_args)
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def pause(self):
        """SIGSTOP: connections stay open but nothing answers (a hung Redis)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def client(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def close(self):
        _live.discard(self)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.stop()
        self.dir.cleanup()


class Nginx:
    """Debian's /usr/sbin/nginx loading the built module, with a test-supplied http{} body.

    `http_conf` may use {port} and {redis}, filled in here. The module is loaded with load_module,
    exactly as an operator would.
    """

    def __init__(self, http_conf, redis_port=None, workers=1, env=None, extra_main="",
                 module_last=False):
        self.dir = TempDir("hookq-nginx-")
        self.port = free_port()
        self.redis_port = redis_port
        self.workers = workers
        self.env = env or {}
        self.extra_main = extra_main
        self.module_last = module_last
        self.proc = None
        self.write_conf(http_conf)
        _live.add(self)
        self.start()

    @property
    def conf_path(self):
        return os.path.join(self.dir.path, "nginx.conf")

    @property
    def error_log(self):
        return os.path.join(self.dir.path, "error.log")

    def render(self, http_conf):
        # Plain replacement rather than str.format: nginx configs are full of braces.
        body = (http_conf.replace("{port}", str(self.port))
                .replace("{redis}", f"127.0.0.1:{self.redis_port}")
                .replace("{dir}", self.dir.path))
        envs = "".join(f"env {k};\n" for k in self.env)
        loads = f"load_module {MODULE_PATH};\n"
        extra = self.extra_main
        if extra.startswith("load_module"):  # other modules: before or after ours, as asked
            loads = extra + "\n" + loads if self.module_last else loads + extra + "\n"
            extra = ""
        return f"""
{loads}
daemon off;
master_process on;
worker_processes {self.workers};
pid {self.dir.path}/nginx.pid;
error_log {self.error_log} info;
{envs}
{extra}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir.path}/body;
    proxy_temp_path {self.dir.path}/proxy;
    fastcgi_temp_path {self.dir.path}/fastcgi;
    uwsgi_temp_path {self.dir.path}/uwsgi;
    scgi_temp_path {self.dir.path}/scgi;
{body}
}}
"""

    def write_conf(self, http_conf):
        with open(self.conf_path, "w") as f:
            f.write(self.render(http_conf))

    def process_env(self):
        env = sanitizer_env()
        env.update(self.env)
        return env

    def start(self):
        stderr_path = os.path.join(self.dir.path, "stderr.log")
        with open(stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen([NGINX_BIN, "-p", self.dir.path, "-c", self.conf_path],
                                         env=self.process_env(), stderr=stderr)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception as e:
            with open(stderr_path) as f:
                raise RuntimeError(f"nginx did not start: {e}\n{f.read()}{self.log()}") from None

    def reload(self, http_conf=None):
        if http_conf is not None:
            self.write_conf(http_conf)
        self.proc.send_signal(signal.SIGHUP)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self):
        try:
            with open(self.error_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        return rc

    def close(self):
        _live.discard(self)
        rc = self.stop()
        log = self.log()
        self.dir.cleanup()
        # A sanitizer report or a crashed worker fails the test that owned this nginx.
        bad = [line for line in log.splitlines()
               if "exited on signal" in line or "AddressSanitizer" in line
               or "runtime error:" in line]
        assert not bad, "nginx worker crashed:\n" + "\n".join(bad)
        return rc


def nginx_test_config(http_conf, env=None):
    """Runs `nginx -t` on a config; returns (exit code, output)."""
    d = TempDir("hookq-nginx-t-")
    try:
        n = Nginx.__new__(Nginx)
        n.dir, n.port, n.redis_port, n.workers, n.env, n.extra_main = d, free_port(), 6379, 1, env or {}, ""
        n.module_last = False
        n.write_conf(http_conf)
        r = subprocess.run([NGINX_BIN, "-t", "-p", d.path, "-c", n.conf_path],
                           env=n.process_env(), capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr
    finally:
        d.cleanup()


def _unprivileged_user():
    """initdb refuses to run as root: as root, run PostgreSQL as the 'postgres' system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


def _pg_bindir():
    base = "/usr/lib/postgresql"
    versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int)
    return os.path.join(base, versions[-1], "bin")


class Postgres:
    """A throwaway PostgreSQL cluster: initdb + pg_ctl in a temp folder, trust auth on loopback."""

    def __init__(self):
        self.dir = TempDir("hookq-pg-")
        self.data = os.path.join(self.dir.path, "data")
        self.port = free_port()
        self.bindir = _pg_bindir()
        self.user = _unprivileged_user()
        if self.user:
            os.chmod(self.dir.path, 0o755)
            os.chown(self.dir.path, self.user.pw_uid, self.user.pw_gid)
        _live.add(self)
        self._run(["initdb", "-D", self.data, "-U", "hookq", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir.path}'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\n")
        self.start()
        self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "hookq", "hookq"])

    @property
    def dsn(self):
        return f"host=127.0.0.1 port={self.port} user=hookq dbname=hookq"

    def _run(self, argv, check=True):
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.user:
            argv = ["runuser", "-u", self.user.pw_name, "--"] + argv
        return subprocess.run(argv, check=check, capture_output=True, text=True)

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir.path, "pg.log"),
                   "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def connect(self):
        import psycopg2
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        return conn

    def close(self):
        _live.discard(self)
        self.stop("immediate")
        self.dir.cleanup()
