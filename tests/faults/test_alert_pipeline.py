"""The alert pipeline is never silent and never double: deadlines on Hub reads, poison entries and states,
a burst for one channel, replicas with skewed clocks, and a Slack post whose answer was lost.

Ticks are driven directly with an injected clock; a tick that could hang runs in a thread joined with a
generous bound, so a hang fails the test instead of the session.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.faults.conftest import tally

MIN = 60.0
LIVENESS = 60.0  # a tick that has not returned by then is hung (they take a few seconds at most)


class Ticker:
    def __init__(self, bot, start: float | None = None):
        self.watcher = bot.ctx.watcher
        self.now = start or time.time()

    def __call__(self, times: int = 1, step: float = MIN):
        for _ in range(times):
            self.now += step
            finished = run_bounded(lambda: self.watcher.tick(self.now))
            assert finished, "a poll tick did not return: the pipeline is stuck"


def run_bounded(fn) -> bool:
    """Run fn in a thread; True when it returned within LIVENESS seconds."""
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 — re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(LIVENESS)
    if errors:
        raise errors[0]
    return not thread.is_alive()


def texts(slack, channel: str | None = None) -> list[str]:
    return [p["text"] for p in slack.posts(channel)]


# ---------------------------------------------------------------------------------------- deadlines

@pytest.mark.parametrize("how", ["hang", "stall"], ids=["hangs forever", "stalls mid-page"])
def test_a_hung_namespace_listing_does_not_stop_the_pipeline(make_bot, hub, slack, caplog, how):
    bot = make_bot(SPACEOPS_HUB_TIMEOUT="1")
    for space in ("acme/chat", "acme/other"):
        hub.add_space(space)
    hub.add_space("beta/app")
    for target in ("acme/*", "beta/app", "gamma/site"):
        if target == "gamma/site":
            hub.add_space(target)
        assert "Watching" in bot.command(f"/space watch {target}")["text"]
    tick = Ticker(bot)
    tick()                                                     # baseline
    hub.inject("GET", "/api/spaces", exact=True, times=10_000, **{how: True})
    hub.set_stage("beta/app", "RUNTIME_ERROR", error="boom")
    caplog.set_level(logging.INFO, logger="bot.alerts.poller")
    tick()                                                     # the hung listing ends; the cycle goes on
    assert [t for t in texts(slack) if "beta/app" in t and "crashed" in t], texts(slack)
    tick(times=4)
    unreadable = [t for t in texts(slack) if "can't read" in t]
    assert sorted(t.split("spaces/")[1].split("|")[0] for t in unreadable) == ["acme/chat", "acme/other"], unreadable
    hung = [r for r in caplog.records if "Hub read of acme failed" in r.getMessage()]
    assert len(hung) == 1 and "timeout" in hung[0].getMessage()          # the hang is reported once
    hub.clear_faults()
    hub.set_stage("acme/chat", "PAUSED")
    tick()
    assert [t for t in texts(slack) if "acme/chat" in t and "paused" in t], texts(slack)
    assert len([r for r in caplog.records if "Hub reads of acme work again" in r.getMessage()]) == 1
    crashed = [t for t in texts(slack) if "beta/app" in t and "crashed" in t]
    tally(f"alerts: namespace listing {'hangs forever' if how == 'hang' else 'stalls mid-page'}",
          duplicated=len(crashed) - 1)


def test_every_request_of_the_client_has_a_timeout(make_bot, hub):
    """`list_spaces` passes timeout=None (no timeout at all in httpx); the transport gives it one."""
    bot = make_bot(SPACEOPS_HUB_TIMEOUT="1")
    hub.add_space("acme/chat")
    hub.inject("GET", "/api/spaces", exact=True, hang=True, times=10)
    outcome: list = []

    def listing():
        try:
            list(bot.ctx.spaces.api.list_spaces(author="acme"))
        except Exception as err:  # noqa: BLE001 — what the client raised is the result
            outcome.append(err)

    assert run_bounded(listing), "list_spaces hung: the request had no timeout"
    assert outcome and "timeout" in type(outcome[0]).__name__.lower()
    tally("alerts: request without a timeout")


def test_a_log_stream_that_keeps_sending_keepalives_is_cut_short(make_bot, hub, slack):
    bot = make_bot()
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat")
    tick = Ticker(bot)
    tick()
    hub.logs["acme/chat"] = ["Loading model...", "torch.OutOfMemoryError: CUDA out of memory"]
    hub.inject("GET", "/logs/", keepalive=0.2, times=100)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    started = time.monotonic()
    tick()
    waited = time.monotonic() - started
    posts = slack.posts()
    assert len(posts) == 1 and "crashed" in posts[0]["text"]
    assert "torch.OutOfMemoryError" in str(posts[0]["blocks"])      # the lines that came are kept
    assert waited < LIVENESS
    tick(times=2)
    assert len(slack.posts()) == 1
    tally("alerts: log stream sends keep-alives forever", duplicated=len(slack.posts()) - 1)
