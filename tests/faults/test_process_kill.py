"""Replicas of `python -m bot serve` sharing one Redis; one is SIGKILLed mid-poll or mid-approval.

The other takes over (poll lease: 2.5 intervals; an `applying` claim: its lease, 3 × Hub timeout + 5 s)
without a duplicate alert, a lost alert, or an approval applied twice.
"""

from __future__ import annotations

import json
import time

import pytest

from bot.alerts.keys import LEASE
from tests.faults.conftest import tally

SPACE = "acme/chat"
HARDWARE = f"/api/spaces/{SPACE}/hardware"
ENV = {"SPACEOPS_APPROVERS": "UAPP,UAPP2", "SPACEOPS_ADMINS": "UADM", "SPACEOPS_POLL_SECONDS": "1",
       "SPACEOPS_HUB_TIMEOUT": "1"}


def wait_for(predicate, timeout: float, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    return predicate()


def leader_then_follower(serve_bot, redis_client):
    """Start A, let it take the poll lease, then start B: A is the leader to kill."""
    a = serve_bot(scheduler=True, **ENV)
    assert wait_for(lambda: redis_client.get(LEASE), 10), "A never took the poll lease"
    b = serve_bot(scheduler=True, **ENV)
    return a, b


@pytest.mark.slow
def test_leader_killed_mid_poll_hands_over_without_duplicate_or_loss(serve_bot, hub, slack, redis_client):
    hub.add_space(SPACE)
    a, b = leader_then_follower(serve_bot, redis_client)
    assert "Watching" in a.command("watch acme/chat")["text"]
    assert wait_for(lambda: any(r.path.endswith("/runtime") or r.path == "/api/spaces" for r in hub.requests[1:]), 10)
    time.sleep(1.5)  # a baseline poll or two
    seen = len(hub.requests)
    hub.latency = 0.4  # reads take a while: the kill lands inside one
    hub.set_stage(SPACE, "RUNTIME_ERROR", error="CUDA out of memory")
    assert wait_for(lambda: len(hub.requests) > seen, 10), "no poll after the change"
    a.kill()
    killed = time.monotonic()
    hub.latency = 0.0
    crashed = wait_for(lambda: [p for p in slack.posts() if "crashed" in p["text"]], 15, step=0.05)
    assert crashed, "the alert was lost"
    handover = time.monotonic() - killed
    time.sleep(3)  # a few more ticks of B: nothing more
    crashed = [p for p in slack.posts() if "crashed" in p["text"]]
    assert len(crashed) == 1, crashed
    assert handover < 10, handover  # generous: lease 2.5 s + one tick
    assert b.alive and "Traceback" not in b.output()
    tally("replica SIGKILL mid-poll", duplicated=len(crashed) - 1)


def _approval(proc, slack):
    from tests.test_approvals import ask

    return ask(proc, slack, user="U1")


@pytest.mark.slow
def test_replica_killed_mid_approval_after_the_hub_applied(serve_bot, hub, slack, redis_client):
    """The Hub applied it, but A died before hearing so: B confirms from the Hub, never applies again."""
    from tests.test_approvals import buttons, click, thread

    hub.add_space(SPACE, hardware="cpu-basic")
    a, b = leader_then_follower(serve_bot, redis_client)
    pending = _approval(a, slack)
    hub.latency = 0.6  # under the 1 s timeout: the Hub applies it, A is killed while waiting
    a.click("approval:approve", pending.id, user="UAPP", channel=pending.channel, message_ts=pending.ts)
    assert wait_for(lambda: hub.calls("POST", HARDWARE), 5)
    a.kill()
    hub.latency = 0.0
    # While A's claim lasts, another approver's click changes nothing.
    assert "applying this request right now" in click(b, slack, pending, "UAPP2")
    msg = wait_for(lambda: "Approved" in json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"])
                   and slack.messages[(pending.channel, pending.ts)], 25, step=0.1)
    assert msg, "B never settled A's claim"
    assert buttons(msg) == [] and msg["updates"] == 1
    assert len(hub.calls("POST", HARDWARE)) == 1 and hub.spaces[SPACE]["requested"] == "a100-large"
    assert "already approved" in click(b, slack, pending, "UAPP2")
    time.sleep(2)
    assert len(hub.calls("POST", HARDWARE)) == 1 and len(thread(slack, pending)) == 1
    assert b.alive and "Traceback" not in b.output()
    tally("replica SIGKILL mid-approval", tried=1)


@pytest.mark.slow
def test_replica_killed_mid_approval_before_the_hub_applied(serve_bot, hub, slack, redis_client):
    """The Hub never applied it: B marks it not applied and still open; the next approval applies it once."""
    from tests.test_approvals import click

    hub.add_space(SPACE, hardware="cpu-basic")
    a, b = leader_then_follower(serve_bot, redis_client)
    pending = _approval(a, slack)
    # The Hub holds the request and then answers without applying it (as if it never arrived).
    hub.inject("POST", HARDWARE, status=503, body="", delay=0.6)
    a.click("approval:approve", pending.id, user="UAPP", channel=pending.channel, message_ts=pending.ts)
    assert wait_for(lambda: hub.calls("POST", HARDWARE), 5)
    a.kill()
    settled = wait_for(lambda: "still open" in json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"]),
                       25, step=0.1)
    assert settled, "B never settled A's claim"
    assert hub.spaces[SPACE]["requested"] == "cpu-basic"
    assert "Approved" in click(b, slack, pending, "UAPP2")
    assert hub.spaces[SPACE]["requested"] == "a100-large"
    assert len(hub.calls("POST", HARDWARE)) == 2  # the first never took effect; applied once
    assert b.alive and "Traceback" not in b.output()
    tally("replica SIGKILL mid-approval", tried=1)
