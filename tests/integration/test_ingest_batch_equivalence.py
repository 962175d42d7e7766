"""The batch scripts (group commit, shared/redis_keys.h) against kIngest, the one-webhook script, on a
real Redis: the same envelopes, in the same order, must get the same replies and leave the same
data, whether they go one call each or in batches. The batch runs kIngest's own text only for
envelopes with loop detection; for the rest it has its own inline path (a group per queue), and this
is what keeps the two from drifting apart. The guarded transaction (kIngestGuarded: the envelopes
pushed by LPUSHX, never handed to Lua) is held to the same, for envelopes without the loop part."""

import os
import random
import re

import pytest
import redis

import harness

SRC = open(os.path.join(harness.SOURCE_DIR, "shared/redis_keys.h")).read()


def lua(name):
    return re.search(r'inline constexpr char %s\[\] = R"lua\((.*?)\)lua";' % name, SRC,
                     re.S).group(1)


SINGLE = lua("kIngestText")
BATCH = re.search(r'kBatchHead\[\] = "(.*?)";', SRC).group(1) + SINGLE + lua("kBatchTail")
GUARDED = lua("kIngestGuardedText")


class Envelope:
    def __init__(self, n, queue, dedup, limit, loop=None):
        self.rid = f"{n:036d}"
        self.body = f"envelope {n} of {queue}".encode()
        self.keys = [f"hookq:{{{queue}}}:queue", f"hookq:{{{queue}}}:dedup:{dedup}"]
        self.args = [str(limit), "600", self.rid, self.body]
        self.loop = loop
        if loop is not None:
            entity, hold = loop
            self.keys += [f"hookq:{{{queue}}}:loop:{entity}", f"hookq:{{{queue}}}:loops",
                          f"hookq:{{{queue}}}:loop_keys", f"hookq:{{{queue}}}:held"]
            self.args += ["60000", "2", "1" if hold else "0", entity, f"key of {entity}"]


def envelopes(seed, count=400):
    rnd = random.Random(seed)
    out = []
    for n in range(count):
        q = rnd.choice(["a", "a", "a", "b", "c", "wrong", "loops"])
        limit = {"b": 7}.get(q, 0)
        loop = (rnd.choice(["x", "y"]), rnd.random() < 0.5) if q == "loops" else None
        # A small pool of dedup values: duplicates, within a batch and across batches.
        out.append(Envelope(n, q, rnd.randrange(60), limit, loop))
    return out


def normal(reply):
    """Replies as comparable values; an error (raised, or the batch's {-3, msg}) is just 'error'."""
    if isinstance(reply, Exception):
        return "error"
    if isinstance(reply, list):
        if reply and reply[0] == -3:
            return "error"
        return [normal(x) for x in reply]
    return reply


def state(c):
    out = {}
    for key in c.scan_iter(count=1000):
        kind = c.type(key)
        value = {b"list": lambda: c.lrange(key, 0, -1),
                 b"string": lambda: c.get(key),
                 b"zset": lambda: c.zrange(key, 0, -1, withscores=True),
                 b"hash": lambda: c.hgetall(key)}[kind]()
        out[key] = (kind, value, c.pttl(key) > 0)
    return out


def one_by_one(c, envs):
    sha = c.script_load(SINGLE)
    replies = []
    for e in envs:
        try:
            replies.append(c.evalsha(sha, len(e.keys), *e.keys, *e.args))
        except redis.ResponseError as err:
            replies.append(err)
    return replies


def batch_call(envs):
    """The script's arguments as the edge builds them (ngx_module/redis_link.cc, send_batch)."""
    keys, args, i = [], [], 0
    while i < len(envs):
        e = envs[i]
        if e.loop is not None:
            keys += e.keys
            args += ["L"] + e.args
            i += 1
            continue
        j = i
        while (j < len(envs) and envs[j].loop is None and envs[j].keys[0] == e.keys[0] and
               envs[j].args[:2] == e.args[:2]):
            j += 1
        keys.append(e.keys[0])
        args += [str(j - i)] + e.args[:2]
        for g in envs[i:j]:
            keys.append(g.keys[1])
            args += g.args[2:]
        i = j
    return keys, args


def batched(c, envs, rnd):
    sha = c.script_load(BATCH)
    replies, i = [], 0
    while i < len(envs):
        size = rnd.choice([1, 2, 3, 6, 17, 40])
        part = envs[i:i + size]
        keys, args = batch_call(part)
        try:
            got = c.evalsha(sha, len(keys), *keys, *args)
            assert len(got) == len(part)
            replies += got
        except redis.ResponseError as err:
            replies += [err] * len(part)
        i += size
    return replies


def guarded_call(envs):
    """The transaction as the edge sends it (ngx_module/redis_link.cc, send_guarded): the KEYS and
    ARGV of both script calls, and each group's stage key with its envelopes for LPUSHX."""
    keys, args, pushes, i = [], ["<"], [], 0
    while i < len(envs):
        e = envs[i]
        j = i
        while j < len(envs) and envs[j].keys[0] == e.keys[0] and envs[j].args[:2] == e.args[:2]:
            j += 1
        stage = e.keys[0].replace(":queue", ":stage")
        keys += [e.keys[0], stage] + [g.keys[1] for g in envs[i:j]]
        args += [str(j - i)] + e.args[:2] + [g.args[2] for g in envs[i:j]]
        pushes.append([stage] + [g.args[3] for g in envs[i:j]])
        i = j
    return keys, args, pushes


