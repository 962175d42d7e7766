"""The Debian package built by CPack from the test's build tree: its control fields, its files, and
that Debian's nginx loads the module from where the package puts it. Nothing is installed on the
system: the .deb is unpacked with `dpkg -x` into a temporary root."""

import os
import shutil
import subprocess
import urllib.request

import pytest

import harness
from worker_fixtures import config_text, route, worker_env
from worker_fixtures import pg_migrated  # noqa: F401 (fixture)

CPACK_CONFIG = os.path.join(harness.BUILD_DIR, "CPackConfig.cmake")

pytestmark = pytest.mark.skipif(
    not (shutil.which("cpack") and shutil.which("dpkg-deb") and os.path.exists(CPACK_CONFIG)),
    reason="needs cpack, dpkg-deb and a configured build tree")


def run(*args, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("hookq-deb")
    run("cpack", "--config", CPACK_CONFIG, "-G", "DEB", "-B", str(out), timeout=170)
    debs = [p for p in out.iterdir() if p.name.endswith(".deb")]
    assert len(debs) == 1, debs
    root = out / "root"
    run("dpkg", "-x", str(debs[0]), str(root))
    return debs[0], root


def field(info, name):
    for line in info.splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_control_fields(package):
    deb, _ = package
    info = run("dpkg-deb", "-I", str(deb))
    assert field(info, "Package") == "hookq"
    depends = field(info, "Depends")
    provides = subprocess.run(["dpkg-query", "-W", "-f=${Provides}", "nginx"],
                              capture_output=True, text=True).stdout
    abi = [p.strip() for p in provides.split(",") if p.strip().startswith("nginx-abi-")]
    if abi:
        assert abi[0] in depends, depends
    assert "libssl3" in depends, depends
    if os.path.exists(harness.WORKER_PATH):
        for lib in ("libpq5", "libcurl4", "libsystemd0"):
            assert lib in depends, depends


def test_files(package):
    deb, root = package
    listing = run("dpkg-deb", "-c", str(deb))
    assert "./usr/lib/nginx/modules/ngx_http_hookq_module.so" in listing
    needed = run("readelf", "-d", str(root / "usr/lib/nginx/modules/ngx_http_hookq_module.so"))
    assert "hiredis" not in needed, needed  # linked statically, hidden from other modules
    avail = root / "usr/share/nginx/modules-available/mod-http-hookq.conf"
    assert avail.read_text().strip() == "load_module modules/ngx_http_hookq_module.so;"
    examples = root / "usr/share/doc/hookq/examples/nginx"
    assert (examples / "github.conf").exists() and (examples / "hookq-http.conf").exists()
    if os.path.exists(harness.WORKER_PATH):
        assert os.access(root / "usr/bin/hookq-worker", os.X_OK)
        assert os.access(root / "usr/bin/hookqctl", os.X_OK)
        assert list((root / "usr/share/hookq/migrations").glob("*.sql"))
        src = os.path.join(harness.SOURCE_DIR, "conf")
        if os.path.exists(os.path.join(src, "worker.toml")):
            assert (root / "etc/hookq/worker.toml").exists()
            conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"],
                                       capture_output=True, text=True).stdout
            assert "/etc/hookq/worker.toml" in conffiles
        if os.path.exists(os.path.join(src, "hookq-worker.service")):
            assert (root / "lib/systemd/system/hookq-worker.service").exists()


def test_debian_nginx_loads_installed_module(package, tmp_path):
    _, root = package
    so = root / "usr/lib/nginx/modules/ngx_http_hookq_module.so"
    secret = tmp_path / "gh.secret"
    secret.write_text("topsecret\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
load_module {so};
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ }}
http {{
    access_log off;
    hookq_redis 127.0.0.1:6379;
    server {{
        listen 127.0.0.1:{harness.free_port()};
        location = /hooks/github {{ hookq github; hookq_secret file:{secret}; }}
    }}
}}
""")
    r = subprocess.run([harness.NGINX_BIN, "-t", "-p", str(tmp_path), "-c", str(conf)],
                       env=harness.sanitizer_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_packaged_worker_serves_dashboard_and_admin_setup(package, redis_server, pg_migrated,
                                                          tmp_path):
    """The stripped /usr/bin/hookq-worker of the .deb carries the dashboard (no file installed
    for it), and the packaged sample and unit are ready for the admin API."""
    _, root = package
    worker = root / "usr/bin/hookq-worker"
    if not worker.exists():
        pytest.skip("worker not built")
    ui_files = os.listdir(os.path.join(harness.SOURCE_DIR, "worker", "admin", "ui"))
    listing = run("dpkg-deb", "-c", str(package[0]))
    assert not [f for f in ui_files if "/" + f + "\n" in listing + "\n"], listing
    sample = (root / "etc/hookq/worker.toml").read_text()
    assert "\n[admin]\n" in sample and "[[admin.tokens]]" in sample and "/ui/" in sample
    unit = (root / "lib/systemd/system/hookq-worker.service").read_text()
    assert "\nRuntimeDirectory=hookq\n" in unit  # ProtectSystem=strict: no socket in /run else

    port = harness.free_port()
    config = tmp_path / "worker.toml"
    config.write_text(config_text(redis_server, pg_migrated,
                                  route("app", "github", "http://127.0.0.1:9/app")) + f"""
[admin]
listen = "127.0.0.1:{port}"
[[admin.tokens]]
name = "viewer"
role = "viewer"
token = "env:HOOKQ_PKG_TEST_TOKEN"
""")
    env = dict(worker_env(), HOOKQ_PKG_TEST_TOKEN="p" * 32)
    proc = subprocess.Popen([str(worker), "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_port(port, timeout=30, proc=proc)

        def get(path):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        status, ctype, body = get("/ui/")
        assert status == 200 and ctype.startswith("text/html"), (status, ctype)
        with open(os.path.join(harness.SOURCE_DIR, "worker/admin/ui/index.html")) as f:
            assert body == f.read()
        status, ctype, _ = get("/ui/app.js")
        assert status == 200 and "javascript" in ctype, (status, ctype)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/status",
                                     headers={"Authorization": "Bearer " + "p" * 32})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(30)
