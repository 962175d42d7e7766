"""A real Redis Cluster on loopback for the tests: masters and replicas as separate redis-server
processes with cluster-enabled, joined by `redis-cli --cluster create`.

A short cluster-node-timeout makes a killed master's replica take over within a few seconds, so
failover can be tested without slowing the suite.
"""

import os
import signal
import subprocess
import time

from harness import TempDir, _live, free_port, wait_port


class ClusterNode:
    def __init__(self, port, dir_path, node_timeout_ms):
        self.port = port
        self.bus_port = free_port()
        self.dir = dir_path
        self.node_timeout_ms = node_timeout_ms
        self.proc = None
        self.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # The bus port defaults to port + 10000, which may be taken or past 65535.
                "--cluster-port", str(self.bus_port),
                # A replica of a master that was killed must take over at once: its data may be a
                # little behind, which is what the replica-wait option is tested against.
                "--cluster-replica-validity-factor", "0",
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args)
        wait_port(self.port, proc=self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **kw)

    def info(self, section):
        return self.client().info(section)

    def role(self):
        return self.info("replication")["role"]

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


def key_slot(key):
    """CRC16/XMODEM of the key (or of its hash tag) mod 16384, as Redis Cluster computes it."""
    if isinstance(key, str):
        key = key.encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in key:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


class RedisCluster:
    def __init__(self, masters=3, replicas=1, node_timeout_ms=1000):
        self.dir = TempDir("hookq-cluster-")
        self.node_timeout_ms = node_timeout_ms
        self.nodes = []
        _live.add(self)
        try:
            for i in range(masters * (1 + replicas)):
                path = os.path.join(self.dir.path, f"n{i}")
                os.mkdir(path)
                self.nodes.append(ClusterNode(free_port(), path, node_timeout_ms))
            subprocess.run(["redis-cli", "--cluster", "create",
                            *[n.address for n in self.nodes],
                            "--cluster-replicas", str(replicas), "--cluster-yes"],
                           check=True, capture_output=True, timeout=60)
            self.wait_ok(timeout=30)
        except Exception:
            self.close()
            raise

    @property
    def seeds(self):
        return [n.address for n in self.nodes]

    def client(self):
        import redis.cluster
        live = next(n for n in self.nodes if n.alive())
        return redis.cluster.RedisCluster(host="127.0.0.1", port=live.port, socket_timeout=5)

    def _slots(self, via):
        """[(start, end, master_port)] as `via` sees them."""
        return [(s[0], s[1], s[2][1]) for s in via.client().execute_command("CLUSTER SLOTS")]

    def _node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def masters(self):
        """The live nodes that serve slots, as the first live node that answers sees it."""
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                served = {p for _, _, p in self._slots(n)}
            except Exception:
                continue
            return [m for m in self.nodes if m.port in served and m.alive()]
        return []

    def replicas(self):
        return [n for n in self.nodes if n.alive() and n.role() == "slave"]

    def master_for_slot(self, slot):
        for n in self.nodes:
            if not n.alive():
                continue
            for start, end, port in self._slots(n):
                if start <= slot <= end:
                    return self._node(port)
        raise LookupError(f"no master serves slot {slot}")

    def master_for_key(self, key):
        return self.master_for_slot(key_slot(key))

    def master_for_queue(self, queue):
        return self.master_for_slot(key_slot("{" + queue + "}"))

    def replica_of(self, master):
        for n in self.replicas():
            info = n.info("replication")
            if int(info.get("master_port", 0)) == master.port:
                return n
        raise LookupError(f"no replica of {master.address}")

    def queues_on_distinct_masters(self, n, prefix="q"):
        """n queue names whose hash tags {Q} are served by n different masters."""
        chosen, owners = [], set()
        i = 0
        while len(chosen) < n:
            name = f"{prefix}{i}"
            owner = self.master_for_queue(name).port
            if owner not in owners:
                owners.add(owner)
                chosen.append(name)
            i += 1
            if i > 10000:
                raise RuntimeError(f"fewer than {n} masters serve slots")
        return chosen

    def kill(self, node):
        node.kill()

    def wait_ok(self, timeout=30.0):
        """Until every live node says cluster_state:ok and every slot is on a live master."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                live = [n for n in self.nodes if n.alive()]
                # redis-py parses CLUSTER INFO into a dict
                states = [n.client().execute_command("CLUSTER INFO") for n in live]
                if all(s.get("cluster_state") == "ok" for s in states):
                    covered = 0
                    for start, end, port in self._slots(live[0]):
                        if not self._node(port).alive():
                            break
                        covered += end - start + 1
                    if covered == 16384:
                        return
                last = "state not ok yet"
            except Exception as e:  # a node still starting or failing over
                last = repr(e)
            time.sleep(0.1)
        raise TimeoutError(f"cluster not ok within {timeout}s: {last}")

    def wait_failover(self, timeout=30.0):
        self.wait_ok(timeout)

    def move_slot(self, slot, target):
        """Migrates one slot (and its keys) to `target` with the MIGRATE steps redis-cli uses."""
        source = self.master_for_slot(slot)
        if source.port == target.port:
            return
        sid = source.client().execute_command("CLUSTER MYID")
        tid = target.client().execute_command("CLUSTER MYID")
        sid = sid.decode() if isinstance(sid, bytes) else sid
        tid = tid.decode() if isinstance(tid, bytes) else tid
        target.client().execute_command("CLUSTER SETSLOT", slot, "IMPORTING", sid)
        source.client().execute_command("CLUSTER SETSLOT", slot, "MIGRATING", tid)
        while True:
            keys = source.client().execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            source.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                             "KEYS", *keys)
        for n in self.masters():
            n.client().execute_command("CLUSTER SETSLOT", slot, "NODE", tid)

    def close(self):
        _live.discard(self)
        for n in self.nodes:
            try:
                n.stop()
            except Exception:
                pass
        self.dir.cleanup()
