"""Alert delay benchmark (not a test): from a Space's change on the Hub to the Slack post about it.

    .venv/bin/python bench/alert_delay.py [--minutes 15] [--events 240] [--seed 11]

1,000 watched Spaces in 10 namespaces (one `ns/*` watch per namespace, each in its own channel) in the
Hub emulator (20 ms per request, a fixed 5-minute window of 1,000 requests with `RateLimit` headers),
`SPACEOPS_POLL_SECONDS=60`, `SPACEOPS_HOT_SECONDS=5`, a real redis-server and the real poller, outbox,
hot poller, follow-through and webhook receiver.

The clock is simulated: a run of 15 minutes would take 15 minutes of wall time, so the scheduler's jobs
(poll every 60 s, hot reads every 5 s, delivery every second) are called with a clock that advances one
second per step, and the real time each step takes (Hub requests at 20 ms, Redis, Slack formatting) is
added to the time a post is stamped with. A delay is "stamp of the first post about that Space after the
change" minus "simulated time of the change".

Events, spread at random: two thirds happen on their own (crash, sleep, pause); one third follow a change
through the bot (`/space restart`: building, then running again 20–90 s later) or a push (webhook
delivery, building, then running or a failed build 30–120 s later).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build_context  # noqa: E402
from bot.commands.grammar import Command  # noqa: E402
from bot.core.permissions import Actor  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.core.store import connect  # noqa: E402
from tests.emulators.hub import HubEmulator, serve  # noqa: E402
from tests.emulators.redisserver import RedisServer  # noqa: E402

TOKEN = "hf_bench"
SECRET = "bench-webhook-secret-0123456789"
NAMESPACES, PER_NS = 10, 100
INTERVAL, HOT = 60, 5
WINDOW = 300


class Recorder:
    """Stands in for Slack: records each post and edit with the simulated time plus the step's real time."""

    def __init__(self):
        self.sim = 0.0
        self.step_started = time.perf_counter()
        self.posts: list[tuple[float, str, str]] = []
        self._ts = 0

    def stamp(self) -> float:
        return self.sim + (time.perf_counter() - self.step_started)

    def post(self, channel, text, blocks=None, thread_ts=None, metadata=None) -> str:
        self.posts.append((self.stamp(), channel, text))
        self._ts += 1
        return f"{1700000000 + self._ts}.000100"

    def update(self, channel, ts, text, blocks=None) -> None:
        pass

    def permalink(self, channel, ts) -> str:
        return ""


def space_name(n: int, i: int) -> str:
    return f"ns{n:02d}/space-{i:03d}"


def plan(rng: random.Random, events: int, minutes: int) -> list[tuple[float, str, str]]:
    """(time, kind, space): each Space is used once, so its posts pair with its changes in order."""
    spaces = [space_name(n, i) for n in range(NAMESPACES) for i in range(PER_NS)]
    rng.shuffle(spaces)
    start, end = 2 * INTERVAL + 5, minutes * 60 - 150
    out = []
    for k in range(events):
        kind = rng.choice(["restart", "push"]) if k % 3 == 0 else rng.choice(["crash", "sleep", "pause"])
        out.append((rng.uniform(start, end), kind, spaces[k]))
    return sorted(out)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=15)
    parser.add_argument("--events", type=int, default=240)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    hub = HubEmulator(token=TOKEN, latency=args.latency)
    stop_hub, hub.base = serve(hub, threads=64)
    try:
        return run(args, rng, hub, server.url)
    finally:
        stop_hub()
        server.stop()


