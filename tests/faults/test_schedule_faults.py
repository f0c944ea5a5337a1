"""Schedules under faults, and one real occurrence through `python -m bot serve`.

- A schedule fires for real in the serve process (its APScheduler poll job, a 1 s poll) within a minute.
- Redis restarted (persistence on) between creation and the first run: the run happens, once.
- Redis down at the fire time and back within the grace: the run happens late, once.
- The bot SIGKILLed at the fire time, a new process started: the occurrence runs exactly once.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from bot.schedules.store import ScheduleStore
from tests.conftest import RedisServer
from tests.faults.conftest import tally
from tests.faults.test_process_kill import wait_for
from tests.faults.test_redis_faults import kill9

SPACE = "acme/demo"
PAUSE = f"/api/spaces/{SPACE}/pause"
ENV = {"SPACEOPS_POLL_SECONDS": "1", "SPACEOPS_HUB_TIMEOUT": "1"}
LEAD = 6.0  # seconds from the schedule's creation to its first occurrence in the kill test


def next_minute(margin: float = 12.0) -> datetime:
    """The next whole minute at least `margin` seconds away (UTC)."""
    now = datetime.now(timezone.utc)
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return minute if (minute - now).total_seconds() >= margin else minute + timedelta(minutes=1)


@pytest.mark.slow
def test_a_real_occurrence_fires_in_the_serve_process(serve_bot, hub, slack):
    hub.add_space(SPACE, hardware="t4-small")
    proc = serve_bot(scheduler=True, **ENV)
    fire = next_minute()
    seen = proc.command(f"schedule {SPACE} pause at {fire:%Y-%m-%d %H:%M} --tz UTC")
    assert "scheduled pause" in seen["text"] and f"{fire:%H:%M} UTC" in seen["text"], seen["text"]
    left = (fire - datetime.now(timezone.utc)).total_seconds()
    assert wait_for(lambda: hub.calls("POST", PAUSE), left + 25, step=0.2), proc.output()[-3000:]
    fired_at = time.time()
    assert fired_at - fire.timestamp() < 20  # a poll or two after its time (generous for a busy machine)
    announced = wait_for(lambda: [p for p in slack.posts("C1") if "paused `acme/demo`" in p["text"]], 10, 0.1)
    time.sleep(2)
    assert len(hub.calls("POST", PAUSE)) == 1 and len(announced) == 1
    assert "finished" in proc.command("schedules")["text"]
    tally("schedule: real occurrence in the serve process", tried=1)


@pytest.mark.slow
def test_redis_restart_between_creation_and_first_run(make_bot, hub, slack, tmp_path):
    server = RedisServer(tmp_path, persistent=True)
    try:
        hub.add_space(SPACE, hardware="t4-small")
        bot = make_bot(redis_url=server.url)
        assert "scheduled" in bot.command(f"schedule {SPACE} pause daily 19:00 --tz Europe/Paris")["text"]
        [s] = bot.ctx.schedules.store.all()
        kill9(server)
        server.start()
        again = make_bot(redis_url=server.url)  # and a bot restart, for good measure
        [kept] = again.ctx.schedules.store.all()
        assert kept == s
        from bot.schedules.when import next_after, parse_when, zone

        fire = next_after(parse_when(s.when), zone(s.tz), s.cursor, s.created_at)
        for bot_ in (again, bot, again):
            bot_.ctx.watcher.tick(fire + 3)
        calls = len(hub.calls("POST", PAUSE))
        assert calls == 1
        tally("schedule: Redis restart before the first run", tried=1, lost=1 - min(calls, 1),
              duplicated=max(calls - 1, 0))
    finally:
        server.stop()


def test_redis_down_at_the_fire_time_runs_late_once(make_bot, hub, slack, tmp_path):
    server = RedisServer(tmp_path, persistent=True)
    try:
        hub.add_space(SPACE, hardware="t4-small")
        bot = make_bot(redis_url=server.url)
        assert "scheduled" in bot.command(f"schedule {SPACE} pause every 1h --tz UTC")["text"]
        [s] = bot.ctx.schedules.store.all()
        fire = s.created_at + 3600
        bot.ctx.watcher.tick(fire - 30)
        server.stop()
        bot.ctx.watcher._scheduled(lambda: bot.ctx.watcher.tick(fire + 1))  # Redis away: the tick is skipped
        assert hub.calls("POST", PAUSE) == []
        server.start()
        bot.ctx.watcher.tick(fire + 5 * 60)
        bot.ctx.watcher.tick(fire + 6 * 60)
        calls = len(hub.calls("POST", PAUSE))
        assert calls == 1
        tally("schedule: Redis down at the fire time", tried=1, lost=1 - min(calls, 1), duplicated=max(calls - 1, 0))
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("offset", [-0.2, 0.6])
def test_bot_killed_at_the_fire_time(serve_bot, hub, slack, redis_client, offset):
    """SIGKILL a hair before or just after the fire time, start another process: one Hub call."""
    hub.add_space(SPACE, hardware="t4-small")
    a = serve_bot(scheduler=True, **ENV)
    assert "scheduled" in a.command(f"schedule {SPACE} pause every 1m --tz UTC")["text"]
    store = ScheduleStore(redis_client)
    [s] = store.all()
    # As if it had been made 54 s ago: its first occurrence is 6 s away instead of a minute (the kill, the
    # takeover and the one Hub call are the same; only the wait for the minute is gone).
    began = s.created_at - (60 - LEAD)
    store.update(s.id, created_at=began, cursor=began)
    fire = began + 60
    hub.latency = 0.3  # the runtime read and the pause take a while: a kill can land inside them
    time.sleep(max(0.0, fire + offset - time.time()))
    a.kill()
    b = serve_bot(scheduler=True, **ENV)
    assert wait_for(lambda: hub.calls("POST", PAUSE), 60, step=0.2), b.output()[-3000:]
    time.sleep(4)
    calls = len(hub.calls("POST", PAUSE))
    hub.latency = 0.0
    assert calls == 1, calls
    assert b.alive
    tally("schedule: bot killed at the fire time", tried=1, lost=1 - min(calls, 1), duplicated=max(calls - 1, 0))
