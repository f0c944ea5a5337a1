"""The clock-skew grid: two replicas sharing one real Redis, the Hub emulator and the Slack emulator, whose own
clocks differ by −240, −60, +60 and +240 s (the second replica's machine clock is patched; Redis's is real).

Each scenario runs on the production paths (no injected `now`): ticks, hot ticks, digest ticks, clicks and
commands take their time from the one clock (bot/core/clock.py). Simulated time moves both replicas' clocks
alike (`World.step`), so a schedule or a revert hours away is reached without waiting. The second replica,
the skewed one, leads (it ticks first) while the first takes the commands, then leadership is handed over, so
every time written by one replica is compared by the other.

Each row counts what a person would see: Hub calls made, alerts and messages posted; 0 lost, 0 doubled,
and none off its time (a digest, an occurrence or a revert before it is due or more than 70 s after; hot
alerts and follow-through within 12 s).
"""

from __future__ import annotations

import calendar
import json
import threading
import time

import pytest

from tests.faults.conftest import figure, tally

SKEWS = (-240, -60, 60, 240)
ROLES = {"SPACEOPS_APPROVERS": "UAPP,UAPP2", "SPACEOPS_ADMINS": "UA", "SPACEOPS_OPERATORS": "U1"}
ROWS = ("approvals (10 clicks on both replicas)", "hot polling after a restart", "follow-through",
        "digest", "schedule occurrence", "timed upgrade's revert", "budget threshold")
HEADER = (f"{'clock-skew grid: second replica off by':<40}| {'scenario':<40}| tried | lost | doubled | off time",
          f"{'-' * 40}|{'-' * 41}|-------|------|---------|---------")
GRID: list[str] = []


class World:
    """Replica `a` keeps this machine's clock; replica `b`'s runs `skew` seconds off. Both read Redis's."""

    def __init__(self, make_bot, hub, slack, skew: float):
        self.hub, self.slack, self.skew = hub, slack, skew
        self.a, self.b = make_bot(SPACEOPS_HOT_SECONDS="1", **ROLES), make_bot(SPACEOPS_HOT_SECONDS="1", **ROLES)
        self.b.ctx.store.clock.machine = lambda: time.time() + skew

    @property
    def replicas(self):
        return self.a, self.b

    def now(self) -> float:
        return self.a.ctx.store.clock()

    def step(self, seconds: float) -> None:
        for bot in self.replicas:
            bot.ctx.store.clock.advance(seconds)

    def tick(self, *bots) -> None:
        for bot in bots or (self.b, self.a):  # b first: the skewed replica leads
            bot.ctx.watcher.tick()

    def hand_over(self) -> None:
        """b stops (releasing the lease); a takes over on its next tick."""
        self.b.ctx.watcher.stop(release=True)
        self.step(5)
        self.a.ctx.watcher.tick()
        assert self.a.ctx.watcher.leading


def count(found: int) -> tuple[int, int]:
    """(lost, doubled) for something that should have happened exactly once."""
    return (1 if found == 0 else 0), max(0, found - 1)


def first_seen(w: World, due: float, happened, run, before: float = 300, after: float = 120) -> float | None:
    """Step simulated time in 10 s steps from `before` s ahead of `due` to `after` s past it, calling `run()`
    each step; the simulated time at which `happened()` first held, or None."""
    w.step(due - before - w.now())
    while w.now() <= due + after:
        run()
        if happened():
            return w.now()
        w.step(10)
    return None


def on_time(seen: float | None, due: float, happened: int, late: float = 70) -> int:
    """1 when it happened before it was due, or more than `late` s after (one that never happened is lost)."""
    if seen is None:
        return 1 if happened else 0
    return 0 if due <= seen <= due + late else 1


# ---------------------------------------------------------------------- the rows


