#!/usr/bin/env python3
"""What Redis holds per webhook: the queued envelope, and the dedup key that stays behind for
hookq_dedup_ttl (72 h by default) after the worker took the envelope. The dedup keys, not the
queue, are what sizes Redis's memory: at a steady rate there are rate x TTL of them.

    python3 bench/edge/redis_memory.py [shared/redis_keys.h]

Starts its own redis-server (no persistence) on a free loopback port and writes N webhooks (N
env, 200000) through the edge's own ingest script (kIngest, read from shared/redis_keys.h), with
the arguments the edge sends for GitHub: dedup key "hookq:{github}:dedup:" + a 36-character
X-GitHub-Delivery, the request id as 36 characters of text, an envelope of ENVELOPE_BYTES (1300:
a 1 KB body). used_memory (INFO memory) is read before, after the writes (envelope + dedup key
per webhook), and after the queue is deleted as the worker would have taken it (dedup key
alone). Then prints the memory the dedup keys take at a few steady rates and TTLs.
"""

import os
import sys
import uuid

from redis_cost import Redis, envelope, script_texts

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../shared/redis_keys.h")
N = int(os.environ.get("N", "200000"))
SIZE = int(os.environ.get("ENVELOPE_BYTES", "1300"))
TTL = 72 * 3600


def main():
    single = script_texts(SRC)[0]
    with Redis() as server:
        c = server.client
        sha = c.script_load(single)
        env = envelope(SIZE)
        queue = "hookq:{github}:queue"
        mem = lambda: c.info("memory")["used_memory"]
        base = mem()
        p = c.pipeline(transaction=False)
        for i in range(N):
            p.evalsha(sha, 2, queue, f"hookq:{{github}}:dedup:{uuid.uuid4()}", "0", str(TTL),
                      str(uuid.uuid4()), env)
            if len(p) >= 1000:
                assert all(r[0] == 1 for r in p.execute())
        assert all(r[0] == 1 for r in p.execute())
        assert c.llen(queue) == N and c.dbsize() == N + 1
        queued = mem()
        c.delete(queue)
        kept = mem()
        info = c.info("server")
        per_queued = (queued - base) / N
        per_key = (kept - base) / N
        print(f"redis {info['redis_version']}, {N} webhooks, envelope {SIZE} bytes, dedup TTL "
              f"{TTL // 3600} h")
        print(f"  queued (envelope + dedup key)  {per_queued:8.0f} bytes per webhook")
        print(f"  delivered (dedup key alone)    {per_key:8.0f} bytes per webhook")
        print("dedup keys alone at a steady rate (rate x TTL x the figure above):")
        print(f"  {'webhooks/s':>10} " + " ".join(f"{h:>9} h" for h in (1, 24, 72)))
        for rate in (100, 1000, 10000, 100000):
            cells = []
            for hours in (1, 24, 72):
                gb = rate * hours * 3600 * per_key / 1e9
                cells.append(f"{gb:8.1f} GB")
            print(f"  {rate:>10} " + "  ".join(cells))


if __name__ == "__main__":
    main()
