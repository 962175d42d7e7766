#!/usr/bin/env python3
"""The recorder's batch insert as it is (INSERT ... SELECT * FROM unnest(arrays) ON CONFLICT, one
prepared statement per table) against COPY into a temporary staging table followed by INSERT ...
SELECT FROM staging ON CONFLICT (the only way COPY can upsert), and, for delivery_attempts (which
the recorder inserts without ON CONFLICT), COPY straight into the table.

Same run, same rows shape, methods interleaved round by round (order alternating), tables
truncated before each round so every method writes into equally empty tables; medians.
Per row: wall time of the client's transaction (BEGIN .. COMMIT, as the recorder commits each
batch) and CPU time of the PostgreSQL backend serving it (utime+stime from /proc).

Both methods send text here (psycopg2): unnest's arrays go as array literals (array_in), COPY as
COPY text. The worker sends its arrays in binary (array_recv), which parses cheaper than text; so
this measures unnest at a small disadvantage, which only matters if COPY does not win anyway.

  /usr/bin/python3 bench/recorder/copy_vs_unnest.py [--batch 256] [--batches 40] [--rounds 5]
"""

import argparse
import glob
import io
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/integration"))
import harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")

EV_COLS = ("id, received_at, source, dedup_key, event_type, method, path, remote_addr, headers, "
           "body, status, attempts, delivered_at, last_error")
EV_TYPES = ("uuid", "timestamptz", "text", "text", "text", "text", "text", "text", "jsonb",
            "bytea", "text", "bigint", "timestamptz", "text")
# The recorder's ON CONFLICT clause for webhook_events (worker/store/sql.cc, event_inserts).
EV_CONFLICT = ("ON CONFLICT (received_at, id) DO UPDATE SET status = EXCLUDED.status, "
               "event_type = COALESCE(EXCLUDED.event_type, webhook_events.event_type), "
               "attempts = GREATEST(webhook_events.attempts, EXCLUDED.attempts), "
               "delivered_at = COALESCE(EXCLUDED.delivered_at, webhook_events.delivered_at), "
               "last_error = COALESCE(EXCLUDED.last_error, webhook_events.last_error), "
               "updated_at = now()")
AT_COLS = ("event_id, route, url, attempt, started_at, duration_ms, http_status, outcome, error, "
           "worker_id")
AT_TYPES = ("uuid", "text", "text", "bigint", "timestamptz", "double precision", "bigint", "text",
            "text", "text")

HEADERS = ('{"content-type": "application/json", "x-github-event": "push", '
           '"x-github-delivery": "%s", "user-agent": "GitHub-Hookshot/abc"}')
BODY_HEX = "\\\\x" + (b'{"ref":"refs/heads/main","pad":"' + b"x" * 950 + b'"}').hex()


def rows(n):
    """n (event, attempt) rows shaped like a delivered 1 KB GitHub webhook."""
    now = time.time()
    ev, at = [], []
    for i in range(n):
        rid = str(uuid.uuid4())
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{i:06d}+00"
        ev.append((rid, ts, "github", rid, "push", "POST", "/hooks/github", "127.0.0.1",
                   HEADERS % rid, BODY_HEX, "delivered", "1", ts, None))
        at.append((rid, "app", "http://127.0.0.1:8080/webhooks/github", "1", ts, "0.412", "204",
                   "delivered", None, "bench"))
    return ev, at


def copy_text(rs):
    out = io.StringIO()
    for r in rs:
        out.write("\t".join("\\N" if v is None else v for v in r))
        out.write("\n")
    out.seek(0)
    return out