def run(args, rng: random.Random, hub: HubEmulator, redis_url: str) -> int:
    for n in range(NAMESPACES):
        for i in range(PER_NS):
            hub.add_space(space_name(n, i), hardware="t4-small", sleep=3600)
    client = connect(redis_url)
    client.flushall()
    settings = Settings.from_env({"HF_ENDPOINT": hub.base, "HF_TOKEN": TOKEN, "REDIS_URL": redis_url,
                                  "SPACEOPS_POLL_SECONDS": str(INTERVAL), "SPACEOPS_HOT_SECONDS": str(HOT),
                                  "SPACEOPS_HUB_TIMEOUT": "30", "SPACEOPS_HUB_WEBHOOK_SECRET": SECRET})
    slack = Recorder()
    ctx = build_context(settings, redis_client=client, poster=slack)
    watcher = ctx.watcher
    ctx.store.clock.inject(lambda: slack.sim)  # the one clock (bot/core/clock.py) runs on simulated time
    watcher.outbox.per_second, watcher.outbox.burst = 1.0, 3.0
    for n in range(NAMESPACES):
        watcher.store.add(f"C{n}", f"ns{n:02d}/*", frozenset(), "UBENCH", 0.0)
    actor = Actor(user="UBENCH", channel="CBENCH")

    events = plan(rng, args.events, args.minutes)
    changes: dict[str, list[tuple[float, str]]] = {}   # space → [(sim time of the change, kind)]
    later: list[tuple[float, str, str]] = []           # (time, space, stage) second steps of bot changes and pushes
    per_window: list[int] = []
    window_start = len(hub.requests)
    total = args.minutes * 60
    hub.rate_limit, hub.rate_quota = 1000, 1000
    real_start = time.perf_counter()
    for second in range(total + 1):
        slack.sim = float(second)
        slack.step_started = time.perf_counter()
        if second % WINDOW == 0:
            if second:
                per_window.append(len(hub.requests) - window_start)
            window_start = len(hub.requests)
            hub.rate_limit = 1000
        hub.rate_window = WINDOW - second % WINDOW
        while events and events[0][0] <= second:
            _, kind, space = events.pop(0)
            if kind in ("crash", "sleep", "pause"):
                stage = {"crash": "RUNTIME_ERROR", "sleep": "SLEEPING", "pause": "PAUSED"}[kind]
                hub.set_stage(space, stage, error="CUDA out of memory" if kind == "crash" else None)
                changes.setdefault(space, []).append((second, kind))
            elif kind == "restart":
                ctx.ops.run(Command("restart", space=space), actor)      # the Hub says BUILDING at once
                changes.setdefault(space, []).append((second, "bot change: building"))
                later.append((second + rng.uniform(20, 90), space, "RUNNING"))
            else:
                hub.spaces[space]["sha"] = f"{rng.getrandbits(160):040x}"
                body = json.dumps({"event": {"action": "update", "scope": "repo.content"},
                                   "repo": {"type": "space", "name": space, "headSha": hub.spaces[space]["sha"]},
                                   "updatedRefs": [{"ref": "refs/heads/main", "oldSha": "0" * 40,
                                                    "newSha": hub.spaces[space]["sha"]}]}).encode()
                watcher.webhooks.receive(SECRET, body, float(second))
                hub.set_stage(space, "BUILDING")
                changes.setdefault(space, []).append((second, "push: building"))
                later.append((second + rng.uniform(30, 120), space, rng.choice(["RUNNING", "RUNNING", "BUILD_ERROR"])))
            slack.step_started = time.perf_counter()
        for item in [x for x in later if x[0] <= second]:
            later.remove(item)
            _, space, stage = item
            hub.set_stage(space, stage, error="pip failed" if stage == "BUILD_ERROR" else None)
            first = changes[space][0][1]
            changes[space].append((second, ("bot change: " if first.startswith("bot") else "push: ")
                                   + ("running again" if stage == "RUNNING" else "build failed")))
        if second % INTERVAL == 0:
            watcher.tick(float(second))
        elif second % HOT == 0:
            watcher.hot_tick(float(second))
        else:
            watcher.drain(float(second))
    per_window.append(len(hub.requests) - window_start)
    wall = time.perf_counter() - real_start
    ctx.close()

    # Pair each Space's changes with its posts in the watching channels, in order.
    posts: dict[str, list[float]] = {}
    for stamp, channel, text in slack.posts:
        if channel.startswith("C") and channel != "CBENCH" and "|ns" in text:
            space = text.split("|", 1)[1].split(">", 1)[0]
            posts.setdefault(space, []).append(stamp)
    delays: dict[str, list[float]] = {}
    missing = 0
    for space, items in changes.items():
        stamps = posts.get(space, [])
        for index, (at, kind) in enumerate(items):
            if index >= len(stamps):
                missing += 1
                continue
            delays.setdefault(kind, []).append(stamps[index] - at)

    print(f"{args.minutes} simulated minutes ({wall:.0f} s of wall time), 1,000 Spaces in 10 namespaces, "
          f"Hub {args.latency * 1000:.0f} ms/request, SPACEOPS_POLL_SECONDS={INTERVAL}, "
          f"SPACEOPS_HOT_SECONDS={HOT}, {args.events} events (seed {args.seed})")
    print(f"{'transition':<30}{'count':>6}{'p50 s':>8}{'p95 s':>8}{'max s':>8}   hot?")
    order = ["crash", "sleep", "pause", "bot change: building", "bot change: running again",
             "push: building", "push: running again", "push: build failed"]
    for kind in order:
        values = delays.get(kind, [])
        if not values:
            continue
        hot = "yes" if kind.startswith(("bot", "push")) else "no"
        print(f"{kind:<30}{len(values):>6}{statistics.median(values):>8.1f}{percentile(values, 0.95):>8.1f}"
              f"{max(values):>8.1f}   {hot}")
    print(f"changes with no post: {missing}")
    print(f"Hub requests per 5 min: {', '.join(str(n) for n in per_window)} (commands keep their reserve of 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
