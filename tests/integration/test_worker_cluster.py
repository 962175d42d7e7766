"""hookq-worker on a real Redis Cluster (three masters, three replicas on loopback): queues whose
{Q} slots live on different masters, a slot migrated while the worker runs (MOVED/ASK), and a
master killed under load with its replica promoted."""

import json
import subprocess
import threading
import time

import pytest
import redis

import envelope
import harness
from redis_cluster import RedisCluster, key_slot
from sink import Sink
from worker_fixtures import (config_text, event_status, route, wait_until, worker_env,
                             pg_migrated, sink, workers)  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)

    def replicas_synced():
        # cluster_state:ok comes before the replicas' first sync: WAIT would answer 0 until then.
        infos = [m.info("replication") for m in c.masters()]
        return all(i.get("connected_slaves", 0) >= 1 and
                   i.get("slave0", {}).get("state") == "online" for i in infos)

    try:
        wait_until(replicas_synced, 30, interval=0.1, what="replicas in sync")
    except Exception:
        c.close()
        raise
    yield c
    c.close()


def ctl(*args):
    r = subprocess.run([harness.CTL_PATH, *args], capture_output=True, text=True, env=worker_env())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


class _Addr:
    port = 0


def cfg(cluster, pg, sink, queues, per_queue_path=False):
    routes = "".join(route(f"r_{q}", q, sink.url(f"/in/{q}" if per_queue_path else "/in"))
                     for q in queues)
    text = config_text(_Addr(), pg, routes, worker_extra='queues = ["' + '", "'.join(queues) + '"]',
                       retry='initial = "100ms"\njitter = false',
                       breaker="failure_threshold = 1000")
    seeds = ", ".join(f'"{s}"' for s in cluster.seeds)
    text = text.replace('address = "127.0.0.1:0"', f"cluster = [{seeds}]", 1)
    assert "cluster = [" in text
    return text


def push(node, queue, count, wait_replicas=1):
    """LPUSHes straight to the master `node` (no redirection), then WAITs for the replica: the
    test's own writes survive a failover. Returns the request ids."""
    c = node.client()
    pipe = c.pipeline(transaction=False)
    ids = []
    for _ in range(count):
        rid, env = envelope.make(queue)
        ids.append(rid)
        pipe.lpush(f"hookq:{{{queue}}}:queue", env)
    pipe.execute()
    if wait_replicas:
        assert c.execute_command("WAIT", wait_replicas, 2000) >= wait_replicas
    return ids


def cluster_without_replicas():
    """Three masters and no replicas, whose other masters serve on when one is lost."""
    c = RedisCluster(masters=3, replicas=0, node_timeout_ms=1000)
    try:
        for m in c.masters():
            m.client().execute_command("CONFIG", "SET", "cluster-require-full-coverage", "no")
    except Exception:
        c.close()
        raise
    return c


def queues_on_and_off(c, master, prefix):
    """A queue that `master` serves, another that another master serves, and that master."""
    names = (f"{prefix}{i}" for i in range(10000))
    on = next(q for q in names if c.master_for_queue(q).port == master.port)
    off = next(q for q in names if c.master_for_queue(q).port != master.port)
    return on, off, c.master_for_queue(off)


def delivered_and_recorded(pg, sink, ids, timeout=30, path="/in"):
    wanted = set(ids)
    wait_until(lambda: wanted <= sink.ids(path), timeout, interval=0.2,
               what=f"{len(wanted)} ids delivered to the sink")

    def missing():
        st = event_status(pg)
        return [i for i in wanted if st.get(i) != "delivered"]

    wait_until(lambda: not missing(), timeout, interval=0.2, what="every id recorded")


def queue_lists(cluster, queue, worker_id="w1"):
    """Lengths of the queue's lists on the master that serves its slot, asked directly."""
    m = cluster.master_for_queue(queue).client()
    return {k: m.llen(f"hookq:{{{queue}}}:{k}") for k in
            ("queue", f"inflight:{worker_id}", f"claiming:{worker_id}")} | {
        "retry": m.zcard(f"hookq:{{{queue}}}:retry")}