def approvals(w: World) -> tuple[int, int, int, int]:
    from tests.test_approvals import ask

    lost = doubled = 0
    for n, first in enumerate((w.a, w.b)):  # the first click on either replica
        space = f"acme/chat{n}"
        w.hub.add_space(space)
        pending = ask(w.a, w.slack, f"hw {space} a100-large")
        path = f"/api/spaces/{space}/hardware"
        w.hub.inject("POST", path, status=0, delay=1.2)  # the first click is inside its Hub call meanwhile
        answers: list = []

        def clicker(bot, user: str) -> None:
            answers.append(bot.click("approval:approve", pending.id, user=user, channel=pending.channel,
                                     message_ts=pending.ts))

        lead = threading.Thread(target=clicker, args=(first, "UAPP"))
        lead.start()
        deadline = time.monotonic() + 5
        while not w.hub.calls("POST", path) and time.monotonic() < deadline:
            time.sleep(0.01)
        others = [threading.Thread(target=clicker, args=(w.replicas[k % 2], ("UAPP", "UAPP2")[k % 2]))
                  for k in range(1, 10)]
        for t in others:
            t.start()
        for t in [lead, *others]:
            t.join(15)
        w.slack.wait(lambda: len([r for a in answers for r in w.slack.responses(a.response_id)]) == 10, 15)
        lo, do = count(len(w.hub.calls("POST", path)))
        lost, doubled = lost + lo, doubled + do
    return 2, lost, doubled, 0


def hot_and_follow(w: World) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    w.hub.add_space("acme/chat")
    assert "Watching" in w.a.command("/space watch acme/chat", channel="C2")["text"]
    w.tick()
    assert w.b.ctx.watcher.leading
    w.a.command("/space restart acme/chat", user="U1", channel="C1")   # taken by a, followed on b
    alerts = lambda text: [p for p in w.slack.posts("C2") if text in p["text"]]  # noqa: E731

    def within(seconds: int, done) -> bool:
        for _ in range(seconds):
            w.step(1)
            w.b.ctx.watcher.hot_tick()
            if done():
                return True
        return False

    building = within(12, lambda: alerts("is building"))
    w.hub.set_stage("acme/chat", "RUNNING")
    running = within(12, lambda: alerts("is back up"))
    within(12, lambda: w.a.ctx.watcher.follow.get("acme/chat") is None)
    # Within 12 s is the row's "on time"; one that never came is lost.
    hot = (2, int(not building) + int(not running),
           max(0, len(alerts("is building")) - 1) + max(0, len(alerts("is back up")) - 1), 0)
    announced = [m for (chan, _), m in w.slack.messages.items() if chan == "C1" and m["text"].startswith("<@U1>")]
    finished = [m for m in announced if "running again" in m["text"]]
    lost, doubled = count(len(finished))
    return hot, (1, lost, doubled + max(0, len(announced) - 1), 0)


def digest(w: World) -> tuple[int, int, int, int]:
    w.hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    # Due in ten minutes (simulated): set by a, posted by whichever replica leads then.
    due_at = (int(w.now()) // 60 + 10) * 60
    due = time.gmtime(due_at)
    at = f"{due.tm_hour:02d}:{due.tm_min:02d}"
    assert "daily digest" in w.a.command(f"/space digest <#C7|ops> daily {at} --tz UTC", user="U1")["text"]
    assert "Watching" in w.a.command("/space watch acme/* <#C7|ops>", channel="C1")["text"]
    posted = lambda: [p for p in w.slack.posts("C7") if "digest" in p["text"].lower()]  # noqa: E731

    def run():
        w.tick()
        for bot in (w.a, w.b):
            bot.ctx.fleet.digest_tick()

    seen = first_seen(w, due_at, posted, run)
    w.hand_over()
    for minute in range(2):
        w.step(60)
        w.a.ctx.watcher.tick()
        w.a.ctx.fleet.digest_tick()
    return (1, *count(len(posted())), on_time(seen, due_at, len(posted())))


def schedule(w: World) -> tuple[int, int, int, int]:
    from tests.test_schedules import next_fire, only

    w.hub.add_space("acme/demo", hardware="t4-small")
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(w.now() + 86400))   # tomorrow, this minute
    seen = w.a.command(f"/space schedule acme/demo pause at {when} --tz UTC", user="U1")
    assert "scheduled" in seen["text"], seen["text"]
    fire = next_fire(w.a, only(w.a).id)
    calls = lambda: w.hub.calls("POST", "/api/spaces/acme/demo/pause")  # noqa: E731
    seen = first_seen(w, fire, calls, w.tick)
    w.hand_over()
    for _ in range(3):
        w.step(60)
        w.a.ctx.watcher.tick()
    return (1, *count(len(calls())), on_time(seen, fire, len(calls())))


