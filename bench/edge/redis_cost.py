#!/usr/bin/env python3
"""What Redis spends per webhook on the ingest, without nginx: the single script (kIngest) against
the batch script (kIngestBatch) and the guarded transaction (kIngestGuarded: MULTI, script,
LPUSHX of the envelopes, script, EXEC) at several batch sizes, and, as a floor, the same writes
without Lua (SET NX EX + LPUSH pipelined). The scripts are read from shared/redis_keys.h, so this
measures the text the module sends. "empty batch of N" sends the batch script's very arguments to a script
that only returns: what Redis spends reading the call and handing every key and envelope to Lua
(KEYS/ARGV), before any of the ingest runs.

    python3 bench/edge/redis_cost.py [shared/redis_keys.h]

Starts its own redis-server (--save '' --appendonly no) on a free loopback port. Per case: 20480
envelopes of ENVELOPE_BYTES (1300; fewer envelopes when larger, 256 MiB in all) with fresh dedup
keys, pipelined by redis-py; "cmd" is the ingest calls' usec
from INFO commandstats (wall time inside Redis, so it counts preemption on a busy machine), "cpu"
is redis-server's on-CPU time (/proc/PID/schedstat) over the case, per webhook, which also counts
reading and parsing the commands. Each case runs REPEAT (7) times; the run with the least CPU is
shown, as the one least disturbed by the rest of the machine.

Redis's Lua hashes every byte of every string it is handed (its copy of Lua hashes whole strings,
not samples of long ones), so an envelope passed as an argument costs Redis about 1 ns per byte
before the script does anything with it: compare ENVELOPE_BYTES=1300 with 16384. The guarded
transaction never hands the envelope to Lua; the edge uses it from kGuardedBytes of arguments per
turn (ngx_module/redis_link.h).
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../shared/redis_keys.h")
REPEAT = int(os.environ.get("REPEAT", "7"))
SIZE = int(os.environ.get("ENVELOPE_BYTES", "1300"))
N = max(256, min(20480, (256 << 20) // SIZE))
SIZES = [int(x) for x in os.environ.get("SIZES", "1 2 4 8 32 128 256").split()]


def script_texts(path):
    src = open(path).read()
    raw = lambda name: re.search(r'inline constexpr char %s\[\] = R"lua\((.*?)\)lua";' % name,
                                 src, re.S).group(1)
    head = re.search(r'kBatchHead\[\] = "(.*?)";', src).group(1)
    return (raw("kIngestText"), head + raw("kIngestText") + raw("kBatchTail"),
            raw("kIngestGuardedText"))


class Redis:
    """A redis-server of its own on a free loopback port, without persistence: .client, and .cpu()
    its on-CPU time in ns (/proc/PID/schedstat). Also used by prototype/outside_lua.py."""

    def __enter__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.tmp = tempfile.mkdtemp(prefix="hookq-redis-cost-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, "--logfile", os.path.join(self.tmp, "log")])
        self.client = redis.Redis(port=port)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.pid = self.client.info("server")["process_id"]
        return self

    def cpu(self):
        return int(open(f"/proc/{self.pid}/schedstat").read().split()[0])

    def __exit__(self, *_):
        self.proc.terminate()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.tmp])


def envelope(size):
    return os.urandom(size // 2 + 1).hex()[:size].encode()


def main():
    single, batch, guarded = script_texts(SRC)
    with Redis() as server:
        c, cpu = server.client, server.cpu
        for name in ("MULTI", "EVALSHA", "LPUSHX", "EXEC"):  # replies as they come (QUEUED)
            c.response_callbacks.pop(name, None)
        env = envelope(SIZE)
        empty = "return {}"

        def run(per_call, script):
            c.flushall()
            c.config_resetstat()
            t0 = cpu()
            p = c.pipeline(transaction=False)
            if script is None:  # the floor: the same writes, no Lua
                for i in range(N):
                    p.set(f"hookq:{{q}}:dedup:k{i}", f"rid-{i}", nx=True, ex=86400)
                    p.lpush("hookq:{q}:queue", env)
                    if len(p) >= 128:
                        p.execute()
                p.execute()
                return 0.0, 0.0, (cpu() - t0) / 1000 / N
            sha = c.script_load(script)
            i = 0
            while i < N:
                if script is single:
                    p.evalsha(sha, 2, "hookq:{q}:queue", f"hookq:{{q}}:dedup:k{i}", "0", "86400",
                              f"rid-{i}", env)
                    i += 1
                elif script is guarded:
                    # As ngx_module/redis_link.cc send_guarded sends one group.
                    m = min(per_call, N - i)
                    keys = ["hookq:{q}:queue", "hookq:{q}:stage"]
                    keys += [f"hookq:{{q}}:dedup:k{i + j}" for j in range(m)]
                    args = [str(m), "0", "86400"] + [f"rid-{i + j}" for j in range(m)]
                    p.execute_command("MULTI")
                    p.execute_command("EVALSHA", sha, len(keys), *keys, "<", *args)
                    p.execute_command("LPUSHX", "hookq:{q}:stage", *([env] * m))
                    p.execute_command("EVALSHA", sha, len(keys), *keys, ">", *args)
                    p.execute_command("EXEC")
                    i += m
                else:
                    # One group (shared/redis_keys.h): the queue, limit and ttl once, then each
                    # envelope's dedup key, request id and envelope, as the edge sends them.
                    m = min(per_call, N - i)
                    keys, args = ["hookq:{q}:queue"], [str(m), "0", "86400"]
                    for j in range(m):
                        keys.append(f"hookq:{{q}}:dedup:k{i + j}")
                        args += [f"rid-{i + j}", env]
                    p.evalsha(sha, len(keys), *keys, *args)
                    i += m
                if len(p) >= 64:
                    p.execute()
            p.execute()
            used = (cpu() - t0) / 1000 / N
            st = c.info("commandstats")
            assert c.llen("hookq:{q}:queue") == (0 if script is empty else N)
            if script is guarded:  # the transaction's usec: its commands' and EXEC's own
                assert not c.exists("hookq:{q}:stage")
                usec = sum(st[k]["usec"] for k in ("cmdstat_exec", "cmdstat_multi"))
                return usec / N, usec / st["cmdstat_exec"]["calls"], used
            st = st["cmdstat_evalsha"]
            return st["usec"] / N, st["usec_per_call"], used

        print(f"{'case':22s} {'cmd us/webhook':>15s} {'us/call':>10s} {'cpu us/webhook':>15s}")
        cases = [("kIngest (1 per call)", 1, single)]
        cases += [(f"batch of {n}", n, batch) for n in SIZES]
        cases += [(f"guarded of {n}", n, guarded) for n in [1] + SIZES]
        cases += [(f"empty batch of {n}", n, empty) for n in SIZES]
        cases += [("no Lua: SET+LPUSH", 1, None)]
        for label, per, script in cases:
            cmd, per_call, used = min((run(per, script) for _ in range(REPEAT)), key=lambda t: t[2])
            print(f"{label:22s} {cmd:15.2f} {per_call:10.2f} {used:15.2f}")
        print(f"envelopes of {SIZE} bytes, {N} per case; "
              f"redis {c.info('server')['redis_version']}; load {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