def test_queues_on_three_masters(cluster, pg_migrated, sink, workers):
    """Three queues, each served by another master: every envelope is delivered once and recorded,
    and each queue's keys (queue, workers set, heartbeat) are on its own master and no other. A few
    first attempts fail on every queue, so the ack script (EVAL once, then EVALSHA, which the other
    masters do not know yet) writes retry records on each master; an undecodable element goes to
    the poison list with MULTI/EXEC in the same pipelined batches."""
    queues = cluster.queues_on_distinct_masters(3, "cq")
    owners = [cluster.master_for_queue(q) for q in queues]
    assert len({m.port for m in owners}) == 3
    ids = []
    for q, m in zip(queues, owners):
        ids += push(m, q, 150)
        assert m.client().llen(f"hookq:{{{q}}}:queue") == 150
        # The inflight list of a worker nobody registered: only the keyspace sweep (SCAN, which
        # must walk every master) finds it and gives it back to the queue.
        ghost = [envelope.make(q) for _ in range(5)]
        m.client().lpush(f"hookq:{{{q}}}:inflight:ghost", *[e for _, e in ghost])
        ids += [rid for rid, _ in ghost]
        sink.script(f"/in/{q}", ["500"] * 3)
    owners[2].client().lpush(f"hookq:{{{queues[2]}}}:queue", b"not an envelope")
    w = workers(cfg(cluster, pg_migrated, sink, queues, per_queue_path=True), start=False)
    # hookqctl reads the same keys, on each queue's master, through the same connection class.
    status = json.loads(ctl("--config", w.config_path, "status", "--json"))
    assert {s["queue"]: s["depth"] for s in status["queues"]} == {q: 150 for q in queues[:2]} | {
        queues[2]: 151}
    w.start()
    delivered_and_recorded(pg_migrated, sink, ids, path=None)
    got = [r.headers.get("x-request-id") for r in sink.received()]
    assert set(got) == set(ids)
    assert len(got) == len(ids) + 9, "each envelope delivered once, plus the 9 failed attempts"
    # The masters that had not seen the ack script refused its EVALSHA, and nothing failed.
    def noscript_count(m):
        v = m.info("errorstats").get("errorstat_NOSCRIPT", "count=0")
        return int(v["count"]) if isinstance(v, dict) else int(v.split("count=")[1].split(",")[0])

    noscript = sum(noscript_count(m) for m in owners)
    assert noscript >= 1
    assert not w.find("ack failed: recorded webhooks wait in inflight until Redis takes their ack")
    wait_until(lambda: owners[2].client().llen(f"hookq:{{{queues[2]}}}:poison") == 1, 10,
               what="the undecodable element in the poison list")
    for q, m in zip(queues, owners):
        wait_until(lambda: queue_lists(cluster, q) == {
            "queue": 0, "inflight:w1": 0, "claiming:w1": 0, "retry": 0}, 10,
            what=f"{q} emptied")
        own = m.client()
        assert own.sismember(f"hookq:{{{q}}}:workers", "w1")
        assert own.exists(f"hookq:{{{q}}}:heartbeat:w1")
        for other in owners:
            if other.port != m.port:
                # A master that does not own the slot refuses the key outright.
                with pytest.raises(redis.ResponseError, match="MOVED"):
                    other.client().exists(f"hookq:{{{q}}}:workers")
    assert w.proc.poll() is None
    assert w.stop() == 0


def test_slot_migrated_while_running(cluster, pg_migrated, sink, workers):
    """A queue's slot moves to another master while the worker claims from it: the worker follows
    the redirection and every envelope, before and after the move, is delivered and recorded."""
    queues = cluster.queues_on_distinct_masters(2, "mv")
    q = queues[0]
    slot = key_slot("{" + q + "}")
    source = cluster.master_for_queue(q)
    target = next(m for m in cluster.masters() if m.port != source.port)
    w = workers(cfg(cluster, pg_migrated, sink, queues))
    before = push(source, q, 100) + push(cluster.master_for_queue(queues[1]), queues[1], 50)
    delivered_and_recorded(pg_migrated, sink, before)
    more = push(source, q, 200)  # some still queued or inflight when the slot moves
    cluster.move_slot(slot, target)
    assert cluster.master_for_queue(q).port == target.port
    after = push(target, q, 100)
    delivered_and_recorded(pg_migrated, sink, more + after)
    wait_until(lambda: w.find("redis cluster redirections: slot map out of date"), 10,
               what="the worker saw MOVED")
    wait_until(lambda: queue_lists(cluster, q)["queue"] == 0, 10, what="queue drained")
    assert target.client().exists(f"hookq:{{{q}}}:workers")
    assert w.proc.poll() is None
    assert w.stop() == 0


