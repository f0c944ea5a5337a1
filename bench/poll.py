"""Poll benchmark (not a test): Hub requests, cycle time, Redis commands and bot memory per cycle.

    .venv/bin/python bench/poll.py

Runs the Hub emulator in a child process (20 ms per request) so the memory figure is the bot's, and
its own redis-server on a free port. For each scenario it times the first cycle (baseline: every
state written), a steady cycle (nothing changed) and a cycle where 1% of the Spaces changed stage,
once with the planner (batched where cheaper) and once forced to one request per Space; 100,000 Spaces in
100 namespaces with one process and with 4 worker processes sharing the poll (SPACEOPS_POLL_SHARDS=4).

    .venv/bin/python bench/poll.py --quick                 # without the per-Space 10,000 and the 100,000 runs
    .venv/bin/python bench/poll.py --spaces 2000           # one small run (a smoke test)
    .venv/bin/python bench/poll.py --spaces 2000 --namespaces 8 --workers 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bot.alerts.watches import WATCHES, WATCHES_VERSION  # noqa: E402
from bot.app import build_context  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.core.slack import ConsolePoster  # noqa: E402
from bot.core.store import connect  # noqa: E402
from tests.emulators.redisserver import RedisServer, free_port  # noqa: E402

TOKEN = "hf_bench"
HUB_SCRIPT = textwrap.dedent("""
    import sys, time
    from tests.emulators.hub import HubEmulator, serve
    port, latency, layout = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    hub = HubEmulator(token="%s", latency=latency)
    hub.cache_pages = True  # a page is encoded once until a Space changes: the Hub's own work is not timed
    namespaces, per_ns = (int(x) for x in layout.split("x"))
    for n in range(namespaces):
        for i in range(per_ns):
            hub.add_space(f"ns{n:03d}/space-{i:05d}")
    server, base = serve(hub, port=port, threads=64)
    print("ready", flush=True)
    # stdin closes when the benchmark ends; stage changes arrive as lines "space STAGE".
    for line in sys.stdin:
        space, stage = line.split()
        hub.set_stage(space, stage)
        print("ok", flush=True)
