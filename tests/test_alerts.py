"""Alerts end to end: a real Redis, the Hub emulator driving stages, the Slack emulator recording posts.

Ticks are called directly with an injected clock; nothing sleeps for an interval.
"""

from __future__ import annotations

import time

import pytest

T0 = time.time()
MIN = 60.0


@pytest.fixture
def watcher_of():
    return lambda bot: bot.ctx.extras["watcher"]


class Clock:
    """The injected `now`: starts at the real time so mutes set by commands line up."""

    def __init__(self):
        self.now = time.time()

    def step(self, seconds: float = MIN) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock():
    return Clock()


def tick(bot, clock, seconds: float = MIN):
    return bot.ctx.extras["watcher"].tick(clock.step(seconds))


def watch(bot, text: str, channel: str = "C1") -> dict:
    seen = bot.command(f"/space {text}", channel=channel)
    assert "Watching" in seen["text"] or "Updated" in seen["text"], seen
    return seen


def posts(slack, channel=None):
    return slack.posts(channel)


def test_transition_posts_once_per_watching_channel(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat", "C1")
    watch(bot, "watch acme/* <#C2|ops>", "C1")
    tick(bot, clock)                       # baseline: no alert
    assert posts(slack) == []
    tick(bot, clock)                       # nothing changed
    assert posts(slack) == []
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory <!channel>")
    hub.logs["acme/chat"] = [f"line {i}" for i in range(50)] + ["Traceback: boom"]
    tick(bot, clock)
    c1, c2 = posts(slack, "C1"), posts(slack, "C2")
    assert len(c1) == 1 and len(c2) == 1
    text = str(c1[0]["blocks"])
    assert "crashed" in c1[0]["text"] and "after 2 min running" in c1[0]["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "Traceback: boom" in text and "line 10" not in text   # last lines only
    assert "alert:restart" in text
    tick(bot, clock)
    assert len(posts(slack)) == 2                                  # unchanged: nothing more
