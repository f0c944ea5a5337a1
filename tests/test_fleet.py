"""The fleet end to end: roll-ups written by the poller, `/space cost`, the App Home, budgets and digests.

Stages are driven in the Hub emulator and ticks called with an injected clock; commands, events and clicks
arrive as Slack-signed HTTP; the Slack emulator records views, posts and uploaded files.
"""

from __future__ import annotations

import json
import struct
import time

import pytest

from bot.alerts.rollups import day_key, month_key
from bot.alerts.words import ALERT_ACTIONS
from bot.core.words import as_text
from bot.fleet.words import BUDGET_ACTIONS, HOME_ACTIONS

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


class Clock:
    def __init__(self, start: float):
        self.now = start

    def step(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def watch(bot, text: str, channel: str = "C1") -> None:
    seen = bot.command(f"/space watch {text}", channel=channel)
    assert "Watching" in seen["text"] or "Updated" in seen["text"], seen


def tick(bot, clock, seconds: float = 0.0):
    return bot.ctx.watcher.tick(clock.step(seconds))


def shown(reply: dict) -> str:
    return as_text(reply.get("text", ""), reply.get("blocks"))


def test_cost_fixture_running_3h_building_20min_asleep_5h(bot, hub, redis_client):
    """$0.60/h: 20 min building (free), 3 h running (billed), 5 h asleep (free) → $1.80."""
    clock = Clock(time.time() - 9 * HOUR)
    hub.add_space("acme/chat", stage="BUILDING", hardware="t4-medium", sleep=3600)
    watch(bot, "acme/chat")
    tick(bot, clock)                         # first sighting: building
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock, 20 * MIN)
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, 3 * HOUR)
    tick(bot, clock, 5 * HOUR)               # still asleep
    text = shown(bot.command("/space cost acme/chat"))
    print(text)
    assert "acme/chat — $1.80 · 3.0 h billed · t4-medium" in text, text
    assert "Total: $1.80 (estimate)" in text
    day = time.strftime("%Y-%m-%d", time.gmtime(clock.now - 9 * HOUR + 1))
    assert f"since {day}, when the bot first saw acme/chat" in text
    assert "projected at today's hardware and sleep settings" in text

    # The roll-up itself: billed seconds with the price of the time, uptime, a 400-day TTL.
    days = {time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (clock.now - 9 * HOUR, clock.now)}
    billed = sum(int(redis_client.hget(day_key("acme/chat", d), "b|t4-medium|0.6") or 0) for d in days)
    assert billed == 3 * 3600
    assert sum(int(redis_client.hget(day_key("acme/chat", d), "up") or 0) for d in days) == 3 * 3600
    some = next(d for d in days if redis_client.exists(day_key("acme/chat", d)))
    assert 399 * DAY < redis_client.ttl(day_key("acme/chat", some)) <= 400 * DAY
    month = time.strftime("%Y-%m", time.gmtime(clock.now))
    assert redis_client.hgetall(month_key("acme/chat", month)) or month != time.strftime("%Y-%m", time.gmtime(
        clock.now - 9 * HOUR))