""" % TOKEN)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


class HubProcess:
    def __init__(self, namespaces: int, per_ns: int, latency: float):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", HUB_SCRIPT, str(self.port), str(latency),
                                      f"{namespaces}x{per_ns}"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{self.port}"

    def set_stage(self, space: str, stage: str) -> None:
        self.proc.stdin.write(f"{space} {stage}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def stop(self):
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(5)


def watch_all(client: redis.Redis, spaces: list[str]) -> None:
    """Every Space watched by name, in one of 20 channels (as a workspace that watched them one by one)."""
    for start in range(0, len(spaces), 10_000):
        pipe = client.pipeline(transaction=False)
        for space in spaces[start:start + 10_000]:
            pipe.hset(WATCHES, f"C{hash(space) % 20}|{space}", '{"only": []}')
        pipe.execute()
    client.set(WATCHES_VERSION, "bench")  # as `WatchStore.add` does: the replicas read the hash once


def space_ids(namespaces: int, per_ns: int) -> list[str]:
    return [f"ns{n:03d}/space-{i:05d}" for n in range(namespaces) for i in range(per_ns)]


def kept_bytes(watcher) -> int:
    """What the poller keeps between cycles (states, prints, read times, commits, the watch set), in bytes:
    every object reachable from those maps counted once."""
    poller = watcher.poller
    roots = [poller.cache, poller.packed, poller.observed, poller.marked, poller.reader.shas, poller.reader.pages,
             poller.watch_store._loaded]
    seen: set[int] = set()
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.append(obj.__dict__)
        elif getattr(type(obj), "__slots__", None) and not isinstance(obj, type):
            stack.extend(getattr(obj, name, None) for name in type(obj).__slots__)
    return total


def make_watcher(hub_url: str, redis_url: str, shards: int = 1):
    client = connect(redis_url)
    settings = Settings.from_env({"HF_ENDPOINT": hub_url, "HF_TOKEN": TOKEN, "REDIS_URL": redis_url,
                                  "SPACEOPS_POLL_SECONDS": "60", "SPACEOPS_HUB_TIMEOUT": "30",
                                  "SPACEOPS_POLL_SHARDS": str(shards)})
    ctx = build_context(settings, redis_client=client, poster=ConsolePoster(open(os.devnull, "w")))
    return ctx, client


def timed_tick(watcher, now: float, label: str) -> tuple[object, float]:
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    spy = os.environ.get("BENCH_PYSPY")  # a py-spy sample of every thread of this cycle (pip install py-spy)
    if spy:
        sampler = subprocess.Popen(["py-spy", "record", "-p", str(os.getpid()), "-r", "250", "-f", "raw", "-o",
                                    f"{spy}.{label.split()[0].replace('%', 'pct')}.txt"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    start = time.perf_counter()
    report = watcher.tick(now)
    elapsed = time.perf_counter() - start
    if spy:
        sampler.send_signal(2)
        sampler.wait(60)
    if profile:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{label.split()[0].replace('%', 'pct')}")
    return report, elapsed


def scenario(name: str, namespaces: int, per_ns: int, mode: str, latency: float, redis_url: str) -> dict:
    hub = HubProcess(namespaces, per_ns, latency)
    ctx, client = make_watcher(hub.url, redis_url)
    client.flushall()
    watcher = ctx.watcher
    spaces = space_ids(namespaces, per_ns)
    watch_all(client, spaces)
    if mode == "per-space":
        watcher.poller.plan = lambda watches, now=None: (set(), watches.explicit_spaces())
    now = time.time()
    rows = {}
    for label in ("first", "steady", "1% changed"):
        if label == "1% changed":
            for space in spaces[:: 100]:
                hub.set_stage(space, "RUNTIME_ERROR")
        now += 60
        before = commands(client)
        report, elapsed = timed_tick(watcher, now, label)
        rows[label] = (report.hub_requests, elapsed, commands(client) - before, report.alerts)
    memory = rss_mb()
    kept = kept_bytes(watcher) / max(1, len(spaces))
    ctx.close()
    hub.stop()
    return {"name": name, "mode": mode, "rows": rows, "rss": memory, "bytes": kept}


def worker(hub_url: str, redis_url: str, shards: int) -> int:
    """One of several bench workers (`--worker`): a Watcher with poll shards, told on stdin when to claim or
    tick (and at what time), answering each with one JSON line."""
    ctx, client = make_watcher(hub_url, redis_url, shards)
    watcher = ctx.watcher
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        what, now = line.split()
        if what == "claim":
            print(json.dumps({"held": sorted(watcher.shards.claim(float(now)))}), flush=True)
            continue
        report, elapsed = timed_tick(watcher, float(now), what)
        print(json.dumps({"requests": report.hub_requests, "time": elapsed, "alerts": report.alerts,
                          "spaces": report.spaces, "leader": watcher.leading, "rss": rss_mb(),
                          "bytes": kept_bytes(watcher), "held": sorted(watcher.shards.held)}), flush=True)
    ctx.close()
    return 0


def sharded(name: str, namespaces: int, per_ns: int, workers: int, latency: float, redis_url: str) -> dict:
    """The same three cycles with `workers` processes sharing the poll (SPACEOPS_POLL_SHARDS=workers): each row
    is the slowest worker's time, the requests and alerts of all of them; RSS is the largest worker's."""
    hub = HubProcess(namespaces, per_ns, latency)
    client = connect(redis_url)
    client.flushall()
    spaces = space_ids(namespaces, per_ns)
    watch_all(client, spaces)
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps([hub.url, redis_url, workers])],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]

    def ask(what: str, now: float) -> list[dict]:
        for proc in procs:
            proc.stdin.write(f"{what} {now!r}\n")
            proc.stdin.flush()
        return [json.loads(proc.stdout.readline()) for proc in procs]

    try:
        for proc in procs:
            assert json.loads(proc.stdout.readline())["ready"]
        now = time.time()
        for _ in range(6):  # claims until each holds its fair share (the first claimer takes all, then gives back)
            held = ask("claim", now)
            if all(len(h["held"]) == 1 for h in held):
                break
        rows, rss, kept = {}, 0.0, 0
        for label in ("first", "steady", "1% changed"):
            if label == "1% changed":
                for space in spaces[:: 100]:
                    hub.set_stage(space, "RUNTIME_ERROR")
            now += 60
            before = commands(client)
            answers = ask(label.split()[0].replace("%", "pct"), now)
            rows[label] = (sum(a["requests"] for a in answers), max(a["time"] for a in answers),
                           commands(client) - before, sum(a["alerts"] for a in answers))
            rows[label + " (per shard)"] = [round(a["time"], 2) for a in answers]
            rss = max(rss, *(a["rss"] for a in answers))
            kept = sum(a["bytes"] for a in answers)
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(30)
        hub.stop()
    return {"name": name, "mode": f"{workers} workers", "rows": {k: v for k, v in rows.items()
                                                                 if not k.endswith("(per shard)")},
            "per_shard": {k: v for k, v in rows.items() if k.endswith("(per shard)")}, "rss": rss,
            "bytes": kept / max(1, len(spaces))}


def run_child(name: str, namespaces: int, per_ns: int, mode: str, latency: float, url: str) -> dict:
    """One scenario in a fresh interpreter, so its RSS is that scenario's bot alone."""
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps([name, namespaces, per_ns, mode, latency, url])],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sharded(name: str, namespaces: int, per_ns: int, workers: int, latency: float, url: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--sharded",
                          json.dumps([name, namespaces, per_ns, workers, latency, url])],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_rows(result: dict) -> None:
    name, mode = result["name"], result["mode"]
    for label, (requests, elapsed, cmds, alerts) in result["rows"].items():
        print(f"{name:<18}{mode:<11}{label:<12}{requests:>8}{elapsed:>9.2f}{cmds:>10}{alerts:>8}"
              f"{result['rss']:>12.0f}{result.get('bytes', 0):>9.0f}", flush=True)
    for label, times in result.get("per_shard", {}).items():
        print(f"{'':<18}{'':<11}{label.split()[0]:<12}  each worker: {', '.join(f'{t:.2f}' for t in times)} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--quick", action="store_true", help="skip the slow runs (per-Space at 10,000; 100,000)")
    parser.add_argument("--spaces", type=int, help="only this many Spaces (planner), e.g. --spaces 2000")
    parser.add_argument("--namespaces", type=int, default=10, help="with --spaces: in this many namespaces")
    parser.add_argument("--workers", type=int, default=1, help="with --spaces: shared by this many worker processes")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--sharded", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(scenario(*json.loads(args.one))))
        return 0
    if args.sharded:
        print(json.dumps(sharded(*json.loads(args.sharded))))
        return 0
    if args.worker:
        return worker(*json.loads(args.worker))
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    url = server.url
    if args.spaces:
        per_ns = max(1, args.spaces // args.namespaces)
        name = f"{per_ns * args.namespaces:,} in {args.namespaces} ns"
        runs = [(name, args.namespaces, per_ns, "planner" if args.workers == 1 else args.workers)]
    else:
        runs = [("1,000 in 10 ns", 10, 100, "planner"), ("1,000 in 10 ns", 10, 100, "per-space"),
                ("10,000 in 10 ns", 10, 1000, "planner"), ("10,000 in 10 ns", 10, 1000, "per-space"),
                ("200 in 200 ns", 200, 1, "planner"), ("200 in 200 ns", 200, 1, "per-space"),
                ("100,000 in 100 ns", 100, 1000, "planner"), ("100,000 in 100 ns", 100, 1000, 4)]
        if args.quick:
            runs = [r for r in runs if not (r[2] == 1000 and r[3] != "planner") and r[1] != 100]
    results = []
    try:
        print(f"Hub emulator latency {args.latency * 1000:.0f} ms/request, page size 1000, "
              f"16 concurrent reads, SPACEOPS_POLL_SECONDS=60")
        print(f"{'scenario':<18}{'mode':<11}{'cycle':<12}{'hub req':>8}{'time s':>9}{'redis cmd':>10}"
              f"{'alerts':>8}{'bot RSS MB':>12}{'B/Space':>9}")
        for name, namespaces, per_ns, mode in runs:
            if isinstance(mode, int):
                result = run_sharded(name, namespaces, per_ns, mode, args.latency, url)
            else:
                result = run_child(name, namespaces, per_ns, mode, args.latency, url)
            results.append(result)
            print_rows(result)
    finally:
        server.stop()
    print("Redis commands count those run inside Lua scripts; 'first' writes every Space's baseline state.")
    print("B/Space: what the poller keeps per watched Space between cycles (its states or their prints, read "
          "times, commits, the watch set); N workers: the sum over them.")
    big = next((r for r in results if r["name"].startswith("10,000") and r["mode"] == "planner"), None)
    scattered = next((r for r in results if r["name"].startswith("200") and r["mode"] == "planner"), None)
    if scattered:
        print(f"200 scattered Spaces every 60 s: {scattered['rows']['steady'][0] * 5} requests per 5 min: the whole "
              f"free budget, so the poller keeps its reserve and polls them less often (PRO: 2,500).")
    if big:
        per_cycle = big["rows"]["steady"][0]
        per_window = per_cycle * 5
        print(f"\n10,000 Spaces every 60 s: {per_cycle} requests/cycle = {per_window} per 5 min of the free "
              f"account's 1,000 ({1000 - per_window} left for commands): "
              + ("fits." if per_window <= 800 else "does NOT fit."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
