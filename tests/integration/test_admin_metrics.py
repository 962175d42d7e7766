"""/metrics on the worker's admin server, against a real worker, Redis, PostgreSQL and sink: exact
delivery counters per route and outcome, histograms consistent with them, gauges that match what
Redis and PostgreSQL hold, auth, and an exposition that strict parsers accept (our own below, and
`promtool check metrics` and the Python client's parser, both from Debian)."""

import math
import re
import shutil
import subprocess
import time

import pytest

import envelope
import harness
from test_admin_api import ADMIN, STRIPE_ONLY, VIEWER, Api, admin_config, _alive
from worker_fixtures import (event_status, route, wait_until, pg_migrated, sink,  # noqa: F401
                             workers)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{(?:{_LABEL})(?:,{_LABEL})*\}})? (\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"')


def _unescape(v):
    return re.sub(r'\\(["\\n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """A strict reader of the text format 0.0.4: every line a HELP, a TYPE or a sample of a declared
    family, each family in one block, no duplicate series, histograms cumulative with _count equal
    to the +Inf bucket. Returns {(name, frozenset(labels)): value}."""
    assert text.endswith("\n")
    types, seen_families, samples = {}, [], {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(_NAME, name) and name not in seen_families, line
            seen_families.append(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == seen_families[-1] and name not in types, line
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = seen_families[-1]
        kind = types[family]
        if kind == "histogram":
            assert name in (family + "_bucket", family + "_sum", family + "_count"), line
        else:
            assert name == family, line
        if kind == "counter":
            assert family.endswith("_total"), family
        lbl = {k: _unescape(v) for k, v in _LABEL_RE.findall(labels)}
        key = (name, frozenset(lbl.items()))
        assert key not in samples, f"duplicate series: {line}"
        v = float(value)
        assert not math.isnan(v), line
        samples[key] = v
    # Histograms: cumulative buckets, +Inf last and equal to _count.
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, lbl), v in samples.items():
            if name == family + "_bucket":
                d = dict(lbl)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append((float(le), v))
        for lbl, buckets in series.items():
            buckets.sort()
            values = [v for _, v in buckets]
            assert values == sorted(values), (family, lbl, buckets)
            assert buckets[-1][0] == math.inf
            assert samples[(family + "_count", lbl)] == values[-1], (family, lbl)
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def scrape(api, token=VIEWER):
    r = api.get("/metrics", token)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == CONTENT_TYPE
    return r.text


def _routes(sink):
    return (route("app", "github", sink.url("/app"), 'timeout = "30s"') +
            route("st", "stripe", sink.url("/st")) +
            route("shop", "shop", sink.url("/shop")))


def _config(redis_server, pg, sink, tmp_path, port, admin_keys):
    """[admin] with the test API's tokens and `admin_keys` in the table itself."""
    listen = f'listen = "127.0.0.1:{port}"\n'
    cfg = admin_config(redis_server, pg, _routes(sink), tmp_path, port)
    assert listen in cfg
    return cfg.replace(listen, listen + admin_keys + "\n")


def test_metrics_counts_gauges_and_exposition(redis_server, pg_migrated, sink, workers, tmp_path):
    port = harness.free_port()
    cfg = _config(redis_server, pg_migrated, sink, tmp_path, port, 'metrics_refresh = "200ms"')
    # max_inflight 3: at the end, webhooks the sink holds keep the rest waiting in the queue.
    cfg = cfg.replace('drain_timeout = "20s"', 'drain_timeout = "20s"\nmax_inflight = 3')
    cfg = cfg.replace("[retry]\n", '[retry]\ninitial = "50ms"\njitter = false\n')
    workers(cfg)
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")

    # Auth: any unrestricted token; none, a wrong one or a source-limited one is refused.
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    assert api.get("/metrics", "x" * 40).status_code == 401
    assert api.get("/metrics", STRIPE_ONLY).status_code == 403
    assert api.call("POST", "/metrics", VIEWER).status_code == 405
    assert api.get("/metrics", ADMIN).status_code == 200

    r = redis_server.client()
    sink.set("/app", "200")
    sink.script("/st", ["500", "500"])  # each stripe webhook's first try fails, its retry works
    sink.set("/st", "200")
    sink.set("/shop", "400")  # not retryable: a dead letter
    ids = []
    for source, n in (("github", 5), ("stripe", 2), ("shop", 1)):
        for _ in range(n):
            rid, env = envelope.make(source)
            r.lpush(f"hookq:{{{source}}}:queue", env)
            ids.append(rid)
    wait_until(lambda: sorted(event_status(pg_migrated).get(i, "") for i in ids) ==
               ["dead"] + ["delivered"] * 7, 30, what="all delivered or dead")

    # Acks follow the commit: wait for the last one, then every counter is final.
    def acked():
        s = parse(scrape(api))
        done = value(s, "hookq_worker_acks_total") == 10
        return s if done and value(s, "hookq_worker_in_process") == 0 else None
    s = wait_until(acked, 15, what="10 acks (8 webhooks + 2 retries)")

    def outcome(route_, kind):
        return value(s, "hookq_worker_deliveries_total", route=route_, outcome=kind)
    assert [outcome("app", k) for k in ("delivered", "retry", "dead", "parked")] == [5, 0, 0, 0]
    assert [outcome("st", k) for k in ("delivered", "retry", "dead", "parked")] == [2, 2, 0, 0]
    assert [outcome("shop", k) for k in ("delivered", "retry", "dead", "parked")] == [0, 0, 1, 0]
    assert outcome("-", "dead") == 0
    # Dead letters by a bounded reason: shop's 400 is a refusal, not an exhausted retry.
    assert value(s, "hookq_worker_dead_letters_total", route="shop", reason="rejected") == 1
    assert value(s, "hookq_worker_dead_letters_total", route="shop", reason="exhausted") == 0
    assert value(s, "hookq_worker_dead_letters_total", route="st", reason="rejected") == 0
    assert value(s, "hookq_worker_dead_letters_total", route="-", reason="unrouted") == 0
    for rt, attempts, delivered in (("app", 5, 5), ("st", 4, 2), ("shop", 1, 0)):
        assert value(s, "hookq_worker_attempts_total", route=rt) == attempts, rt
        assert value(s, "hookq_worker_attempt_duration_seconds_count", route=rt) == attempts, rt
        assert value(s, "hookq_worker_attempt_duration_seconds_sum", route=rt) > 0, rt
        assert value(s, "hookq_worker_end_to_end_seconds_count", route=rt) == delivered, rt
    claimed = sum(v for (n, _), v in s.items() if n == "hookq_worker_claimed_total")
    assert claimed == 10
    assert value(s, "hookq_worker_claimed_total", queue="stripe") == 4
    assert value(s, "hookq_worker_recorded_jobs_total") == 10
    assert value(s, "hookq_worker_poison_total") == 0
    assert value(s, "hookq_worker_record_batch_seconds_count") >= 1
    assert value(s, "hookq_worker_recorder_backlog") == 0
    info = [dict(l) for (n, l), v in s.items() if n == "hookq_worker_info" and v == 1]
    assert info and info[0]["worker_id"] == "w1" and info[0]["version"]
    assert value(s, "hookq_worker_resident_memory_bytes") > 1 << 20

    # Gauges: what Redis and PostgreSQL hold. Put things where the worker leaves them alone: junk
    # in a poison list, a retry record due in an hour.
    r.lpush("hookq:{github}:poison", b"junk1", b"junk2")
    r.zadd("hookq:{stripe}:retry", {b"HQR1-not-yet": 4102444800000})

    def gauges_match():
        g = parse(scrape(api))
        want = {("hookq_queue_poison", "github"): 2, ("hookq_queue_retry", "stripe"): 1,
                ("hookq_queue_retry_due", "stripe"): 0, ("hookq_queue_workers_live", "github"): 1}
        ok = all(value(g, n, queue=q) == v for (n, q), v in want.items())
        ok = ok and value(g, "hookq_dead_letters", source="shop") == 1
        ok = ok and value(g, "hookq_dead_letters_pending") == 1
        return g if ok and value(g, "hookq_snapshot_success") == 1 else None
    g = wait_until(gauges_match, 15, what="snapshot gauges matching Redis and PostgreSQL")
    # Junk cannot be dated (-1); a retry due in the future is not overdue; the dead letter is
    # younger than this test.
    assert value(g, "hookq_queue_poison_oldest_age_seconds", queue="github") == -1
    assert value(g, "hookq_queue_poison_oldest_age_seconds", queue="stripe") == 0
    assert value(g, "hookq_queue_retry_overdue_seconds", queue="stripe") == 0
    assert 0 <= value(g, "hookq_dead_letters_oldest_age_seconds", source="shop") < 120
    assert 0 <= value(g, "hookq_snapshot_age_seconds") < 10
    assert value(g, "hookq_redis_up") == 1 and value(g, "hookq_postgres_up") == 1

    # Redis's memory against its limit, per node, from INFO memory.
    node = f"127.0.0.1:{redis_server.port}"
    assert value(g, "hookq_redis_memory_max_bytes", node=node) == 0
    r.config_set("maxmemory", str(512 << 20))

    def limit_seen():
        g = parse(scrape(api))
        return g if value(g, "hookq_redis_memory_max_bytes", node=node) == 512 << 20 else None
    g = wait_until(limit_seen, 15, what="the new maxmemory in /metrics")
    used = r.info("memory")["used_memory"]
    assert 0.5 * used < value(g, "hookq_redis_memory_used_bytes", node=node) < 2 * used, used

    # Depth and inflight: the sink holds 3 (max_inflight), the other 5 wait in the queue.
    sink.set("/app", "hang")
    before = len(sink.received("/app"))
    enqueued = time.time() - 0.001
    for _ in range(8):
        r.lpush("hookq:{github}:queue", envelope.make("github")[1])
    wait_until(lambda: len(sink.received("/app")) == before + 3, 15, what="3 held by the sink")

    def held():
        g = parse(scrape(api))
        depth = value(g, "hookq_queue_depth", queue="github")
        ok = (depth == r.llen("hookq:{github}:queue") == 5 and
              value(g, "hookq_queue_inflight", queue="github") == 3 and
              value(g, "hookq_worker_in_process") == 3)
        return g if ok else None
    g = wait_until(held, 15, what="depth 5 and inflight 3 in /metrics and in Redis")
    # The next one to be claimed was received (stamped by envelope.make) after `enqueued`.
    assert 0 < value(g, "hookq_queue_oldest_age_seconds", queue="github") < time.time() - enqueued
    assert value(g, "hookq_queue_oldest_age_seconds", queue="shop") == 0
    assert 0 < value(g, "hookq_queue_inflight_oldest_age_seconds", queue="github") < 60
    assert value(g, "hookq_queue_inflight_oldest_age_seconds", queue="shop") == 0
    text = scrape(api)
    promtool_check(text)
    client_parse(text)


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian's prometheus; scripts/deps.sh installs it)"
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def client_parse(text):
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["hookq_worker_deliveries"].type == "counter"
    assert families["hookq_worker_attempt_duration_seconds"].type == "histogram"


def test_metrics_breaker_transitions_and_parked(redis_server, pg_migrated, sink, workers,
                                                tmp_path):
    port = harness.free_port()
    # st (stripe) only for the test API's stripe-team token; nothing is sent to it.
    routes = route("app", "github", sink.url("/app")) + route("st", "stripe", sink.url("/st"))
    cfg = admin_config(redis_server, pg_migrated, routes, tmp_path, port)
    listen = f'listen = "127.0.0.1:{port}"\n'
    cfg = cfg.replace(listen, listen + 'metrics_refresh = "200ms"\n')
    cfg = cfg.replace("[breaker]\n", '[breaker]\nfailure_threshold = 2\nopen_for = "60s"\n')
    cfg = cfg.replace("[retry]\n", '[retry]\ninitial = "50ms"\njitter = false\n')
    workers(cfg)
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    sink.set("/app", "500")
    r = redis_server.client()
    for _ in range(3):
        r.lpush("hookq:{github}:queue", envelope.make("github")[1])
    dest = sink.url("").rstrip("/")

    def parked_in_redis():
        return sum(r.zcard(b"hookq:{github}:parked:" + d)
                   for d in r.smembers("hookq:{github}:parked_destinations"))
    wait_until(lambda: parked_in_redis() == 3, 20, what="all 3 parked behind the open breaker")

    def settled():
        g = parse(scrape(api))
        ok = (value(g, "hookq_worker_deliveries_total", route="app", outcome="parked") == 3 and
              value(g, "hookq_queue_parked", queue="github") == 3 and
              value(g, "hookq_breaker_state", destination=dest, state="open") == 1 and
              value(g, "hookq_breaker_state", destination=dest, state="closed") == 0 and
              value(g, "hookq_breaker_state", destination=dest, state="half_open") == 0)
        return g if ok else None
    g = wait_until(settled, 15, what="parked and breaker state in /metrics")
    # Open for 60 s: one transition, and every attempt made was a 500 scheduled for a retry.
    assert value(g, "hookq_worker_breaker_transitions_total", destination=dest, **{
        "from": "closed", "to": "open"}) == 1
    assert value(g, "hookq_worker_breaker_transitions_total", destination=dest, **{
        "from": "open", "to": "half_open"}) == 0
    attempts = value(g, "hookq_worker_attempts_total", route="app")
    assert attempts >= 2
    assert value(g, "hookq_worker_deliveries_total", route="app", outcome="retry") == attempts
    assert value(g, "hookq_worker_deliveries_total", route="app", outcome="delivered") == 0


def test_metrics_public_and_before_a_snapshot(redis_server, pg_migrated, sink, workers, tmp_path):
    port = harness.free_port()
    cfg = _config(redis_server, pg_migrated, sink, tmp_path, port, "metrics_public = true")
    workers(cfg)
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")
    # No token needed; the first scrape starts the refresh and does not wait for it.
    s = parse(scrape(api, token=None))
    assert value(s, "hookq_worker_attempts_total", route="app") == 0
    if value(s, "hookq_snapshot_success") == 0:
        assert value(s, "hookq_snapshot_age_seconds") == -1
    s = wait_until(lambda: (lambda g: g if value(g, "hookq_snapshot_success") == 1 else None)(
        parse(scrape(api, token=None))), 15, what="a snapshot")
    assert value(s, "hookq_queue_depth", queue="github") == 0
    # The API itself still needs a token.
    assert Api(port).get("/api/v1/status").status_code == 401


if __name__ == "__main__":
    pytest.main([__file__])
