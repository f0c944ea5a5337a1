"""Real multi-node Redis for tests and benchmarks: a Redis Cluster (3 primaries, 3 replicas) and a Sentinel
set (one primary, one replica, three Sentinels), each on free ports, with a way to kill a primary.

`why_not()` says why this machine can't run them (no redis-cli, a redis-server without cluster support),
so the suites skip with that reason instead of failing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.emulators.redisserver import free_port

NODE_TIMEOUT_MS = 1000  # how long a silent primary takes to count as failed (cluster and Sentinel)
MASTER = "spaceops"


def why_not(sentinel: bool = False) -> str:
    """'' when redis-server (and redis-cli for a cluster) can run the topology here, else the reason."""
    server = shutil.which("redis-server")
    if not server:
        return "redis-server is not installed"
    if not sentinel and not shutil.which("redis-cli"):
        return "redis-cli is not installed (Debian: apt-get install redis-tools), needed to create a cluster"
    try:
        version = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"redis-server --version failed ({err})"
    major = version.partition(" v=")[2].split(".")[0]
    if not major.isdigit() or int(major) < 7:
        # --cluster-port (a bus port of our choosing) and reliable redis-cli --cluster need Redis 7.
        return f"redis-server is older than 7 ({version.strip()})"
    return ""


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError) as err:
            last = err
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last})")


def _cluster_ok(node) -> bool:
    info = node.client().execute_command("CLUSTER INFO")
    return (info.get("cluster_state") if isinstance(info, dict) else "cluster_state:ok" in info and "ok") == "ok"


def _sync(primary, timeout: float) -> None:
    """Wait until the replicas of `primary` acknowledged everything it has written so far."""
    client = primary.client()
    offset = client.info("replication").get("master_repl_offset", 0)
    _wait(lambda: all(int(r.get("offset", 0)) >= offset for key, r in client.info("replication").items()
                      if key.startswith("slave") and isinstance(r, dict)), timeout, "replicas to catch up")


class Node:
    """One redis-server process with its own directory; `kill()` is SIGKILL, `start()` brings it back."""

    def __init__(self, directory: Path, args: list[str], port: int | None = None):
        self.port = port or free_port()
        self.directory = directory
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.started = False  # once it ran, its port is known to others (a cluster, Sentinels): kept
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, *extra: str) -> None:
        """Start (or restart) the server. On its first start a port `free_port()` chose may be taken by the
        time redis-server binds it (another worker's server, or any outgoing connection's ephemeral port):
        then the server exits at once and it is started again on new ports (its own and its cluster bus port),
        before anything has been told its port. A restart keeps its ports."""
        first = not self.started
        for attempt in range(3):
            self.proc = subprocess.Popen(
                [shutil.which("redis-server"), *extra, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", str(self.directory), "--save", "", "--appendonly", "no", *self.args],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            proc = self.proc
            try:
                _wait(lambda: proc.poll() is not None or self.client().ping(), 10, f"redis on port {self.port}")
            except RuntimeError:
                self.stop()
                raise
            if proc.poll() is None:
                self.started = True
                return
            if not first or attempt == 2:
                self.proc = None
                raise RuntimeError(f"redis-server on port {self.port} exited at start (code {proc.returncode})")
            self.port = free_port()
            if "--cluster-port" in self.args:
                at = self.args.index("--cluster-port") + 1
                self.args[at] = str(free_port())

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)

    def kill(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None


class ClusterServers:
    """Three primaries and three replicas (`redis-cli --cluster create … --cluster-replicas 1`)."""

    def __init__(self, directory: Path, size: int = 6):
        self.nodes: list[Node] = []
        for n in range(size):
            bus = free_port()
            node = Node(directory / f"node{n}", [])
            node.args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-port", str(bus),
                         # a replica may take over at once; a lagging one still has what we wait for below
                         "--cluster-replica-validity-factor", "0", "--cluster-allow-reads-when-down", "no"]
            self.nodes.append(node)
        try:
            for node in self.nodes:
                node.start()
            result = subprocess.run(
                [shutil.which("redis-cli"), "--cluster", "create",
                 *[f"127.0.0.1:{node.port}" for node in self.nodes], "--cluster-replicas", "1", "--cluster-yes"],
                capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}{result.stderr}")
            self.wait_healthy()
        except Exception:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.proc]

    def role(self, node: Node) -> str:
        return node.client().execute_command("ROLE")[0]

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every live node says the cluster is ok, three primaries serve, and every replica is in sync."""
        def healthy() -> bool:
            for node in self.live():
                if not _cluster_ok(node):
                    return False
            primaries = [n for n in self.live() if self.role(n) == "master"]
            if len(primaries) != 3:
                return False
            for node in self.live():
                if self.role(node) == "slave":
                    info = node.client().info("replication")
                    if info.get("master_link_status") != "up":
                        return False
            return True

        _wait(healthy, timeout, "a healthy cluster")

    def primary_for(self, key: str) -> Node:
        """The live node that serves `key`'s slot as primary."""
        any_node = self.live()[0].client()
        slot = any_node.execute_command("CLUSTER KEYSLOT", key)
        for start, end, primary, *_ in any_node.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                port = primary[1]
                return next(node for node in self.nodes if node.port == port)
        raise RuntimeError(f"no node serves slot {slot}")

    def sync_replicas(self, timeout: float = 5) -> None:
        """Wait until every primary's writes reached its replica (what a test does before a planned kill)."""
        for node in self.live():
            if self.role(node) == "master":
                _sync(node, timeout)

    def fail_primary(self, node: Node, timeout: float = 30) -> float:
        """SIGKILL a primary and wait until its replica serves its slots; returns the seconds that took."""
        return self.kill_primary(node)(timeout)

    def kill_primary(self, node: Node):
        """SIGKILL a primary now; returns `promoted(timeout)`, which waits for its replica to serve its
        slots and returns the seconds since the kill."""
        replicas = [n for n in self.live() if n is not node and self.role(n) == "slave"
                    and int(n.client().info("replication").get("master_port", 0)) == node.port]
        start = time.monotonic()
        node.kill()

        def promoted(timeout: float = 30) -> float:
            _wait(lambda: any(self.role(r) == "master" for r in replicas), timeout, "a replica to be promoted")
            _wait(lambda: all(_cluster_ok(n) for n in self.live()), timeout, "the cluster to be ok again")
            return time.monotonic() - start
        return promoted

    def bring_back(self, node: Node) -> None:
        """Restart a killed node: it rejoins as a replica of the node that replaced it."""
        node.start()
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelServers:
    """One primary, one replica and three Sentinels monitoring them as `spaceops`."""

    def __init__(self, directory: Path):
        self.primary = Node(directory / "primary", [])
        self.replica = Node(directory / "replica", [])
        self.sentinels: list[Node] = []
        try:
            self.primary.start()
            self.replica.args = ["--replicaof", "127.0.0.1", str(self.primary.port)]
            self.replica.start()
            for n in range(3):
                node = Node(directory / f"sentinel{n}", [])
                config = node.directory / "sentinel.conf"
                config.write_text(
                    f"port {node.port}\nbind 127.0.0.1\ndir {node.directory}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} {NODE_TIMEOUT_MS}\n"
                    f"sentinel failover-timeout {MASTER} 10000\n"
                    f"sentinel parallel-syncs {MASTER} 1\n")
                node.proc = subprocess.Popen([shutil.which("redis-server"), str(config), "--sentinel"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _wait(lambda: node.client().ping(), 10, f"sentinel on port {node.port}")
                self.sentinels.append(node)
            self.wait_healthy()
        except Exception:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{s.port}' for s in self.sentinels)}/{MASTER}"

    def current_primary(self) -> Node:
        _host, port = self.sentinels[0].client().execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER)
        return next(node for node in (self.primary, self.replica) if node.port == int(port))

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every Sentinel knows the replica and the two other Sentinels, and the replica is in sync."""
        def healthy() -> bool:
            for sentinel in self.sentinels:
                client = sentinel.client()
                replicas = client.execute_command("SENTINEL REPLICAS", MASTER)
                others = client.execute_command("SENTINEL SENTINELS", MASTER)
                if not replicas or len(others) < 2:
                    return False
                rows = [r if isinstance(r, dict) else dict(zip(r[::2], r[1::2])) for r in replicas]
                if any(r.get("is_sdown") or r.get("is_odown") or "down" in str(r.get("flags", "")) for r in rows):
                    return False
            primary = self.current_primary()
            replica = self.replica if primary is self.primary else self.primary
            return replica.proc is not None and replica.client().info("replication").get("master_link_status") == "up"

        _wait(healthy, timeout, "Sentinels to see the primary, the replica and each other")

    def sync_replicas(self, timeout: float = 5) -> None:
        _sync(self.current_primary(), timeout)

    def fail_primary(self, timeout: float = 30) -> tuple[Node, float]:
        """SIGKILL the current primary; wait until Sentinel names the replica; returns (killed, seconds)."""
        old, promoted = self.kill_primary()
        return old, promoted(timeout)

    def kill_primary(self):
        """SIGKILL the current primary now; returns (killed, promoted(timeout) → seconds since the kill)."""
        old = self.current_primary()
        new = self.replica if old is self.primary else self.primary
        start = time.monotonic()
        old.kill()

        def promoted(timeout: float = 30) -> float:
            _wait(lambda: self.current_primary() is new and new.client().execute_command("ROLE")[0] == "master",
                  timeout, "Sentinel to promote the replica")
            return time.monotonic() - start
        return old, promoted

    def bring_back(self, node: Node) -> None:
        """Restart a killed primary; Sentinel turns it into a replica of the new one."""
        new = self.current_primary()
        node.args = ["--replicaof", "127.0.0.1", str(new.port)]
        node.start()
        self.wait_healthy()

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()
