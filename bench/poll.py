"""Poll benchmark (not a test): Hub requests, cycle time, Redis commands and bot memory per cycle.

    .venv/bin/python bench/poll.py

Runs the Hub emulator in a child process (20 ms per request) so the memory figure is the bot's, and
its own redis-server on a free port. For each scenario it times the first cycle (baseline: every
state written), a steady cycle (nothing changed) and a cycle where 1% of the Spaces changed stage,
once with the planner (batched where cheaper) and once forced to one request per Space.
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


def scenario(name: str, namespaces: int, per_ns: int, mode: str, latency: float, redis_url: str) -> dict:
    hub = HubProcess(namespaces, per_ns, latency)
    client = connect(redis_url)
    client.flushall()
    settings = Settings.from_env({"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "REDIS_URL": redis_url,
                                  "SPACEOPS_POLL_SECONDS": "60", "SPACEOPS_HUB_TIMEOUT": "30"})
    ctx = build_context(settings, redis_client=client, poster=ConsolePoster(open(os.devnull, "w")))
    watcher = ctx.watcher
    spaces = [f"ns{n:03d}/space-{i:05d}" for n in range(namespaces) for i in range(per_ns)]
    pipe = client.pipeline(transaction=False)
    for space in spaces:
        pipe.hset("spaceops:watches", f"C{hash(space) % 20}|{space}", '{"only": []}')
    pipe.execute()
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
        profile = os.environ.get("BENCH_PROFILE")
        if profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        report = watcher.tick(now)
        elapsed = time.perf_counter() - start
        if profile:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{label.split()[0].replace('%', 'pct')}")
        rows[label] = (report.hub_requests, elapsed, commands(client) - before, report.alerts)
    memory = rss_mb()
    ctx.close()
    hub.stop()
    return {"name": name, "mode": mode, "rows": rows, "rss": memory}


def run_child(name: str, namespaces: int, per_ns: int, mode: str, latency: float, url: str) -> dict:
    """One scenario in a fresh interpreter, so its RSS is that scenario's bot alone."""
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps([name, namespaces, per_ns, mode, latency, url])],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--quick", action="store_true", help="skip the slow per-Space run at 10,000")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(scenario(*json.loads(args.one))))
        return 0
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    url = server.url
    runs = [("1,000 in 10 ns", 10, 100, "planner"), ("1,000 in 10 ns", 10, 100, "per-space"),
            ("10,000 in 10 ns", 10, 1000, "planner"), ("10,000 in 10 ns", 10, 1000, "per-space"),
            ("200 in 200 ns", 200, 1, "planner"), ("200 in 200 ns", 200, 1, "per-space")]
    if args.quick:
        runs = [r for r in runs if not (r[2] == 1000 and r[3] == "per-space")]
    results = []
    try:
        print(f"Hub emulator latency {args.latency * 1000:.0f} ms/request, page size 1000, "
              f"16 concurrent reads, SPACEOPS_POLL_SECONDS=60")
        print(f"{'scenario':<17}{'mode':<11}{'cycle':<12}{'hub req':>8}{'time s':>9}{'redis cmd':>10}"
              f"{'alerts':>8}{'bot RSS MB':>12}")
        for name, namespaces, per_ns, mode in runs:
            result = run_child(name, namespaces, per_ns, mode, args.latency, url)
            results.append(result)
            for label, (requests, elapsed, cmds, alerts) in result["rows"].items():
                print(f"{name:<17}{mode:<11}{label:<12}{requests:>8}{elapsed:>9.2f}{cmds:>10}{alerts:>8}"
                      f"{result['rss']:>12.0f}", flush=True)
    finally:
        server.stop()
    big = next(r for r in results if r["name"].startswith("10,000") and r["mode"] == "planner")
    per_cycle = big["rows"]["steady"][0]
    per_window = per_cycle * 5
    scattered = next(r for r in results if r["name"].startswith("200") and r["mode"] == "planner")
    print("Redis commands count those run inside Lua scripts; 'first' writes every Space's baseline state.")
    print(f"200 scattered Spaces every 60 s: {scattered['rows']['steady'][0] * 5} requests per 5 min: the whole "
          f"free budget, so the poller keeps its reserve and polls them less often (PRO: 2,500).")
    print(f"\n10,000 Spaces every 60 s: {per_cycle} requests/cycle = {per_window} per 5 min of the free "
          f"account's 1,000 ({1000 - per_window} left for commands): "
          + ("fits." if per_window <= 800 else "does NOT fit."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
