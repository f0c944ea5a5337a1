"""Slack fails (429 with Retry-After, 500, connection refused): replies, approval updates and alerts arrive
later, exactly once.

The emulator here runs on a port of its own (`own_slack`) so it can refuse connections and come back.
Queued deliveries are drained by ticking the watcher with a clock that moves forward.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.conftest import tally

SPACE = "acme/chat"
ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
FAULTS = ("429", "500", "refused")


def inject(own_slack, method: str, fault: str) -> None:
    if fault == "refused":
        own_slack.down()
    elif fault == "429":
        own_slack.emulator.fail(method, 429, headers={"Retry-After": "1"})
    else:
        own_slack.emulator.fail(method, 500)


class Ticker:
    """Drive the watcher (lease, poll, outbox drain) with a clock that only moves forward."""

    def __init__(self, bot):
        self.watcher = bot.ctx.watcher
        self.now = time.time()

    def __call__(self, times: int = 1, step: float = 60.0) -> None:
        for _ in range(times):
            self.now += step
            self.watcher.tick(self.now)


def ok_calls(slack, method: str) -> list:
    return slack.of(method)  # failed attempts are recorded as "<method>!failed"


# ---------------------------------------------------------------- response_url


@pytest.mark.parametrize("fault", FAULTS)
def test_command_reply_arrives_later_exactly_once(own_slack, bot_on, hub, fault):
    hub.add_space(SPACE)
    bot = bot_on(own_slack)
    slack = own_slack.emulator
    inject(own_slack, "respond", fault)
    # pause: a change announced through response_url (a restart is announced and followed by chat.postMessage)
    answer = bot.send_command("pause acme/chat")
    assert answer.status == 200
    if fault == "refused":
        own_slack.up_after(0.8)
    assert slack.wait(lambda: slack.responses(answer.response_id), timeout=10)
    time.sleep(0.5)
    seen = slack.responses(answer.response_id)
    assert len(seen) == 1 and "paused" in seen[0]["text"]
    assert len(hub.calls("POST", f"/api/spaces/{SPACE}/pause")) == 1
    tally(f"Slack {fault} on response_url")


# ---------------------------------------------------------------- approvals


def _approval_posts(slack, request_id: str | None = None) -> list:
    return [c.body for c in ok_calls(slack, "chat.postMessage")
            if c.body.get("thread_ts") is None and "approval:approve" in json.dumps(c.body.get("blocks"))]


@pytest.mark.parametrize("fault", FAULTS)
def test_approval_request_post_waits_out_slack(own_slack, bot_on, hub, fault):
    from tests.test_approvals import ask

    hub.add_space(SPACE, hardware="cpu-basic")
    bot = bot_on(own_slack, **ROLES)
    slack = own_slack.emulator
    inject(own_slack, "chat.postMessage", fault)
    if fault == "refused":
        own_slack.up_after(1.5)
    pending = ask(bot, slack, user="U1")
    assert "Sent for approval" in pending.reply
    assert len(_approval_posts(slack)) == 1
    tally(f"Slack {fault} on approval request post")


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("method", ["chat.update", "chat.postMessage"], ids=["decision edit", "requester note"])
def test_approval_updates_arrive_later_exactly_once(own_slack, bot_on, hub, method, fault):
    from tests.test_approvals import ask, buttons, thread

    hub.add_space(SPACE, hardware="cpu-basic")
    bot = bot_on(own_slack, **ROLES)
    slack = own_slack.emulator
    ticker = Ticker(bot)
    pending = ask(bot, slack, user="U1")
    inject(own_slack, method, fault)
    answer = bot.click("approval:approve", pending.id, user="UAPP", channel=pending.channel, message_ts=pending.ts)
    assert answer.status == 200
    outbox = bot.ctx.watcher.outbox
    if fault == "refused":
        # Both the edit and the note fail while Slack is away; they wait in the outbox.
        assert slack.wait(lambda: outbox.pending() >= 2 or None, timeout=10) or outbox.pending() >= 2
        own_slack.up()
    assert slack.wait(lambda: slack.responses(answer.response_id), timeout=10), "the approver heard nothing"
    ticker(times=4, step=5)
    msg = slack.messages[(pending.channel, pending.ts)]
    assert msg["updates"] == 1 and "Approved" in json.dumps(msg["blocks"]) and buttons(msg) == []
    notes = thread(slack, pending)
    assert len(notes) == 1 and "Approved" in notes[0]
    assert len(hub.calls("POST", f"/api/spaces/{SPACE}/hardware")) == 1
    assert outbox.pending() == 0
    if fault != "refused":
        assert len(slack.of(f"{method}!failed")) == 1  # the fault was hit, then delivered from the outbox
    ticker(times=3, step=60)
    assert slack.messages[(pending.channel, pending.ts)]["updates"] == 1 and len(thread(slack, pending)) == 1
    tally(f"Slack {fault} on approval {method}")


# ---------------------------------------------------------------- alerts


@pytest.mark.parametrize("fault", FAULTS)
def test_alert_and_recovery_edit_arrive_later_exactly_once(own_slack, bot_on, hub, fault):
    hub.add_space(SPACE)
    bot = bot_on(own_slack)
    slack = own_slack.emulator
    ticker = Ticker(bot)
    assert "Watching" in bot.command("watch acme/chat")["text"]
    ticker()
    inject(own_slack, "chat.postMessage", fault)
    hub.set_stage(SPACE, "RUNTIME_ERROR", error="boom")
    ticker()
    assert slack.posts() == []
    own_slack.up()
    ticker(times=3, step=30)
    alerts = slack.posts()
    assert len(alerts) == 1 and "crashed" in alerts[0]["text"]
    root = next(k for k, m in slack.messages.items() if m["text"] == alerts[0]["text"])
    inject(own_slack, "chat.update", fault)
    hub.set_stage(SPACE, "RUNNING")
    ticker()
    own_slack.up()
    ticker(times=3, step=30)
    assert slack.messages[root]["updates"] == 1
    ticker(times=3)
    assert slack.messages[root]["updates"] == 1
    top = [p for p in slack.posts() if not p.get("thread_ts")]
    replies = [p for p in slack.posts() if p.get("thread_ts")]
    assert len(top) == 1 and len(replies) == 1, (top, replies)  # the alert, and "back up" in its thread
    tally(f"Slack {fault} on alert post + edit", tried=2)


# ---------------------------------------------------------------- the real process


@pytest.mark.slow
def test_real_process_delivers_a_failed_approval_edit_later(serve_bot, hub, slack):
    """`python -m bot serve` with its scheduler: the outbox drain delivers the edit Slack refused."""
    from tests.test_approvals import ask, buttons

    hub.add_space(SPACE, hardware="cpu-basic")
    proc = serve_bot(scheduler=True, SPACEOPS_POLL_SECONDS="1", **ROLES)
    pending = ask(proc, slack, user="U1")
    slack.fail("chat.update", 429, headers={"Retry-After": "1"})
    answer = proc.click("approval:approve", pending.id, user="UAPP", channel=pending.channel, message_ts=pending.ts)
    assert answer.status == 200
    assert slack.wait(lambda: slack.messages[(pending.channel, pending.ts)]["updates"] >= 1, timeout=15)
    time.sleep(2.5)
    msg = slack.messages[(pending.channel, pending.ts)]
    assert msg["updates"] == 1 and buttons(msg) == []
    assert len(slack.of("chat.update!failed")) == 1
    assert len(hub.calls("POST", f"/api/spaces/{SPACE}/hardware")) == 1
    assert proc.alive and "Traceback" not in proc.output()
    tally("Slack 429 on approval chat.update (process)")
