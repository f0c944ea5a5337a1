"""Fleet benchmark (not a test): reports over 10,000 watched Spaces with 30 days of roll-ups.

    .venv/bin/python bench/fleet.py [--spaces 10000] [--days 30]

Fills its own redis-server (on a free port) with what the poller would have written: a state per Space
and a roll-up hash per Space and day (a realistic mix: paid and free flavors, sleeping, a few crashes),
then times `/space cost acme/*` (one namespace of 1,000), the App Home view, and a weekly digest with its
chart; and measures Redis memory per Space-day of roll-up.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.alerts.keys import state_key  # noqa: E402
from bot.alerts.rollups import TTL, DayDelta, cas_rollup, day_key, format_summary, month_key, stint  # noqa: E402
from bot.alerts.transitions import SpaceState  # noqa: E402
from bot.alerts.watches import WATCHES  # noqa: E402
from bot.app import build_context  # noqa: E402
from bot.commands.grammar import Command  # noqa: E402
from bot.core.permissions import Actor  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.core.slack import ConsolePoster  # noqa: E402
from bot.core.store import connect  # noqa: E402
from bot.fleet.store import KNOWN  # noqa: E402
from tests.emulators.redisserver import RedisServer  # noqa: E402

FLAVORS = [("cpu-basic", 0.0), ("t4-small", 0.4), ("t4-medium", 0.6), ("a10g-large", 1.5), ("cpu-upgrade", 0.03)]
TEMPLATES = 200
NAMESPACES = ["acme"] + [f"ns{i:02d}" for i in range(1, 10)]


def day_stints(rng: random.Random, day_start: float) -> list[tuple[str, float, float]]:
    """A day of one Space: running, asleep, sometimes a crash and a rebuild."""
    out, at = [], day_start
    while at < day_start + 86400:
        stage = rng.choices(["RUNNING", "SLEEPING", "BUILDING", "RUNTIME_ERROR", "APP_STARTING"],
                            [50, 35, 6, 2, 7])[0]
        length = rng.uniform(600, 6 * 3600)
        out.append((stage, at, min(at + length, day_start + 86400)))
        at += length
    return out


def fill(client, spaces: list[str], days: int, now: float) -> int:
    """States, roll-ups (through the same functions and field layout as the poller), watches, index."""
    rng = random.Random(7)
    today = int(now) // 86400 * 86400
    pipe = client.pipeline(transaction=False)
    day_keys = 0
    # A few hundred random days per flavor, reused: the same functions as the poller, 100× faster to fill.
    templates = {}
    for flavor, price in FLAVORS:
        for t in range(TEMPLATES):
            merged = DayDelta()
            for stage, start, end in day_stints(rng, today):
                merged = merged.merge(stint(stage, flavor, price, start, end).get(time.strftime(
                    "%Y-%m-%d", time.gmtime(today)), DayDelta()))
            templates[(flavor, t)] = merged
    for n, space in enumerate(spaces):
        flavor, price = FLAVORS[n % len(FLAVORS)]
        deltas: dict[str, DayDelta] = {}
        for d in range(days, 0, -1):
            day = time.strftime("%Y-%m-%d", time.gmtime(today - d * 86400))
            deltas[day] = templates[(flavor, rng.randrange(TEMPLATES))]
            if rng.random() < 0.05:
                day = time.strftime("%Y-%m-%d", time.gmtime(today - d * 86400))
                deltas[day] = deltas[day].merge(DayDelta(add={"inc": 1}, peak={"out": rng.randint(60, 7200)}))
        keys, entries = cas_rollup(space, deltas)
        for entry in entries:
            name = keys[entry["k"] - 1]
            fields = {**entry.get("add", {}), **entry.get("peak", {})}
            if "h" in entry:
                fields["h"] = entry["h"]
            fields.update({name: format_summary(values) for name, values in entry.get("sum", {}).items()})
            pipe.hset(name, mapping=fields)
            pipe.expire(name, TTL)
            day_keys += ":d:" in name
        stage = "RUNTIME_ERROR" if n % 97 == 0 else ("SLEEPING" if n % 3 == 0 else "RUNNING")
        state = SpaceState(space, stage, since=today + 600, version=now, hardware=flavor, requested=flavor,
                           sleep_time=None if n % 11 == 0 else 3600, first_seen=today - days * 86400,
                           error="CUDA out of memory" if stage == "RUNTIME_ERROR" else None)
        pipe.hset(state_key(space), mapping=state.to_fields())
        if n % 500 == 499:
            pipe.execute()
    pipe.execute()
    client.hset(WATCHES, mapping={f"C1|{ns}/*": json.dumps({"only": [], "by": "U1", "at": now}) for ns in NAMESPACES})
    client.sadd(KNOWN, *spaces)
    return day_keys


def timed(what: str, fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    print(f"{what:<52} {best:6.2f} s")
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    per_ns = args.spaces // len(NAMESPACES)
    spaces = [f"{ns}/space-{i:05d}" for ns in NAMESPACES for i in range(per_ns)]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        try:
            client = connect(server.url)
            now = time.time()
            before = int(client.info("memory")["used_memory"])
            # Memory: the day hashes alone first, then everything else.
            start = time.perf_counter()
            day_keys = fill(client, spaces, args.days, now)
            print(f"filled {len(spaces):,} Spaces × {args.days} days ({day_keys:,} day hashes) "
                  f"in {time.perf_counter() - start:.1f} s")
            sample_day = time.strftime("%Y-%m-%d", time.gmtime(now - min(5, args.days - 1) * 86400))  # a filled day
            sample = [day_key(s, sample_day) for s in spaces[:2000]]
            per_day = sum(client.memory_usage(k) or 0 for k in sample) / len(sample)
            # Each month hash holds the month's billed fields and one summary per day: its share per day.
            shares = []
            for space in spaces[:2000]:
                name = month_key(space, sample_day[:7])
                summaries = sum(1 for f in client.hkeys(name) if f.startswith("d|"))
                shares.append((client.memory_usage(name) or 0) / max(1, summaries))
            per_month_day = sum(shares) / len(shares)
            total = int(client.info("memory")["used_memory"]) - before
            print(f"Redis memory per Space-day of roll-up: {per_day + per_month_day:,.0f} bytes "
                  f"(day hash {per_day:,.0f}, its share of the month hash {per_month_day:,.0f})")
            print(f"Redis memory, everything written / Space-days: {total / (len(spaces) * args.days):,.0f} bytes")

            settings = Settings.from_env({"REDIS_URL": server.url, "HF_TOKEN": "hf_bench",
                                          "HF_ENDPOINT": "http://127.0.0.1:9"})
            ctx = build_context(settings, redis_client=client, poster=ConsolePoster(open("/dev/null", "w")))
            fleet = ctx.fleet
            fleet.clock = lambda: now
            # What the leader's batched reads keep telling access: which Spaces are private (1 in 50 here).
            ctx.access.observed({space: n % 50 == 49 for n, space in enumerate(spaces)})
            actor = Actor("U1", "C1")
            reply, _ = timed(f"/space cost acme/* ({per_ns:,} Spaces, 7 days)",
                             lambda: fleet.cost(Command("cost", space="acme/*"), actor))
            timed("/space cost acme/* --month", lambda: fleet.cost(Command("cost", space="acme/*", month=""), actor))
            view, _ = timed(f"App Home view ({len(spaces):,} watched Spaces)", lambda: fleet.home("U1", 0, now))
            print(f"    {len(view['blocks'])} blocks, {len(json.dumps(view)):,} bytes")
            config = {"period": "weekly", "time": "09:00", "tz": "UTC"}
            end = int(now) // 86400 * 86400
            (snap, _), _ = timed("    of which: the week and the week before, summed",
                                 lambda: fleet.period(spaces, end - 7 * 86400, end, 7, now))
            png, _ = timed("    of which: the chart (PNG)",
                           lambda: fleet.chart_png("bench", snap, end - 7 * 86400, end, now))
            print(f"    chart: {len(png):,} bytes")
            timed(f"weekly digest with its chart ({len(spaces):,} Spaces)", lambda: fleet.post_digest("C1", config, now, now))
            ctx.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