def test_master_killed_under_load(cluster, pg_migrated, sink, workers):
    """Envelopes pushed steadily into three queues on three masters; one master is SIGKILLed and
    its replica takes over. The same worker process carries on: everything the test pushed and
    saw replicated (WAIT 1), and everything pushed to the promoted master after, is delivered and
    recorded, and nothing is left in any queue, inflight or retry list."""
    sink.set("/in", "sleep:2")  # deliveries take a little while: work is in flight at the kill
    queues = cluster.queues_on_distinct_masters(3, "fo")
    owner = {q: cluster.master_for_queue(q) for q in queues}
    victim_q = queues[1]
    victim = owner[victim_q]
    w = workers(cfg(cluster, pg_migrated, sink, queues))

    accepted, stop, after_failover = [], threading.Event(), threading.Event()
    errors = []

    def pusher():
        while not stop.is_set():
            for q in queues:
                try:
                    # After the failover the promoted master has no replica left to WAIT for.
                    ids = push(owner[q], q, 10,
                               wait_replicas=0 if after_failover.is_set() and q == victim_q else 1)
                    accepted.extend(ids)
                except (redis.RedisError, AssertionError, OSError) as e:
                    errors.append(repr(e))
                    try:
                        owner[q] = cluster.master_for_queue(q)
                    except Exception:
                        pass
                    time.sleep(0.05)
            time.sleep(0.02)

    t = threading.Thread(target=pusher, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(sink.ids("/in")) >= 200, 20, what="deliveries under way")
        cluster.kill(victim)
        cluster.wait_failover(timeout=30)
        promoted = cluster.master_for_queue(victim_q)
        assert promoted.port != victim.port
        after_failover.set()
        n = len(accepted)
        wait_until(lambda: len(accepted) >= n + 150, 20, what="pushes after the failover")
    finally:
        stop.set()
        t.join(10)
    assert errors, "the kill should have failed some pushes"
    delivered_and_recorded(pg_migrated, sink, accepted, timeout=45)
    for q in queues:
        wait_until(lambda: queue_lists(cluster, q) == {
            "queue": 0, "inflight:w1": 0, "claiming:w1": 0, "retry": 0}, 20,
            what=f"{q} emptied on its master")
    assert w.proc.poll() is None, "the worker recovered without a restart"
    down = [l for l in w.find("redis node unavailable") if l.get("node") == victim.address]
    assert down, "the lost master is named in a warning"
    assert w.stop() == 0


