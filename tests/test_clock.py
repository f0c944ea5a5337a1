"""One clock: every time another replica compares is Redis's (bot/core/clock.py).

The static check reads the feature code's syntax trees (comments and strings do not count); the behaviour
tests run replicas whose own clocks are minutes off while Redis's stays real (case 18.2 of issue 18).
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from bot.core.clock import Clock

ROOT = Path(__file__).resolve().parents[1]
CLOCK_MODULE = ROOT / "bot" / "core" / "clock.py"
# Calls that read this machine's wall clock. time.monotonic/perf_counter (local timeouts) are fine.
WALL = {("time", "time"), ("time", "time_ns"), ("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
        ("datetime", "today")}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def wall_clock_reads(path: Path) -> list[str]:
    """`file:line: what` for each read of the machine's wall clock, or `time.time` passed as a value."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = {}  # a bare name → (module, attribute): `from time import time`
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    found = []
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called.add(id(node.func))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        dotted = _dotted(node)
        if not dotted:
            continue
        if len(dotted) == 1 and dotted[0] in imported:
            module, name = imported[dotted[0]]
            pair = (module, name) if module == "time" else None
        else:
            pair = tuple(dotted[-2:]) if len(dotted) >= 2 else None
        if pair in WALL and (id(node) in called or pair in (("time", "time"), ("time", "time_ns"))):
            what = ".".join(dotted) + ("()" if id(node) in called else " passed as a clock")
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {what}")
    return found


def feature_files() -> list[Path]:
    files = sorted((ROOT / "bot").rglob("*.py")) + sorted((ROOT / "handlers").rglob("*.py"))
    return [f for f in files if f != CLOCK_MODULE]


def test_feature_code_never_reads_the_machines_wall_clock():
    found = [line for path in feature_files() for line in wall_clock_reads(path)]
    assert not found, ("feature code reads this machine's clock; take the time from the one clock "
                       "(bot/core/clock.py, `store.clock`):\n" + "\n".join(found))


def test_the_static_check_sees_calls_and_passed_clocks_but_not_comments(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import time\nfrom datetime import date, datetime\nfrom time import time as now\n"
                      "# time.time() in a comment\ns = 'datetime.now()'\n"
                      "a = time.time()\nb = datetime.now()\nc = datetime.utcnow()\nd = date.today()\n"
                      "def f(clock=time.time): pass\ne = now()\nf = time.monotonic()\ng = time.perf_counter()\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = wall_clock_reads(sample)
    finally:
        ROOT = saved
    assert [line.split(":")[1] for line in found] == ["6", "7", "8", "9", "10", "11"], found


# ---------------------------------------------------------------------- the clock itself


class Steps:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_the_clock_is_redis_time_extrapolated_without_a_round_trip_per_call(redis_client):
    mono = Steps()
    clock = Clock(redis_client, refresh=5, machine=lambda: time.time() + 240, monotonic=mono)
    seconds, micros = redis_client.time()
    first = clock()
    assert abs(first - (seconds + micros / 1e6)) < 1      # Redis's time, not the machine's (240 s ahead)
    calls = lambda: redis_client.info("commandstats")["cmdstat_time"]["calls"]  # noqa: E731
    before = calls()
    for _ in range(100):
        mono.t += 0.03
        clock()
    assert clock() == pytest.approx(first + 3)            # carried forward on the monotonic clock
    assert calls() == before                              # no TIME round trip for those 101 calls
    mono.t += 5
    clock()
    assert calls() == before + 1                          # measured again after `refresh` seconds


def test_when_redis_is_unreachable_the_clock_keeps_the_last_offset(redis_server):
    from bot.core.store import connect

    client = connect(redis_server.url)
    mono = Steps()
    clock = Clock(client, refresh=5, machine=lambda: time.time() - 200, monotonic=mono)
    first = clock()
    broken = connect("redis://127.0.0.1:1/0")  # nothing listens there
    clock.redis = broken
    mono.t += 60
    assert clock() == pytest.approx(first + 60)           # not the machine's clock, 200 s behind
    mono.t += 60
    assert clock() == pytest.approx(first + 120)
    clock.redis = client
    mono.t += 5
    assert abs(clock() - time.time()) < 2                 # measured again once Redis answers
    client.close()


def test_a_process_that_never_reached_redis_uses_its_own_clock():
    from bot.core.store import connect

    clock = Clock(connect("redis://127.0.0.1:1/0"), machine=lambda: 42.0)
    assert clock() == 42.0
