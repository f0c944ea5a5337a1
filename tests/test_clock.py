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


@pytest.mark.slow
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


def test_a_new_measurement_a_few_ms_behind_does_not_step_the_clock_back():
    mono = Steps()
    mono.t = 0.0
    clock = Clock(None, monotonic=mono)
    clock._base = (1000.0, 0.0)          # measured at monotonic 0
    mono.t = 5.0
    assert clock() == 1005.0
    clock._base = (1004.995, 5.0)        # measured again: Redis says 5 ms less than the extrapolation
    assert clock() == 1005.0             # observation times must increase: no step back
    mono.t = 5.01
    assert clock() == pytest.approx(1005.005)
    clock._base = (900.0, 5.01)          # a real correction (another Redis server) is taken as it is
    assert clock() == 900.0


def test_a_process_that_never_reached_redis_uses_its_own_clock():
    from bot.core.store import connect

    clock = Clock(connect("redis://127.0.0.1:1/0"), machine=lambda: 42.0)
    assert clock() == 42.0


# ---------------------------------------------------------------------- case 18.2: replicas whose clocks are off


def off(bot, seconds: float) -> None:
    """This replica's own clock runs `seconds` ahead (or behind); Redis's stays real."""
    bot.ctx.store.clock.machine = lambda: time.time() + seconds


def announcement(slack, channel="C1"):
    return next(((ts, m) for (chan, ts), m in slack.messages.items()
                 if chan == channel and m["text"].startswith("<@")), (None, None))


def hot_until(bot, done, seconds: float = 10.0) -> bool:
    """Run the production hot tick (no injected time) until `done()`; the Space is due every 1 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bot.ctx.watcher.hot_tick()
        if done():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("skew", [-200, -60, 60, 200])
def test_hot_polling_and_follow_through_go_on_when_the_replicas_clock_is_off(make_bot, hub, slack, skew):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_HOT_SECONDS="1")
    off(bot, skew)
    assert "Watching" in bot.command("/space watch acme/chat", channel="C2")["text"]
    bot.ctx.watcher.tick()                                    # the baseline, on the production path
    bot.command("/space restart acme/chat", user="UALICE", channel="C1")
    alerts = lambda: [p["text"] for p in slack.posts("C2")]  # noqa: E731
    # Hot reads go on (the lease is not taken for expired), and their writes pass the fence.
    assert hot_until(bot, lambda: any("is building" in text for text in alerts())), alerts()
    hub.set_stage("acme/chat", "RUNNING")
    assert hot_until(bot, lambda: any("is back up" in text for text in alerts())), alerts()
    # The announcement finishes.
    assert hot_until(bot, lambda: "running again" in (announcement(slack)[1] or {}).get("text", "")), \
        announcement(slack)
    assert bot.ctx.watcher.follow.get("acme/chat") is None


def approve_on_both(replicas, slack, pending, clicks: int = 10) -> list[str]:
    """The first click on replicas[0] is inside its Hub call when the others arrive on both replicas."""
    import threading

    answers = []

    def clicker(n: int) -> None:
        answers.append(replicas[n % 2].click("approval:approve", pending.id, user=("UAPP", "UAPP2")[n % 2],
                                             channel=pending.channel, message_ts=pending.ts))

    first = threading.Thread(target=clicker, args=(0,))
    first.start()
    deadline = time.monotonic() + 5
    while not replicas[0].hub.calls("POST") and time.monotonic() < deadline:
        time.sleep(0.01)
    threads = [threading.Thread(target=clicker, args=(n,)) for n in range(1, clicks)]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join(15)
    replies = slack.wait(lambda: len([r for a in answers for r in slack.responses(a.response_id)]) == clicks
                         and [r["text"] for a in answers for r in slack.responses(a.response_id)], timeout=15)
    assert replies, "not every click was answered"
    return replies


@pytest.mark.parametrize("skew", [-200, -60, 60, 200])
def test_an_approval_is_applied_once_when_the_replicas_clocks_differ(make_bot, hub, slack, skew):
    from tests.test_approvals import HARDWARE, ROLES, ask

    hub.add_space("acme/chat")
    replicas = [make_bot(**ROLES), make_bot(**ROLES)]
    off(replicas[1], skew)
    pending = ask(replicas[0], slack)
    hub.inject("POST", HARDWARE, status=0, delay=1.2)  # the first click's Hub call lasts while the others arrive
    replies = approve_on_both(replicas, slack, pending)
    assert len(hub.calls("POST", HARDWARE)) == 1, replies
    assert sum(text.startswith("Approved") for text in replies) == 1, replies


@pytest.mark.parametrize("skew", [-200, -60, 60, 200])
def test_an_approved_resume_restarts_once_when_the_replicas_clocks_differ(make_bot, hub, slack, skew):
    from tests.test_approvals import ROLES, ask

    hub.add_space("acme/chat", stage="PAUSED", hardware=None, requested="a100-large", sleep=3600)
    replicas = [make_bot(**ROLES), make_bot(**ROLES)]
    off(replicas[1], skew)
    pending = ask(replicas[0], slack, "resume acme/chat")
    hub.inject("POST", "/api/spaces/acme/chat/restart", status=0, delay=1.2)
    replies = approve_on_both(replicas, slack, pending)
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1, replies