def test_a_lost_master_does_not_hold_up_the_other_queues(pg_migrated, sink, workers):
    """Three masters and no replicas (cluster-require-full-coverage no): one queue's master is
    SIGKILLed and nobody takes over its slots. The worker's claims on that queue go unanswered, and
    that must not stop it claiming and delivering the queue that lives on a master that is up.
    Once the lost master is back, its queue is claimed again without a restart."""
    c = cluster_without_replicas()
    try:
        # The lost master also holds the fleet-wide hookq:paused hash that the route stage reads
        # every second: calls to a master known to be down must fail at once, not wait out
        # [redis] timeout each, or every queue's deliveries crawl.
        lost = c.master_for_key("hookq:paused")
        lost_q, up_q, up = queues_on_and_off(c, lost, "lm")
        w = workers(cfg(c, pg_migrated, sink, [lost_q, up_q]))
        delivered_and_recorded(pg_migrated, sink, push(lost, lost_q, 5, wait_replicas=0) +
                               push(up, up_q, 5, wait_replicas=0))
        # Acked too: a lost master's queue with acks still to make holds up the recorder until
        # the master is back (its batch of acks is retried whole).
        wait_until(lambda: lost.client().llen(f"hookq:{{{lost_q}}}:inflight:w1") == 0, 10,
                   what="the lost queue's deliveries acked")

        c.kill(lost)
        wait_until(lambda: any(l.get("node") == lost.address
                               for l in w.find("redis node unavailable")), 20,
                   what="the worker to find the master lost")
        # Without the per-queue fence the first unanswered claim on the lost queue held every
        # queue's claims until that master came back: these were never delivered.
        delivered_and_recorded(pg_migrated, sink, push(up, up_q, 20, wait_replicas=0), timeout=20)

        lost.start()
        c.wait_ok()
        delivered_and_recorded(pg_migrated, sink, push(lost, lost_q, 5, wait_replicas=0),
                               timeout=30)
        assert w.proc.poll() is None
        assert w.stop() == 0
    finally:
        c.close()


def test_a_lost_master_with_acks_to_take_does_not_hold_up_the_recorder(pg_migrated, sink,
                                                                       workers):
    """A webhook of one queue is being delivered (a slow destination) when its master is
    SIGKILLed, with no replica to take over. Its row is committed, its ack cannot be taken, and
    that must not stop the recorder: the other queue's webhooks are recorded and acked meanwhile.
    Once the master is back the waiting ack goes through without a restart."""
    c = cluster_without_replicas()
    try:
        lost = c.masters()[0]
        lost_q, up_q, up = queues_on_and_off(c, lost, "la")
        sink.set(f"/in/{lost_q}", "sleep:3000")
        w = workers(cfg(c, pg_migrated, sink, [lost_q, up_q], per_queue_path=True))
        [slow] = push(lost, lost_q, 1, wait_replicas=0)
        wait_until(lambda: lost.client().llen(f"hookq:{{{lost_q}}}:inflight:w1") == 1, 10,
                   what="the slow webhook claimed")
        c.kill(lost)
        wait_until(lambda: event_status(pg_migrated).get(slow) == "delivered", 20,
                   what="the slow webhook recorded")

        # Before, the recorder retried the whole batch until the master was back: nothing of any
        # queue was recorded or acked after it.
        ids = push(up, up_q, 20, wait_replicas=0)
        delivered_and_recorded(pg_migrated, sink, ids, timeout=20, path=f"/in/{up_q}")
        wait_until(lambda: queue_lists(c, up_q)["inflight:w1"] == 0, 10,
                   what="the up queue's webhooks acked while the other master is lost")
        [failed] = w.find("ack failed: recorded webhooks wait in inflight until Redis takes "
                          "their ack")
        assert failed["queues"] == lost_q and failed["waiting"] == 1, failed
        assert not w.find("acks caught up: Redis took every waiting ack")

        # Back without its data (no persistence here): the ack goes through, and says that it
        # removed nothing, since the element it would remove went with the master's memory.
        lost.start()
        c.wait_ok()
        wait_until(lambda: w.find("acks caught up: Redis took every waiting ack"), 20,
                   what="the waiting ack taken")
        assert [l["request_id"] for l in w.find("ack removed nothing: the webhook left inflight "
                                                "before its outcome was recorded and may be "
                                                "delivered again")] == [slow]
        # Each webhook was delivered and recorded once.
        assert len(sink.received(f"/in/{lost_q}")) == 1
        assert w.proc.poll() is None
        assert w.stop() == 0
    finally:
        c.close()


