"""Configuration validation (file:line:col named, exit 2) and `hookqctl migrate`."""

import datetime
import os
import subprocess

import harness
from worker_fixtures import migrate, rows, worker_env


def run_worker(tmp_path, text):
    path = os.path.join(str(tmp_path), "worker.toml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([harness.WORKER_PATH, "--config", path], capture_output=True, text=True,
                       env=worker_env(), timeout=30)
    return path, r


GOOD = """\
[worker]
id = "w1"

[postgres]
dsn = "host=127.0.0.1 dbname=hookq"

[[routes]]
name = "gh"
source = "github"
url = "http://127.0.0.1:8080/hooks/github"
timeout = "5s"
"""


def test_good_config_checks(tmp_path):
    path = os.path.join(str(tmp_path), "worker.toml")
    with open(path, "w") as f:
        f.write(GOOD)
    r = subprocess.run([harness.WORKER_PATH, "--config", path, "--check-config"],
                       capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stderr
    r = subprocess.run([harness.CTL_PATH, "--config", path, "check-config"],
                       capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stderr


def test_unknown_key_names_file_line_and_key(tmp_path):
    path, r = run_worker(tmp_path, GOOD.replace('timeout = "5s"', 'timeout = "5s"\nmax_attemps = 4'))
    assert r.returncode == 2
    assert r.stderr.startswith(f"{path}:12:1: ")
    assert "max_attemps" in r.stderr


def test_bad_value_names_line(tmp_path):
    path, r = run_worker(tmp_path, GOOD.replace('timeout = "5s"', 'timeout = "301s"'))
    assert r.returncode == 2
    assert r.stderr.startswith(f"{path}:11:11: "), r.stderr
    assert "'timeout' must be between 1s and 300s" in r.stderr


def test_bad_url_and_syntax(tmp_path):
    path, r = run_worker(tmp_path, GOOD.replace("http://127.0.0.1:8080", "ftp://x"))
    assert r.returncode == 2 and f"{path}:10:7: " in r.stderr and "'url'" in r.stderr
    path, r = run_worker(tmp_path, GOOD.replace('id = "w1"', 'id = "w1'))
    assert r.returncode == 2 and r.stderr.startswith(f"{path}:2:"), r.stderr
    path, r = run_worker(tmp_path, GOOD + '\n[breaker]\nfailure_threshold = "five"\n')
    assert r.returncode == 2 and f"{path}:14:" in r.stderr and "failure_threshold" in r.stderr
    path, r = run_worker(tmp_path, GOOD + 'secret = "whsec_%%%"\n')
    assert r.returncode == 2 and f"{path}:12:" in r.stderr and "base64" in r.stderr
    assert "%%%" not in r.stderr  # secrets never echoed


def test_hash_tag_port_and_url_characters_are_refused(tmp_path):
    """Accepted before: a brace in a source (a Redis hash tag), a port with trailing garbage, and a
    CR/LF in a URL (refused by curl at every delivery instead)."""
    bad = {
        GOOD.replace('source = "github"', 'source = "git{hub}"'):
            (":9:10: ", "'source' must not contain '{' or '}'"),
        GOOD.replace('id = "w1"', 'id = "w1"\n[redis]\naddress = "127.0.0.1:6379abc"'):
            (":4:11: ", "'address' must be host:port (port 1-65535)"),
        GOOD.replace("/hooks/github", "/hooks/github\\r\\nX-Injected: 1"):
            (":10:7: ", "'url' must not contain spaces or control characters"),
    }
    for text, (where, msg) in bad.items():
        path, r = run_worker(tmp_path, text)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(path + where) and msg in r.stderr, r.stderr


def test_migrate_is_idempotent_and_partitioned(postgres):
    out = migrate(postgres)
    assert "applied 0001_init.sql" in out
    out = migrate(postgres)
    assert "up to date" in out
    shipped = sorted(n for n in os.listdir(os.path.join(harness.SOURCE_DIR, "migrations"))
                     if n.endswith(".sql"))
    assert len(shipped) >= 4 and shipped[0] == "0001_init.sql"
    assert rows(postgres, "SELECT version FROM schema_migrations ORDER BY 1") == [
        (n,) for n in shipped]
    parts = {name for (name,) in rows(
        postgres, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                  "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'webhook_events'")}
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m")
    assert f"webhook_events_{month}" in parts and "webhook_events_default" in parts
    assert len(parts) == 4  # this month, the next two, default


def test_concurrent_migrate_runs_once(postgres):
    procs = [subprocess.Popen([harness.CTL_PATH, "migrate", "--dsn", postgres.dsn],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=worker_env()) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum("applied 0001_init.sql" in o for o, _ in outs) == 1


def test_example_config_is_valid(tmp_path):
    """conf/worker.toml (the documented example) passes validation, secrets aside."""
    with open(os.path.join(harness.SOURCE_DIR, "conf", "worker.toml")) as f:
        text = f.read()
    import re
    text = re.sub(r'secret = "(file|env):[^"]*"',
                  'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"', text)
    text = re.sub(r'password = "(file|env):[^"]*"', 'password = "literal:example-password"', text)
    tokens = iter(range(100))
    text = re.sub(r'token = "(file|env):[^"]*"',
                  lambda m: f'token = "literal:example-admin-token-{next(tokens):04d}"', text)
    path = os.path.join(str(tmp_path), "worker.toml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([harness.WORKER_PATH, "--config", path, "--check-config"],
                       capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stderr
    assert "3 routes" in r.stdout
