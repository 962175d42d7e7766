#!/usr/bin/env python3
"""A design measurement, not what the module sends: Redis's CPU per webhook for the batch script
the edge uses (kIngestBatch, envelopes handed to Lua as arguments) against a prototype that keeps
the envelopes out of Lua, because Redis's Lua hashes every byte of every string it is handed.

The prototype (guarded_ingest.lua) runs in one MULTI/EXEC:
    EVALSHA guarded '<' ...     renames the queue to a stage key (or makes the stage, if none)
    LPUSHX stage env1..envN     plain LPUSH: the envelopes never enter Lua; a no-op unless '<' ran
    EVALSHA guarded '>' ...     dedup and depth checks, refused envelopes taken out, stage renamed
                                back to the queue
Both calls are one script, so after a SCRIPT FLUSH neither runs and nothing is pushed.

    ENVELOPE_BYTES=16384 SIZES="1 6" python3 bench/edge/prototype/outside_lua.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from redis_cost import N, REPEAT, SIZE, SRC, Redis, envelope, script_texts  # noqa: E402

_, BATCH = script_texts(SRC)
GUARDED = open(os.path.join(HERE, "guarded_ingest.lua")).read()
SIZES = [int(x) for x in os.environ.get("SIZES", "1 6 32").split()]
Q, STAGE = "hookq:{q}:queue", "hookq:{q}:stage"


def main():
    with Redis() as server:
        c, cpu = server.client, server.cpu
        for name in ("LPUSHX", "EVALSHA", "EXEC", "MULTI"):
            c.response_callbacks.pop(name, None)
        env = envelope(SIZE)
        sha_batch, sha_guarded = c.script_load(BATCH), c.script_load(GUARDED)

        def run(kind, per):
            c.flushall()
            t0 = cpu()
            p = c.pipeline(transaction=False)
            i = calls = 0
            while i < N:
                n = min(per, N - i)
                dedup = [f"hookq:{{q}}:dedup:k{i + j}" for j in range(n)]
                rids = [f"rid-{i + j}" for j in range(n)]
                if kind == "batch":
                    args = [n, 0, 86400]
                    for rid in rids:
                        args += [rid, env]
                    p.evalsha(sha_batch, 1 + n, Q, *dedup, *args)
                else:
                    keys, args = [Q, STAGE, *dedup], [n, 0, 86400, *rids]
                    p.execute_command("MULTI")
                    p.evalsha(sha_guarded, len(keys), *keys, "<", *args)
                    p.execute_command("LPUSHX", STAGE, *([env] * n))
                    p.evalsha(sha_guarded, len(keys), *keys, ">", *args)
                    p.execute_command("EXEC")
                i += n
                calls += 1
                if calls % 32 == 0:
                    p.execute()
            p.execute()
            assert c.llen(Q) == N and not c.exists(STAGE)
            return (cpu() - t0) / 1000 / N

        print(f"Redis CPU us per webhook, envelopes of {SIZE} bytes, {N} per case (least of {REPEAT})")
        print(f"{'per call':>8s} {'batch script':>13s} {'outside Lua':>12s}")
        for per in SIZES:
            b = min(run("batch", per) for _ in range(REPEAT))
            g = min(run("guarded", per) for _ in range(REPEAT))
            print(f"{per:8d} {b:13.2f} {g:12.2f}")


if __name__ == "__main__":
    main()