def test_a_hung_master_does_not_hold_up_the_other_queues(pg_migrated, sink, workers):
    """A master that hangs (SIGSTOP: its port still accepts connections, nothing answers) costs
    the calls under way when it stops [redis] timeout, and then nothing: every stage's calls to it
    fail at once while the worker's prober, on its own thread, waits out the timeout of each probe.
    So the queue on a master that is up is delivered at its usual pace throughout, including while
    a probe is under way (before the prober, the stage whose call fell after the backoff was the
    probe and stood still for the timeout: the route stage, which reads the pauses every second,
    held up every queue). The outage is logged once per worker, not once per stage connection, and
    the queue is served again once the master resumes."""
    c = cluster_without_replicas()
    try:
        # The hung master holds hookq:paused too, which the route stage reads every second.
        hung = c.master_for_key("hookq:paused")
        hung_q, up_q, up = queues_on_and_off(c, hung, "hm")
        w = workers(cfg(c, pg_migrated, sink, [hung_q, up_q]))
        delivered_and_recorded(pg_migrated, sink, push(hung, hung_q, 5, wait_replicas=0) +
                               push(up, up_q, 5, wait_replicas=0))
        wait_until(lambda: hung.client().llen(f"hookq:{{{hung_q}}}:inflight:w1") == 0, 10,
                   what="the hung queue's deliveries acked")

        hung.pause()
        try:
            wait_until(lambda: any(l.get("node") == hung.address
                                   for l in w.find("redis node unavailable")), 20,
                       what="the worker to find the master hung")
            # The calls that were waiting on it when it stopped end within the 2 s timeout.
            time.sleep(2.5)
            # 9 s of pushes, 5 every half second: the hung node's backoff (1 s, 2 s, 4 s, ...
            # after each 2 s probe) puts at least one probe inside them.
            pushed_at, started = {}, time.monotonic()
            while time.monotonic() - started < 9:
                at = time.time()
                for rid in push(up, up_q, 5, wait_replicas=0):
                    pushed_at[rid] = at
                time.sleep(0.5)
            delivered_and_recorded(pg_migrated, sink, list(pushed_at), timeout=20)
            arrived = {r.headers.get("x-request-id"): r.at for r in sink.received()}
            lags = sorted(arrived[rid] - at for rid, at in pushed_at.items())
            down = [l for l in w.find("redis node unavailable") if l.get("node") == hung.address]
            assert len(down) == 1, down
        finally:
            hung.resume()
        print(f"{len(lags)} webhooks of the up queue, push to delivery: median "
              f"{lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")
        # Half the timeout: a probe's wait on the delivery path would show as up to 2 s.
        assert lags[-1] < 1.0, lags[-10:]
        c.wait_ok()
        delivered_and_recorded(pg_migrated, sink, push(hung, hung_q, 5, wait_replicas=0),
                               timeout=30)
        back = [l for l in w.find("redis node connected") if l.get("node") == hung.address]
        # Found back by the prober: no stage's call was the probe.
        assert [l.get("conn") for l in back] == ["prober"], back
        assert w.proc.poll() is None
        assert w.stop() == 0
    finally:
        c.close()


def test_a_worker_started_without_the_pauses_takes_them_from_the_audit_log(pg_migrated, sink,
                                                                          workers):
    """hookq:paused lives on one master. A worker that starts while that master hangs has no copy
    of the pauses to keep; rather than deliver what an operator paused, it takes them from the
    audit log, where every pause and resume is committed once Redis has it, until Redis answers."""
    c = cluster_without_replicas()
    try:
        lost = c.master_for_key("hookq:paused")
        _, up_q, up = queues_on_and_off(c, lost, "pa")
        # Its heartbeat key elsewhere too, or the worker could not start at all.
        wid = next(f"w{i}" for i in range(1, 1000)
                   if c.master_for_key(f"hookq:worker:w{i}").port != lost.port)
        text = cfg(c, pg_migrated, sink, [up_q]).replace('id = "w1"', f'id = "{wid}"', 1)
        assert f'id = "{wid}"' in text
        w = workers(text, start=False)
        route_name = f"r_{up_q}"
        ctl("--config", w.config_path, "pause", "route", route_name, "--reason", "migrating")
        parked = f"hookq:{{{up_q}}}:parked:paused:{route_name}"

        lost.pause()
        try:
            w.start()
            wait_until(lambda: w.find("cannot read the pauses from Redis: taken from the audit "
                                      "log until it answers"), 20, what="the audit log's pauses")
            [took] = w.find("cannot read the pauses from Redis: taken from the audit log until "
                            "it answers")
            assert took["paused"] == 1, took
            ids = push(up, up_q, 3, wait_replicas=0)
            wait_until(lambda: up.client().zcard(parked) == 3, 20,
                       what="the paused route's deliveries parked")
            assert not set(ids) & sink.ids(), "a paused route's webhook was delivered"
        finally:
            lost.resume()
        c.wait_ok()
        wait_until(lambda: w.find("pauses read from Redis again"), 20, what="Redis's pauses")
        assert not set(ids) & sink.ids()
        ctl("--config", w.config_path, "resume", "route", route_name)
        delivered_and_recorded(pg_migrated, sink, ids)
        assert up.client().zcard(parked) == 0
        assert w.proc.poll() is None
        assert w.stop() == 0
    finally:
        c.close()