def array_literal(values):
    parts = []
    for v in values:
        if v is None:
            parts.append("NULL")
        else:
            # bytea's hex text in COPY form carries a doubled backslash; an array element is
            # quoted, where the backslash is escaped once more.
            parts.append('"' + v.replace("\\\\", "\\").replace("\\", "\\\\")
                         .replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def columns(rs):
    return [array_literal([r[c] for r in rs]) for c in range(len(rs[0]))]


class Session:
    def __init__(self, pg):
        self.conn = pg.connect()
        self.cur = self.conn.cursor()
        self.cur.execute("SET synchronous_commit = on")  # the worker's session setting
        self.cur.execute("SELECT pg_backend_pid()")
        self.pid = self.cur.fetchone()[0]
        n = len(EV_TYPES)
        self.cur.execute(
            f"PREPARE ev_unnest({', '.join(t + '[]' for t in EV_TYPES)}) AS "
            f"INSERT INTO webhook_events ({EV_COLS}) SELECT * FROM unnest("
            f"{', '.join(f'${i + 1}' for i in range(n))}) {EV_CONFLICT}")
        m = len(AT_TYPES)
        self.cur.execute(
            f"PREPARE at_unnest({', '.join(t + '[]' for t in AT_TYPES)}) AS "
            f"INSERT INTO delivery_attempts ({AT_COLS}) SELECT * FROM unnest("
            f"{', '.join(f'${i + 1}' for i in range(m))})")
        # The arrays' parsing alone: what binary arrays (the worker's) would save at most.
        self.cur.execute(
            f"PREPARE ev_parse({', '.join(t + '[]' for t in EV_TYPES)}) AS SELECT count(*) FROM "
            f"unnest({', '.join(f'${i + 1}' for i in range(n))})")
        self.cur.execute(
            f"PREPARE at_parse({', '.join(t + '[]' for t in AT_TYPES)}) AS SELECT count(*) FROM "
            f"unnest({', '.join(f'${i + 1}' for i in range(m))})")
        self.cur.execute(
            f"CREATE TEMP TABLE ev_stage ({', '.join(f'{c} {t}' for c, t in zip(EV_COLS.split(', '), EV_TYPES))}) "
            "ON COMMIT DELETE ROWS")
        self.cur.execute(
            f"CREATE TEMP TABLE at_stage ({', '.join(f'{c} {t}' for c, t in zip(AT_COLS.split(', '), AT_TYPES))}) "
            "ON COMMIT DELETE ROWS")
        self.cur.execute(f"PREPARE ev_from_stage AS INSERT INTO webhook_events ({EV_COLS}) "
                         f"SELECT * FROM ev_stage {EV_CONFLICT}")
        self.cur.execute(f"PREPARE at_from_stage AS INSERT INTO delivery_attempts ({AT_COLS}) "
                         "SELECT * FROM at_stage")
        self.ev_params = ", ".join(["%s"] * n)
        self.at_params = ", ".join(["%s"] * m)

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def prepare(self, method, ev, at):
        """The client's side of a batch, done before the clock starts."""
        if method.startswith("unnest"):
            pre = ("ev_parse", "at_parse") if "parse" in method else ("ev_unnest", "at_unnest")
            return (self.cur.mogrify(f"EXECUTE {pre[0]}({self.ev_params})", columns(ev)),
                    self.cur.mogrify(f"EXECUTE {pre[1]}({self.at_params})", columns(at)))
        if method == "unnest":
            return (self.cur.mogrify(f"EXECUTE ev_unnest({self.ev_params})", columns(ev)),
                    self.cur.mogrify(f"EXECUTE at_unnest({self.at_params})", columns(at)))
        return copy_text(ev).getvalue(), copy_text(at).getvalue()

    def batch(self, method, a, b):
        c = self.cur
        c.execute("BEGIN")
        if method.startswith("unnest"):
            c.execute(a)
            c.execute(b)
        elif method == "copy+stage":
            c.copy_expert("COPY ev_stage FROM STDIN", io.StringIO(a))
            c.execute("EXECUTE ev_from_stage")
            c.copy_expert("COPY at_stage FROM STDIN", io.StringIO(b))
            c.execute("EXECUTE at_from_stage")
        elif method == "copy+stage, attempts direct":
            c.copy_expert("COPY ev_stage FROM STDIN", io.StringIO(a))
            c.execute("EXECUTE ev_from_stage")
            c.copy_expert(f"COPY delivery_attempts ({AT_COLS}) FROM STDIN", io.StringIO(b))
        c.execute("COMMIT")


METHODS = ("unnest", "copy+stage", "copy+stage, attempts direct", "unnest, arrays parsed only")


def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256, help="rows per batch (per table)")
    ap.add_argument("--batches", type=int, default=40, help="batches per method and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--libpq", action="store_true",
                    help="also the binary forms (as the worker sends): copy_vs_unnest.cc, "
                         "compiled with g++ -lpq, binary arrays vs COPY (FORMAT binary)")
    args = ap.parse_args()

    pg = harness.Postgres()
    try:
        conn = pg.connect()
        with conn.cursor() as cur:
            for path in sorted(glob.glob(os.path.join(HERE, "../../migrations/*.sql"))):
                with open(path) as f:
                    cur.execute(f.read())
        s = Session(pg)
        # Client-side preparation (row text, array literals) is outside the timed part: only the
        # server's work and the wire count.
        data = {m: [s.prepare(m, *rows(args.batch)) for _ in range(args.batches)]
                for m in METHODS}
        res = {m: {"wall": [], "cpu": []} for m in METHODS}
        n = args.batch * args.batches
        print(f"# {args.rounds} rounds x {args.batches} batches x {args.batch} rows per table "
              f"(webhook_events + delivery_attempts), cores={os.cpu_count()}, "
              f"load {open('/proc/loadavg').read().split()[:3]}")
        for rnd in range(args.rounds):
            order = METHODS if rnd % 2 == 0 else METHODS[::-1]
            for m in order:
                with conn.cursor() as cur:
                    cur.execute("TRUNCATE webhook_events, delivery_attempts")
                    cur.execute("CHECKPOINT")
                c0, t0 = s.cpu(), time.perf_counter()
                for a, b in data[m]:
                    s.batch(m, a, b)
                wall, cpu = time.perf_counter() - t0, s.cpu() - c0
                with conn.cursor() as cur:
                    cur.execute("SELECT (SELECT count(*) FROM webhook_events), "
                                "(SELECT count(*) FROM delivery_attempts)")
                    want = (0, 0) if "parse" in m else (n, n)
                    assert cur.fetchone() == want, f"{m}: rows missing"
                res[m]["wall"].append(wall / n * 1e6)
                res[m]["cpu"].append(cpu / n * 1e6)
                print(f"  round {rnd + 1} {m:<28} wall {wall / n * 1e6:6.1f} us/row  backend CPU "
                      f"{cpu / n * 1e6:6.1f} us/row", flush=True)
        if args.libpq:
            import re
            import subprocess
            import tempfile
            exe = os.path.join(tempfile.mkdtemp(prefix="hookq-rec-"), "copy_vs_unnest")
            subprocess.run(["g++", "-O2", "-std=c++20", "-I/usr/include/postgresql", "-o", exe,
                            os.path.join(HERE, "copy_vs_unnest.cc"), "-lpq"], check=True)
            out = subprocess.run([exe, pg.dsn, str(args.batch), str(args.batches),
                                  str(args.rounds)], check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            print(out, end="")
            for m, w, c in re.findall(r"round \d+ (.+?)\s+wall\s+([\d.]+) us/row\s+backend CPU"
                                      r"\s+([\d.]+)", out):
                res.setdefault("libpq: " + m, {"wall": [], "cpu": []})
                res["libpq: " + m]["wall"].append(float(w))
                res["libpq: " + m]["cpu"].append(float(c))
        print(f"\nmedian of {args.rounds}; a 'row' is one webhook_events row plus one "
              f"delivery_attempts row, batches of {args.batch}")
        print(f"{'method':<43} {'wall us/row':>12} {'PG CPU us/row':>14}")
        for m in res:
            print(f"{m:<43} {median(res[m]['wall']):>12.1f} {median(res[m]['cpu']):>14.1f}")
    finally:
        pg.close()


if __name__ == "__main__":
    main()
