"""The whole path on a real Redis Cluster: nginx (hookq_redis_cluster, hookq_redis_wait 1) accepts
signed webhooks for three queues whose slots live on three masters, and hookq-worker ([redis]
cluster) delivers each of them to the application and records it in PostgreSQL."""

import harness
from redis_cluster import RedisCluster
from test_edge_cluster import conf as edge_conf
from test_edge_cluster import signed_post
from test_worker_cluster import cfg as worker_cfg
from test_worker_cluster import delivered_and_recorded
from worker_fixtures import pg_migrated, sink, wait_until, workers  # noqa: F401

import pytest


@pytest.fixture
def cluster():
    c = RedisCluster(masters=3, replicas=1, node_timeout_ms=1000)

    def replicas_online():
        infos = [m.info("replication") for m in c.masters()]
        return all(i.get("slave0", {}).get("state") == "online" for i in infos)

    try:
        wait_until(replicas_online, 30, interval=0.1, what="replicas in sync")
        yield c
    finally:
        c.close()


def test_ingest_and_delivery_across_masters(cluster, pg_migrated, sink, workers):
    queues = cluster.queues_on_distinct_masters(3, "e2e")
    masters = {q: cluster.master_for_queue(q) for q in queues}
    assert len({m.port for m in masters.values()}) == 3
    http = edge_conf(cluster.seeds, queues, wait="hookq_redis_wait 1 1s;")
    for q in queues:  # the worker's routes are by source: one per queue
        http = http.replace(f"hookq_queue {q};", f"hookq_queue {q}; hookq_source {q};")
    nginx = harness.Nginx(http)
    try:
        ids = []
        for i in range(60):
            q = queues[i % 3]
            status, headers, _ = signed_post(nginx.port, q)
            assert status == 202, nginx.log()
            ids.append(headers["x-request-id"])
        # Each queue's envelopes on its own master, and already on that master's replica.
        for q, m in masters.items():
            assert m.client().llen(f"hookq:{{{q}}}:queue") == 20
            replica = cluster.replica_of(m).client()
            replica.execute_command("READONLY")
            assert replica.llen(f"hookq:{{{q}}}:queue") == 20
        w = workers(worker_cfg(cluster, pg_migrated, sink, queues))
        delivered_and_recorded(pg_migrated, sink, ids)
        assert sorted(r.headers.get("x-request-id") for r in sink.received()) == sorted(ids)
        for q, m in masters.items():
            wait_until(lambda: m.client().llen(f"hookq:{{{q}}}:inflight:w1") == 0, 10,
                       what=f"{q} acked")
            assert m.client().llen(f"hookq:{{{q}}}:queue") == 0
        assert w.stop() == 0
    finally:
        nginx.close()