def test_the_builtin_alerts_name_a_queue_whose_master_is_lost(pg_migrated, sink, workers):
    """The worker's own alerting on a cluster that loses a master: queue_unreachable fires for the
    queue on it (and only that one) and resolves once it is back. The other queues' rules go on
    being evaluated meanwhile: before, one queue's unanswered read failed the rule for all of them
    (loop_detected for the queue on a live master never fired)."""
    c = cluster_without_replicas()
    receiver = Sink()
    try:
        lost = c.masters()[0]
        lost_q, up_q, up = queues_on_and_off(c, lost, "ua")
        alerts = ('[alerts]\ninterval = "1s"\ngroup_wait = "0s"\ninstance = "t"\n'
                  'runbook_url = "https://docs.example/runbooks.md"\n'
                  f'[[alerts.channels]]\nname = "slack"\ntype = "slack"\n'
                  f'url = "{receiver.url("/slack")}"\n'
                  '[alerts.rules.queue_unreachable]\nfor = "2s"\n')
        text = cfg(c, pg_migrated, sink, [lost_q, up_q]) + alerts
        w = workers(text)
        delivered_and_recorded(pg_migrated, sink, push(up, up_q, 3, wait_replicas=0))

        def said(needle):
            return [json.loads(r.body)["text"] for r in receiver.received("/slack")
                    if needle in json.loads(r.body)["text"]]

        c.kill(lost)
        firing = wait_until(lambda: said("[FIRING P1] queue_unreachable"), 30,
                            what="queue_unreachable firing")
        assert len(firing) == 1 and f"queue={lost_q}" in firing[0], firing
        assert "its Redis master does not answer" in firing[0], firing[0]
        assert "runbooks.md#acks-waiting-for-redis" in firing[0], firing[0]

        up.client().zadd(f"hookq:{{{up_q}}}:loops", {"entity-1": 50})
        loop = wait_until(lambda: said("[FIRING P2] loop_detected"), 20,
                          what="loop_detected firing for the queue on a live master")
        assert f"queue={up_q}" in loop[0] and f"queue={lost_q}" not in loop[0], loop

        lost.start()
        c.wait_ok()
        resolved = wait_until(lambda: said("[RESOLVED P1] queue_unreachable"), 30,
                              what="queue_unreachable resolved")
        assert f"queue={lost_q}" in resolved[0], resolved
        assert all(f"queue={up_q}" not in t for t in said("queue_unreachable"))
        assert w.proc.poll() is None
        assert w.stop() == 0
    finally:
        receiver.close()
        c.close()


