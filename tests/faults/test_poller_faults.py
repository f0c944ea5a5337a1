"""The Hub fails while the poller reads: a Space keeps its last known stage, no false alert is raised,
repeated failures are reported once, and polling resumes by itself. Ticks are driven directly.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port
from tests.faults.conftest import tally

SPACE = "acme/chat"
RATE = {"RateLimit": '"api";r=0;t=42', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'}
FAULTS = {
    "500": {"status": 500, "body": {"error": "Internal Error"}},
    "503": {"status": 503, "body": "Service Unavailable"},
    "429 + RateLimit": {"status": 429, "body": {"error": "Rate limit exceeded"}, "headers": RATE},
    "hang > timeout": {"status": 200, "body": {"stage": "RUNTIME_ERROR"}, "delay": 2.5},
    "malformed JSON": {"status": 200, "body": b"{\"stage\": RUNN", "headers": {"Content-Type": "application/json"}},
    "JSON of the wrong shape (list)": {"status": 200, "body": [1, 2, 3]},
    "JSON of the wrong shape (stage null)": {"status": 200, "body": {"stage": None, "hardware": "x"}},
    "JSON of the wrong shape (string)": {"status": 200, "body": b"\"RUNNING\"",
                                         "headers": {"Content-Type": "application/json"}},
    "403": {"status": 403, "body": {"error": "forbidden"}, "headers": {"X-Error-Message": "forbidden"}},
}
READ_REPORTS = ("can't read", "read again", "could not poll")


class Ticker:
    def __init__(self, bot, start: float | None = None):
        self.watcher = bot.ctx.watcher
        self.now = start or time.time()

    def __call__(self, times: int = 1, step: float = 60.0):
        for _ in range(times):
            self.now += step
            self.watcher.tick(self.now)


def stage_alerts(slack) -> list[dict]:
    """Alerts about a stage, leaving out the one-line read-failure reports."""
    return [p for p in slack.posts() if not any(words in p["text"] for words in READ_REPORTS)]


def stored_stage(redis_client, space: str = SPACE) -> str | None:
    from bot.alerts.keys import state_key

    return redis_client.hget(state_key(space), "stage")


@pytest.mark.slow
@pytest.mark.parametrize("pattern", [False, True], ids=["per-Space read", "namespace listing"])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_poll_keeps_the_last_stage_and_raises_no_false_alert(bot, hub, slack, redis_client, fault, pattern):
    hub.add_space(SPACE)
    tick = Ticker(bot)
    assert "Watching" in bot.command("watch acme/*" if pattern else "watch acme/chat")["text"]
    tick()
    assert stored_stage(redis_client) == "RUNNING"
    hub.inject("GET", "/api/spaces", times=1000, **FAULTS[fault])
    tick(times=2 if fault.startswith("hang") else 4)
    assert stage_alerts(slack) == [], stage_alerts(slack)
    assert len([p for p in slack.posts() if "can't read" in p["text"]]) <= 1   # reported once at most
    assert stored_stage(redis_client) == "RUNNING"
    hub.clear_faults()
    tick(times=2)
    assert stage_alerts(slack) == []                                              # back, and still RUNNING
    hub.set_stage(SPACE, "RUNTIME_ERROR", error="boom")
    tick(times=2)
    crashed = stage_alerts(slack)
    assert len(crashed) == 1 and "crashed" in crashed[0]["text"]                  # and it still sees changes
    tally(f"poller: Hub {fault}", duplicated=len(crashed) - 1)


def test_an_unknown_stage_is_one_alert_in_words_not_a_crash(bot, hub, slack, redis_client):
    hub.add_space(SPACE)
    tick = Ticker(bot)
    bot.command("watch acme/chat")
    tick()
    hub.set_stage(SPACE, "WARP_DRIVE")
    tick(times=3)
    alerts = stage_alerts(slack)
    assert len(alerts) == 1 and "warp drive" in alerts[0]["text"].lower()
    assert stored_stage(redis_client) == "WARP_DRIVE"
    tally("poller: Hub unknown stage")


def test_hub_refusing_connections_during_polls(make_bot, hub, slack, redis_client):
    hub.add_space(SPACE)
    first = make_bot()
    tick = Ticker(first)
    first.command("watch acme/chat")
    tick()
    first.close()                                   # releases the poll lease
    refused = make_bot(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    later = Ticker(refused, tick.now)
    later(times=3)
    assert stage_alerts(slack) == [] and stored_stage(redis_client) == "RUNNING"
    refused.close()
    back = make_bot()
    again = Ticker(back, later.now)
    again(times=2)
    assert stage_alerts(slack) == []
    hub.set_stage(SPACE, "PAUSED")
    again(times=2)
    assert len(stage_alerts(slack)) == 1
    tally("poller: Hub connection refused")
