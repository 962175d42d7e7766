"""The shipped Prometheus rules and Grafana dashboard: `promtool check rules` and `promtool test
rules` pass, every alert is tested both firing and quiet, every runbook link lands on a section of
docs/runbooks.md, every dashboard expression parses, and every metric name the rules and the
dashboard use is one a real worker's /metrics or a real nginx's hookq_status page declares."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

import edge
import envelope
import harness
from test_admin_api import VIEWER, Api, admin_config, _alive
from worker_fixtures import route, wait_until, pg_migrated, sink, workers  # noqa: F401

PROM_DIR = os.path.join(harness.SOURCE_DIR, "conf", "prometheus")
RULES = os.path.join(PROM_DIR, "hookq-rules.yml")
# The day-long cases are evaluated every 15 minutes (their own file): every minute would take 20 s.
RULES_TESTS = [os.path.join(PROM_DIR, f) for f in ("hookq-rules.test.yml",
                                                     "hookq-rules.daily.test.yml")]
DASHBOARD = os.path.join(harness.SOURCE_DIR, "conf", "grafana", "hookq-dashboard.json")
RUNBOOKS = os.path.join(harness.SOURCE_DIR, "docs", "runbooks.md")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# Grafana's own variables, replaced by what Grafana would put there.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                "$source": ".*", "$route": ".*", "$queue": ".*"}
# Metrics that come from Prometheus itself, not from hookq.
PROMETHEUS_OWN = {"up"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
             "offset", "bool", "inf", "nan"}


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def load_rules():
    with open(RULES) as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                exprs.append((p["title"], t["expr"]))
    walk(dash["panels"])
    return dash, exprs


def grafana_to_promql(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def metric_names(expr):
    """The metric names an expression selects: identifiers left once strings, label matchers,
    ranges, grouping clauses, function calls and keywords are taken out."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        word = m.group(0)
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_metric_names_parser():
    # The extraction the name checks below rely on: functions, labels, by(), ranges are not names.
    got = metric_names('sum by (route, le) (rate(hookq_x_bucket{route=~"a|b", le!="1"}[5m])) '
                       '/ on (route) group_left(x) hookq:y:rate5m offset 1h > bool 0 '
                       'unless up{job="hookq-worker"} == 0')
    assert got == {"hookq_x_bucket", "hookq:y:rate5m", "up"}


def test_promtool_check_and_unit_tests():
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", *map(os.path.basename, RULES_TESTS), cwd=PROM_DIR)
    assert r.returncode == 0 and r.stdout.count("SUCCESS") == len(RULES_TESTS), r.stdout + r.stderr