def revert(w: World) -> tuple[int, int, int]:
    from bot.schedules.store import Timed
    from tests.test_schedules import approval_of, only

    w.hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    hardware = "/api/spaces/acme/chat/hardware"
    w.tick()
    seen = w.a.command("/space hw acme/chat a100-large --for 1h", user="U1")
    assert "approver" in seen["text"], seen["text"]
    pending = approval_of(w.slack, "then back to")
    answer = w.b.click("approval:approve", pending.id, user="UAPP", channel=pending.channel,
                       message_ts=pending.ts)                           # approved on the skewed replica
    assert answer.status == 200
    assert w.slack.wait(lambda: len(w.hub.calls("POST", hardware)) == 1, 10)
    w.hub.apply_requested_hardware("acme/chat")
    timed = only(w.a, Timed)
    reverts = lambda: [c for c in w.hub.calls("POST", hardware)[1:] if c.body.get("flavor") == "t4-small"]  # noqa: E731
    w.step(timed.ends_at - 20 * 60 - w.now())
    w.tick()                                                            # the reminder
    seen = first_seen(w, timed.ends_at, reverts, w.tick)
    w.hand_over()
    for _ in range(3):
        w.step(60)
        w.a.ctx.watcher.tick()
    return (1, *count(len(reverts())), on_time(seen, timed.ends_at, len(reverts())))


def budget(w: World) -> tuple[int, int, int, int]:
    # Two minutes into next month (simulated; a replica behind still sees the last one): a never-sleeping
    # $1.50/h Space is projected past $10.
    now = time.gmtime(w.now())
    year, month = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    w.step(calendar.timegm((year, month, 1, 0, 2, 0)) - w.now())
    assert "set a budget" in w.a.command("/space budget acme/* 10/month", user="UA", channel="C9")["text"]
    w.hub.add_space("acme/gpu", hardware="a10g-large")
    w.hub.spaces["acme/gpu"]["gcTimeout"] = None
    assert "Watching" in w.a.command("/space watch acme/*", channel="C1")["text"]
    for _ in range(3):
        w.tick()
        w.step(60)
    w.hand_over()
    for _ in range(3):
        w.step(60)
        w.a.ctx.watcher.tick()
    alerts = [p for p in w.slack.posts("C9") if "projected to exceed" in p["text"]]
    return (1, *count(len(alerts)), 0)


def fresh(make_bot, hub, slack, redis_client, skew) -> World:
    redis_client.flushall()
    hub.reset()
    slack.reset()
    return World(make_bot, hub, slack, skew)


@pytest.mark.slow
@pytest.mark.parametrize("skew", SKEWS)
def test_clock_skew_grid(make_bot, hub, slack, redis_client, skew):
    results: dict[str, tuple[int, int, int, int]] = {}
    errors: dict[str, str] = {}
    scenarios = [("approvals (10 clicks on both replicas)", approvals), ("hot+follow", hot_and_follow),
                 ("digest", digest), ("schedule occurrence", schedule), ("timed upgrade's revert", revert),
                 ("budget threshold", budget)]
    for name, scenario in scenarios:
        world = fresh(make_bot, hub, slack, redis_client, skew)
        try:
            outcome = scenario(world)
        except Exception as err:  # noqa: BLE001 — a crashed row is a lost row, shown in the table
            errors[name] = f"{type(err).__name__}: {err}"
            outcome = ((2, 2, 0, 0), (1, 1, 0, 0)) if name == "hot+follow" else (1, 1, 0, 0)
        finally:
            for bot in world.replicas:
                bot.ctx.watcher.stop(release=False)
        if name == "hot+follow":
            results["hot polling after a restart"], results["follow-through"] = outcome
        else:
            results[name] = outcome
    lines = [f"{f'{skew:+d} s':<40}| {row:<40}| {results[row][0]:>5} | {results[row][1]:>4} | "
             f"{results[row][2]:>7} | {results[row][3]:>8}" for row in ROWS]
    if not GRID:
        figure("")
        for line in HEADER:
            figure(line)
    GRID.extend(lines)
    for line in lines:
        figure(line)
    table = "\n".join([*HEADER, *lines])
    print("\n" + table)
    for row in ROWS:
        tried, lost, doubled, _ = results[row]
        tally(f"clock skew {skew:+d} s: {row}", tried=tried, lost=lost, duplicated=doubled)
    assert not errors and all(lost == doubled == off == 0 for _, lost, doubled, off in results.values()), \
        f"clock-skew grid, second replica {skew:+d} s off:\n{table}\n{json.dumps(errors, indent=1)}"
