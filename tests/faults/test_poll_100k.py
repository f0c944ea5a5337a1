"""100,000 watched Spaces (100 namespaces of 1,000) polled by 4 replicas sharing the poll (SPACEOPS_POLL_SHARDS=4)
on real Redis, through the real client against the Hub emulator: the leader stops mid-run (it ticks no more, as a
SIGKILLed process), its shard and the leader's jobs are taken over, and it comes back later. Stage changes land
throughout; every one is posted once, in its channel, and nothing else is.

The replicas are four bot contexts in this process, ticked in turn with one stepped clock (the bench's way,
bench/poll.py): the test is about what they decide and post, not about their speed.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from bot.alerts.watches import WATCHES, WATCHES_VERSION
from bot.app import build_context
from bot.core.deliver import STREAM
from bot.core.store import connect
from tests.conftest import make_settings
from tests.emulators.hub import HubEmulator, serve
from tests.faults.conftest import figure, tally

NAMESPACES, PER_NS, REPLICAS, SHARDS = 100, 1000, 4, 4
INTERVAL = 60.0
SPACE = re.compile(r"bt\d{3}/s\d{4}")


class BigHub:
    """The Hub emulator with 100,000 Spaces, served on its own port (the session's Hub stays small)."""

    def __init__(self):
        self.emulator = HubEmulator(token="hf_big")
        self.emulator.cache_pages = True  # a page is encoded once until a Space changes
        for n in range(NAMESPACES):
            for i in range(PER_NS):
                self.emulator.add_space(f"bt{n:03d}/s{i:04d}")
        self._stop, self.base = serve(self.emulator, threads=16)

    def close(self) -> None:
        self._stop()


def watch(client, spaces: list[str]) -> None:
    """Half the namespaces watched as `ns/*`, half Space by Space (50,000 fields), in 10 channels."""
    pipe = client.pipeline(transaction=False)
    for n in range(NAMESPACES // 2):
        pipe.hset(WATCHES, f"CBIG{n % 10}|bt{n:03d}/*", '{"only": []}')
    for space in spaces:
        n = int(space[2:5])
        if n >= NAMESPACES // 2:
            pipe.hset(WATCHES, f"CBIG{n % 10}|{space}", '{"only": []}')
    pipe.execute()
    client.set(WATCHES_VERSION, "100k")  # what `WatchStore.add` writes after the hash


@pytest.mark.slow
def test_100000_spaces_shared_by_4_replicas_lose_and_double_nothing(redis_server, slack):
    big = BigHub()
    client = connect(redis_server.url)
    client.flushall()
    spaces = [f"bt{n:03d}/s{i:04d}" for n in range(NAMESPACES) for i in range(PER_NS)]
    watch(client, spaces)
    settings = make_settings(big, slack, redis_server.url, HF_TOKEN="hf_big", SPACEOPS_POLL_SECONDS=str(int(INTERVAL)),
                             SPACEOPS_POLL_SHARDS=str(SHARDS), SPACEOPS_HUB_TIMEOUT="30")
    contexts = [build_context(settings, redis_client=connect(redis_server.url)) for _ in range(REPLICAS)]
    rng = random.Random(100_000)
    order = spaces[:]
    rng.shuffle(order)
    changed: list[str] = []
    now = time.time()
    try:
        for _ in range(6):  # the claims settle (the first claimer takes all, then gives back)
            held = [ctx.watcher.shards.claim(now) for ctx in contexts]
            if all(len(h) == 1 for h in held):
                break
        assert sorted(s for h in held for s in h) == list(range(SHARDS)), held

        def tick(ctxs) -> None:
            nonlocal now
            now += INTERVAL
            for ctx in ctxs:
                ctx.watcher.tick(now)

        def change(count: int) -> None:
            for _ in range(count):
                space = order.pop()
                big.emulator.set_stage(space, rng.choice(["SLEEPING", "RUNTIME_ERROR", "PAUSED"]))
                changed.append(space)

        tick(contexts)  # baselines: a first sighting posts nothing
        reads = sum(ctx.watcher.poller.reader.requests for ctx in contexts)
        assert reads >= NAMESPACES, reads  # every namespace listed, 1,000 a page
        assert not slack.posts(), slack.posts()[:2]
        leader = next(i for i, ctx in enumerate(contexts) if ctx.watcher.leading)
        for _ in range(2):
            change(30)
            tick(contexts)
        # The leader stops (as if SIGKILLed: no release, no more ticks); changes go on meanwhile.
        stopped = contexts[leader]
        alive = [ctx for ctx in contexts if ctx is not stopped]
        orphan = set(stopped.watcher.shards.held)
        stopped_at = now
        taken_after = None
        for _ in range(4):
            change(30)
            tick(alive)
            if taken_after is None and orphan <= set().union(*(ctx.watcher.shards.held for ctx in alive)):
                taken_after = now - stopped_at
        assert taken_after is not None and taken_after <= 2 * INTERVAL, taken_after
        assert any(ctx.watcher.leading for ctx in alive)
        # It comes back (a restarted process has a new identity) and gets its share back; still no doubles.
        stopped.close()
        contexts[leader] = build_context(settings, redis_client=connect(redis_server.url))
        for _ in range(3):
            change(30)
            tick(contexts)
        tick(contexts)
        for _ in range(60):  # the hot ticks deliver at Slack's pace (about one post a second per channel)
            if not client.xlen(STREAM):
                break
            now += 1.0
            for ctx in contexts:
                ctx.watcher.hot_tick(now)
        assert not client.xlen(STREAM), client.xrange(STREAM)[:3]
        counts = dict.fromkeys(spaces, 0)
        for post in slack.posts():
            for space in set(SPACE.findall(post.get("text", "") + str(post.get("blocks", "")))):
                counts[space] += 1
        lost = [s for s in changed if counts[s] == 0]
        doubled = [s for s in changed if counts[s] > 1]
        spurious = [s for s in spaces if counts[s] and s not in changed]
        assert not lost and not doubled and not spurious, (lost[:5], doubled[:5], spurious[:5])
        assert len({ctx.watcher.shards.owner for ctx in contexts}) == REPLICAS
        assert sorted(s for ctx in contexts for s in ctx.watcher.shards.held) == list(range(SHARDS))
    finally:
        for ctx in contexts:
            ctx.close()
        big.close()
    tally("poll at 100,000 Spaces: 4 replicas, the leader stopped and restarted", len(changed), len(lost),
          len(doubled), 0)
    figure(f"poll at 100,000 Spaces (4 replicas, 4 shards): the stopped leader's shard taken over "
           f"{taken_after / INTERVAL:.0f} interval(s) after its last tick, {len(changed)} changes, each posted once")