def guarded_exec(c, sha, part):
    for name in ("MULTI", "EVALSHA", "LPUSHX", "EXEC"):  # replies as they come (QUEUED, arrays)
        c.response_callbacks.pop(name, None)
    keys, args, pushes = guarded_call(part)
    p = c.pipeline(transaction=False)
    p.execute_command("MULTI")
    p.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    for push in pushes:
        p.execute_command("LPUSHX", *push)
    p.execute_command("EVALSHA", sha, len(keys), *keys, ">", *args[1:])
    p.execute_command("EXEC")
    return p.execute(raise_on_error=False)[-1]


def guarded(c, envs, rnd):
    sha = c.script_load(GUARDED)
    replies, i = [], 0
    while i < len(envs):
        size = rnd.choice([1, 2, 3, 6, 17, 40])
        part = envs[i:i + size]
        got = guarded_exec(c, sha, part)
        if isinstance(got, Exception):
            replies += [got] * len(part)
        else:
            assert len(got) == 3 + len(guarded_call(part)[2]) - 1, got
            assert got[0] == 0, got
            assert len(got[-1]) == len(part)
            replies += got[-1]
        i += size
    return replies


RUNNERS = {"batch script": (batched, lambda e: True),
           "guarded transaction": (guarded, lambda e: e.loop is None)}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("runner", RUNNERS)
def test_batches_answer_and_write_what_single_calls_do(redis_server, seed, runner):
    c = redis_server.client()
    run, takes = RUNNERS[runner]
    envs = [e for e in envelopes(seed) if takes(e)]

    def fresh():
        c.flushall()
        c.set("hookq:{wrong}:queue", "not a list")  # every envelope of it: -2

    fresh()
    want = [normal(r) for r in one_by_one(c, envs)]
    want_state = state(c)
    fresh()
    got = [normal(r) for r in run(c, envs, random.Random(seed))]
    got_state = state(c)

    kinds = {r[0] if isinstance(r, list) else r for r in want}
    assert {1, 0, -1, -2} <= kinds, kinds  # accepted, duplicate, over the limit, wrong type
    assert runner != "batch script" or any(
        isinstance(r, list) and r[0] == 1 and r[2] in (1, 2) for r in want), \
        "some envelopes counted or held by loop detection"
    for n, (w, g) in enumerate(zip(want, got)):
        assert w == g, (n, envs[n].keys, w, g)
    assert len(want) == len(got)
    assert got_state == want_state


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_refused_write_is_an_error_for_each_envelope_and_writes_nothing(redis_server, runner):
    c = redis_server.client()
    envs = [e for e in envelopes(4, 60) if e.loop is None and b"wrong" not in e.keys[0].encode()]
    c.flushall()
    c.config_set("maxmemory-policy", "noeviction")
    c.config_set("maxmemory", "1")  # every write refused (OOM)
    try:
        want = [normal(r) for r in one_by_one(c, envs)]
        got = [normal(r) for r in RUNNERS[runner][0](c, envs, random.Random(4))]
        assert want == ["error"] * len(envs)
        assert got == want
        assert c.dbsize() == 0
    finally:
        c.config_set("maxmemory", "0")


def test_a_guarded_transaction_without_its_script_pushes_nothing(redis_server):
    """After SCRIPT FLUSH both calls fail with NOSCRIPT: LPUSHX finds no stage, so the envelopes
    are not queued unchecked, and the queue is as it was."""
    c = redis_server.client()
    envs = [e for e in envelopes(5, 40) if e.loop is None and b"wrong" not in e.keys[0].encode()]
    c.flushall()
    c.lpush("hookq:{a}:queue", "older")
    sha = c.script_load(GUARDED)
    c.script_flush()
    got = guarded_exec(c, sha, envs)
    assert isinstance(got[0], Exception) and str(got[0]).startswith("No matching script"), got
    assert all(n == 0 for n in got[1:-1]), got
    assert isinstance(got[-1], Exception), got
    assert c.keys("*") == [b"hookq:{a}:queue"]
    assert c.lrange("hookq:{a}:queue", 0, -1) == [b"older"]


def test_a_stage_left_behind_is_taken_as_the_queue_never_deleted(redis_server):
    """Cannot happen (the second call cannot fail before its renames), but if a stage were left
    with the queue's webhooks in it, the next transaction goes on with it as the queue; with a
    queue of the wrong type, it leaves that stage as it found it."""
    c = redis_server.client()
    sha = c.script_load(GUARDED)
    c.flushall()
    c.rpush("hookq:{a}:stage", "left 1", "left 2")
    envs = [Envelope(n, "a", f"k{n}", 0) for n in range(3)]
    got = guarded_exec(c, sha, envs)
    assert [normal(r) for r in got[-1]] == [[1, 3, 0], [1, 4, 0], [1, 5, 0]]
    assert c.lrange("hookq:{a}:queue", 0, -1) == [e.body for e in reversed(envs)] + \
        [b"left 1", b"left 2"]
    assert not c.exists("hookq:{a}:stage")

    c.flushall()
    c.set("hookq:{a}:queue", "not a list")
    c.rpush("hookq:{a}:stage", "left 1", "left 2")
    got = guarded_exec(c, sha, envs)
    assert [normal(r) for r in got[-1]] == [[-2, b"string"]] * 3
    assert c.lrange("hookq:{a}:stage", 0, -1) == [b"left 1", b"left 2"]
    assert c.get("hookq:{a}:queue") == b"not a list" and c.keys("hookq:{a}:dedup:*") == []
