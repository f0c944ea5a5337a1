"""The batched poll shared by `worker` processes (SPACEOPS_POLL_SHARDS): 4 workers over 40 namespaces on real
Redis (one server, and the 3+3 cluster), one SIGKILLed mid-cycle and started again later, with stage changes
throughout. Every change is posted once, and the dead worker's shards are taken over within 2 intervals of
their lease running out.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.alerts.shards import MEMBERS, shard_key, shard_of
from bot.alerts.watches import WatchStore
from bot.core.store import connect
from tests.emulators.hub import TOKEN
from tests.emulators.redistopology import ClusterServers, why_not
from tests.faults.conftest import clean_env, figure, tally
from tests.faults.test_process_kill import wait_for

ROOT = Path(__file__).resolve().parents[2]
SHARDS, WORKERS, NAMESPACES, PER_NS = 8, 4, 40, 3
INTERVAL = 1.0  # SPACEOPS_POLL_SECONDS: whole seconds; the shard leases last 1.5 of them
CHANNEL = "CSHARDS"


class Worker:
    """`python -m bot worker`: only the alert poller, its shards and (when it leads) delivery."""

    def __init__(self, hub, slack, redis_url: str, log_path: Path):
        env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": f"{slack.base}/api/", "HF_ENDPOINT": hub.base,
               "HF_TOKEN": TOKEN, "REDIS_URL": redis_url, "SPACEOPS_POLL_SECONDS": str(int(INTERVAL)),
               "SPACEOPS_POLL_SHARDS": str(SHARDS), "SPACEOPS_HUB_TIMEOUT": "2"}
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=clean_env(**env),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@pytest.fixture(params=["single", "cluster"])
def shard_redis(request, redis_server, tmp_path_factory):
    if request.param == "single":
        client = connect(redis_server.url)
        client.flushall()
        yield request.param, redis_server.url, client
        return
    reason = why_not()
    if reason:
        pytest.skip(f"Redis cluster skipped: {reason}")
    servers = ClusterServers(tmp_path_factory.mktemp("shards-cluster"))
    try:
        yield request.param, servers.url, connect(servers.url)
    finally:
        servers.stop()


def holders(client) -> dict[int, str]:
    """shard → its holder's id (expired leases left out)."""
    now = client.time()
    if isinstance(now, dict):  # a cluster client asks one node per slot owner: any of them
        now = next(iter(now.values()))
    now = now[0] + now[1] / 1e6
    out = {}
    for shard in range(SHARDS):
        value = client.get(shard_key(shard))
        if value:
            owner, _, until = value.rpartition("|")
            if float(until) > now:
                out[shard] = owner
    return out


@pytest.mark.slow
def test_four_workers_share_the_poll_and_a_killed_one_loses_nothing(shard_redis, hub, slack, tmp_path):
    kind, url, client = shard_redis
    spaces = [f"sh{n:02d}/app{i}x" for n in range(NAMESPACES) for i in range(PER_NS)]
    for space in spaces:
        hub.add_space(space)
    store = WatchStore(client)
    for n in range(NAMESPACES):
        store.add(CHANNEL, f"sh{n:02d}/*", frozenset(), "UADMIN", time.time())
    assert len({shard_of(f"sh{n:02d}", SHARDS) for n in range(NAMESPACES)}) == SHARDS  # every shard has work
    hub.latency = 0.05  # a cycle (a few listings, 16 at a time) takes a while: the kill lands inside one
    workers = [Worker(hub, slack, url, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
    try:
        # Every shard held, by all four (fair share: 2 each).
        spread = wait_for(lambda: (h := holders(client)) and len(h) == SHARDS and len(set(h.values())) == WORKERS
                          and h, 60)
        assert spread, f"shards never spread over the workers: {holders(client)}\n" + \
            "\n".join(w.log_path.read_text()[-2000:] for w in workers)
        time.sleep(2 * INTERVAL)  # baselines read: a first sighting posts nothing
        assert not slack.posts(CHANNEL), slack.posts(CHANNEL)[:3]

        rng = random.Random(22)
        order = spaces[:]
        rng.shuffle(order)
        changed: list[str] = []

        def change(count: int, gap: float) -> None:
            for _ in range(count):
                space = order.pop()
                hub.set_stage(space, "SLEEPING")  # each Space changes once: every change is visible to a read
                changed.append(space)
                time.sleep(gap)

        change(8, 0.1)
        # SIGKILL one worker while it reads (reads take `latency` each; a cycle runs several of them).
        victim = workers[1]
        members_before = dict(client.hgetall(MEMBERS))
        victim.kill()
        killed = time.monotonic()
        change(12, 0.1)  # changes while its shards have no holder

        def dead() -> list[str]:  # its heartbeat no longer moves (the live ones renew theirs every tick)
            return [o for o, until in members_before.items() if client.hget(MEMBERS, o) in (until, None)]

        assert wait_for(lambda: len(dead()) == 1, 5), (members_before, client.hgetall(MEMBERS))
        dead_owner = dead()[0]
        orphaned = [s for s, o in spread.items() if o == dead_owner]
        assert orphaned, spread
        taken = wait_for(lambda: all(holders(client).get(s) not in (None, dead_owner) for s in orphaned), 10, 0.02)
        takeover = time.monotonic() - killed
        assert taken, f"shards {orphaned} of the killed worker were not taken over: {holders(client)}"
        change(10, 0.1)
        # Started again later: it gets its share back from the others, still without a duplicate.
        workers.append(Worker(hub, slack, url, tmp_path / "worker-restarted.log"))
        change(10, 0.15)
        wait_for(lambda: len(set(holders(client).values())) == WORKERS, 15)
        change(10, 0.1)

        def posted() -> dict[str, int]:
            counts = {space: 0 for space in spaces}
            for post in slack.posts(CHANNEL):
                text = post.get("text", "") + str(post.get("blocks", ""))
                for space in spaces:
                    if space in text:
                        counts[space] += 1
            return counts

        wait_for(lambda: all(posted()[s] >= 1 for s in changed), 20, 0.2)
        time.sleep(3 * INTERVAL)  # a few more cycles and deliveries: nothing more
        counts = posted()
        lost = [s for s in changed if counts[s] == 0]
        doubled = [s for s in changed if counts[s] > 1]
        spurious = [s for s in spaces if s not in changed and counts[s]]
        assert not lost and not doubled and not spurious, (lost, doubled, spurious)
        # Lease 1.5 intervals after the last claim, then the next tick of a worker below its new share.
        assert takeover <= SHARD_LEASE_SECONDS + 2 * INTERVAL, takeover
    finally:
        for worker in workers:
            worker.close()
    tally(f"poll shards ({kind} Redis): 4 workers, 40 namespaces, one SIGKILLed and restarted", len(changed),
          len(lost), len(doubled), 0)
    figure(f"poll shards on {kind} Redis: a SIGKILLed worker's {len(orphaned)} shards taken over "
           f"{takeover:.1f} s after the kill ({takeover / INTERVAL:.1f} intervals; lease "
           f"{SHARD_LEASE_SECONDS:.1f} s), {len(changed)} changes, each posted once")


SHARD_LEASE_SECONDS = 1.5 * INTERVAL