def test_every_alert_is_tested_firing_and_quiet():
    alerts = {r["alert"] for r in load_rules() if "alert" in r}
    tests = []
    for path in RULES_TESTS:
        with open(path) as f:
            tests += yaml.safe_load(f)["tests"]
    fired, quiet = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
            for a in case.get("exp_alerts") or []:
                # Exact expectations: every annotation, not only the labels.
                assert set(a["exp_annotations"]) == {"summary", "description", "runbook_url"}, a
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"
    assert (fired | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_alerts_have_severity_annotations_and_runbook_sections():
    with open(RUNBOOKS) as f:
        headings = {anchor(m.group(1)) for m in re.finditer(r"^#{2,3} (.+)$", f.read(), re.M)}
    assert {"payment-webhooks-failing", "destination-down-breaker-open", "queue-backlog",
            "provider-gone-silent", "signature-failures", "webhook-loop", "redis-down",
            "postgresql-down", "dead-letters-growing", "poison-elements"} <= headings
    for r in load_rules():
        if "record" in r:
            assert re.fullmatch(r"hookq:[a-z0-9_]+:[a-z0-9_]+", r["record"]), r["record"]
            continue
        assert r["labels"]["severity"] in ("P0", "P1", "P2", "P3"), r["alert"]
        ann = r["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(ann), r["alert"]
        page, _, section = ann["runbook_url"].partition("#")
        assert page == "docs/runbooks.md" and section in headings, (r["alert"], section)


def test_dashboard_is_valid_and_every_expression_parses(tmp_path):
    dash, exprs = dashboard_exprs()
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert {"source", "route", "queue"} <= set(variables)
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            walk(p.get("panels", []))
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p
    walk(dash["panels"])
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Edge", "Delivery", "Queues", "Breakers", "Dead letters", "Recorder", "Worker"]
    assert len(exprs) > 30
    # promtool checks no bare expression: each one becomes a recording rule it must parse.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}:check", "expr": grafana_to_promql(e)}
        for i, (_, e) in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0 and f"SUCCESS: {len(exprs)} rules" in r.stdout, r.stdout + r.stderr
    # And a broken one is refused, so the check above can fail.
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y:z", "expr": "sum by (route (rate(hookq_worker_attempts_total[5m]))"}]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def declared_families(text):
    """Names a scrape declares (# TYPE lines), histograms expanded to their three series."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        name, kind = m.groups()
        names |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return names


def sample_labels(text):
    """{metric name: label names its samples carry}, from a scrape."""
    labels = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        if m:
            names = set(re.findall(r'(\w+)="', m.group(2) or ""))
            labels.setdefault(m.group(1), set()).update(names)
    return labels


def label_uses(expr):
    """(labels in selectors {metric: {label}}, labels in by/on/without/ignoring clauses)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    selectors = {}
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", e):
        selectors.setdefault(m.group(1), set()).update(
            re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2)))
    grouping = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        grouping.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return selectors, grouping


def all_exprs():
    out = [(r.get("alert") or r.get("record"), r["expr"]) for r in load_rules()]
    _, exprs = dashboard_exprs()
    return out + [(f"dashboard: {t}", grafana_to_promql(e)) for t, e in exprs]


def test_label_uses_parser():
    sel, grp = label_uses('sum by (route, le) (rate(hookq_x_bucket{route=~"a|b", le!="1"}[5m])) '
                          '/ on (route) group_left(x) up{job="hookq-worker"}')
    assert sel == {"hookq_x_bucket": {"route", "le"}, "up": {"job"}}
    assert grp == {"route", "le", "x"}


def used_names():
    """{metric name: [where]} over the rules' expressions and the dashboard's."""
    used = {}
    for r in load_rules():
        for n in metric_names(r["expr"]):
            used.setdefault(n, []).append(r.get("alert") or r.get("record"))
    dash, exprs = dashboard_exprs()
    for title, e in exprs:
        for n in metric_names(grafana_to_promql(e)):
            used.setdefault(n, []).append(f"dashboard: {title}")
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", v["definition"])
            assert m, v["definition"]
            used.setdefault(m.group(1), []).append(f"dashboard variable {v['name']}")
    return used


def test_every_metric_name_exists_in_a_real_scrape(redis_server, pg_migrated, sink, workers,
                                                   tmp_path):
    port = harness.free_port()
    routes = route("st", "stripe", sink.url("/st")) + route("gh", "github", sink.url("/gh"))
    cfg = admin_config(redis_server, pg_migrated, routes, tmp_path, port)
    listen = f'listen = "127.0.0.1:{port}"\n'
    assert listen in cfg
    workers(cfg.replace(listen, listen + 'metrics_refresh = "200ms"\n'))
    api = Api(port)
    wait_until(lambda: _alive(api), 15, what="admin API listening")

    # A dead letter (github's 400) and a failing destination (stripe's 500s, a breaker record), so
    # the labelled gauges have series whose labels the expressions can be checked against.
    sink.set("/gh", "400")
    sink.set("/st", "500")
    r = redis_server.client()
    for source in ("github", "stripe"):
        r.lpush(f"hookq:{{{source}}}:queue", envelope.make(source)[1])

    def snapshot_scrape():
        resp = api.get("/metrics", VIEWER)
        ok = resp.status_code == 200 and "\nhookq_snapshot_success 1\n" in resp.text
        ok = ok and '\nhookq_dead_letters{source="github"} 1\n' in resp.text
        return resp.text if ok and "\nhookq_breaker_state{" in resp.text else None
    worker_text = wait_until(snapshot_scrape, 20, what="a scrape with a dead letter and a breaker")

    nginx = harness.Nginx("""
    hookq_redis {redis};
    server {
        listen 127.0.0.1:{port};
        location = /hooks/stripe { hookq none; hookq_source stripe; }
        location = /hookq/status { hookq_status; }
    }
""", redis_port=redis_server.port)
    try:
        status, _, body = edge.post(nginx.port, "/hookq/status", method="GET")
        assert status == 200
        edge_text = body.decode()
    finally:
        nginx.close()

    worker_names, edge_names = declared_families(worker_text), declared_families(edge_text)
    assert "hookq_worker_attempt_duration_seconds_bucket" in worker_names
    assert "hookq_breaker_state" in worker_names and "hookq_queue_depth" in worker_names
    assert "hookq_edge_latency_seconds_bucket" in edge_names
    with open(RULES) as f:
        recorded = {r["record"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]
                    if "record" in r}
    known = worker_names | edge_names | PROMETHEUS_OWN | recorded
    used = used_names()
    missing = {n: where for n, where in used.items() if n not in known}
    assert not missing, f"metric names no scrape declares: {missing}"
    # The dashboard stands alone: it works without the recording rules loaded.
    _, exprs = dashboard_exprs()
    assert not [e for _, e in exprs if ":" in " ".join(metric_names(grafana_to_promql(e)))]

    # Labels: every matcher and grouping label exists on the series (job and instance come from
    # Prometheus, le from histograms, recorded series carry their rule's by() labels).
    have = sample_labels(worker_text)
    for name, lbls in sample_labels(edge_text).items():
        have.setdefault(name, set()).update(lbls)
    have["up"] = set()
    for r in load_rules():
        if "record" in r:
            have[r["record"]] = label_uses(r["expr"])[1] - {"le"}
    wrong = []
    for where, expr in all_exprs():
        selectors, grouping = label_uses(expr)
        names = metric_names(expr)
        assert all(n in have for n in names), (where, names - set(have))
        for name, lbls in selectors.items():
            extra = lbls - have[name] - {"job", "instance"}
            if extra:
                wrong.append((where, name, extra))
        possible = set().union(*(have[n] for n in names)) | {"job", "instance", "le"}
        if grouping - possible:
            wrong.append((where, sorted(names), grouping - possible))
    assert not wrong, f"labels the metrics do not have: {wrong}"