def test_a_lost_master_costs_the_status_only_what_lives_on_it(pg_migrated, sink, workers,
                                                              tmp_path):
    """While a master is lost, `hookqctl status`, /metrics and the dashboard still show every queue
    on the masters that answer; the lost one's queue is marked unreachable (hookq_queue_up 0, its
    gauges at their last values), and so are the fleet-wide pauses that lived on it. Before, one
    unanswered read failed the whole status: the CLI errored, the dashboard and /metrics froze."""
    import requests
    from test_admin_api import ADMIN
    from test_admin_ui import Browser

    c = RedisCluster(masters=3, replicas=0, node_timeout_ms=1000)
    browser = None
    try:
        for m in c.masters():
            m.client().execute_command("CONFIG", "SET", "cluster-require-full-coverage", "no")
        lost = c.master_for_key("hookq:paused")
        lost_q, up_q, up = queues_on_and_off(c, lost, "ls")
        port = harness.free_port()
        token = tmp_path / "admin.token"
        token.write_text(ADMIN + "\n")
        token.chmod(0o600)
        admin = (f'[admin]\nlisten = "127.0.0.1:{port}"\nmetrics_public = true\n'
                 f'[[admin.tokens]]\nname = "ops"\nrole = "admin"\ntoken = "file:{token}"\n')
        w = workers(cfg(c, pg_migrated, sink, [lost_q, up_q]) + admin)
        delivered_and_recorded(pg_migrated, sink, push(lost, lost_q, 2, wait_replicas=0) +
                               push(up, up_q, 2, wait_replicas=0))

        def metrics():
            return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

        wait_until(lambda: f'hookq_queue_up{{queue="{lost_q}"}} 1' in metrics(), 20,
                   what="the lost queue up before the kill")
        # Each master's memory, from INFO memory on each.
        used = lambda n: f'hookq_redis_memory_used_bytes{{node="{n}"}} '
        nodes = {m.address for m in c.masters()}
        assert len(nodes) == 3
        wait_until(lambda: all(used(n) in metrics() for n in nodes), 20,
                   what="every master's memory in /metrics")
        c.kill(lost)
        # Two webhooks wait in the live queue's list, where the status must see them.
        sink.set("/in", "sleep:100")
        up.client().lpush(f"hookq:{{{up_q}}}:queue", *(envelope.make(up_q)[1] for _ in range(2)))

        st = json.loads(ctl("--config", w.config_path, "status", "--json"))
        by = {q["queue"]: q for q in st["queues"]}
        assert by[lost_q]["reachable"] is False and lost.address in by[lost_q]["error"], by
        assert "depth" not in by[lost_q]
        assert by[up_q]["reachable"] is True and "depth" in by[up_q], by
        assert "pauses" in st["errors"] and "pauses" not in st, st
        mem = {n["node"]: n for n in st["redis"]}
        assert mem.keys() == nodes and mem[lost.address] == {"node": lost.address,
                                                             "reachable": False}, mem
        assert all(mem[n]["reachable"] and mem[n]["used_memory_bytes"] > 0
                   for n in nodes - {lost.address}), mem
        text = ctl("--config", w.config_path, "status")
        assert f"queue {lost_q}: " in text and "unreachable" in text, text

        m = wait_until(lambda: (lambda t: t if f'hookq_queue_up{{queue="{lost_q}"}} 0' in t
                                else None)(metrics()), 20, what="hookq_queue_up 0")
        assert f'hookq_queue_up{{queue="{up_q}"}} 1' in m, m
        # Kept at its last value, not dropped (that would resolve alerts on it).
        assert f'hookq_queue_depth{{queue="{lost_q}"}} ' in m, m
        # A lost master has no memory to report; the others still do.
        m = wait_until(lambda: (lambda t: t if used(lost.address) not in t else None)(metrics()),
                       20, what="the lost master's memory gone from /metrics")
        assert all(used(n) in m for n in nodes - {lost.address}), m

        browser = Browser()
        browser.goto(f"http://127.0.0.1:{port}/ui/")
        browser.login(ADMIN)
        browser.wait(f"document.querySelector('#queues tr.unreachable[data-queue={lost_q}]')",
                     what="the lost queue's row marked unreachable")
        assert "unreachable" in browser.text(f"#queues tr[data-queue={lost_q}]")
        cells = browser.js(f"[...document.querySelectorAll('#queues tr[data-queue={up_q}] td')]"
                           ".map(td => td.innerText)")
        assert cells[0] == up_q and len(cells) == 10, cells
        assert browser.errors() == [], browser.errors()

        lost.start()
        c.wait_ok()
        wait_until(lambda: f'hookq_queue_up{{queue="{lost_q}"}} 1' in metrics(), 30,
                   what="the lost queue up again")
        assert w.stop() == 0
    finally:
        if browser:
            browser.close()
        c.close()
