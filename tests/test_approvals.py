"""Paid hardware approvals, driven like Slack does: signed slash commands and button clicks."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

import pytest

from bot.approvals import words
from bot.approvals.store import ApprovalRequest, ApprovalStore
from bot.core.errors import NotAllowed
from bot.core.flavors import Catalogue
from bot.core.permissions import Roles
from bot.core.settings import Settings
from bot.core.words import as_text
from tests.conftest import RedisServer

ROLES = {"SPACEOPS_APPROVERS": "U1,UAPP,UAPP2", "SPACEOPS_ADMINS": "UADM"}
HARDWARE = "/api/spaces/acme/chat/hardware"
APPLY_LEASE = 300  # a claim older than this belongs to a replica that died


@dataclass
class Pending:
    id: str
    channel: str
    ts: str
    reply: str = ""  # what the requester saw


def ask(bot, slack, text: str = "hw acme/chat a100-large", user: str = "U1", channel: str = "C1") -> Pending:
    """Run a command that needs approval; return the request and where its message is."""
    seen = bot.command(text, user=user, channel=channel)
    match = re.search(r"approvals cancel ([A-Za-z0-9_-]+)", seen["text"])
    assert match, seen["text"]
    request_id = match.group(1)
    channel, ts = next(k for k, m in slack.messages.items()
                       if m["thread_ts"] is None and request_id in json.dumps(m["blocks"]))
    return Pending(request_id, channel, ts, seen["text"])


def click(bot, slack, pending: Pending, user: str, action: str = "approve", value: str | None = None) -> str:
    """Click a button on the approval message; return the ephemeral answer the clicker got."""
    answer = bot.click(f"approval:{action}", value or pending.id, user=user, channel=pending.channel,
                       message_ts=pending.ts)
    assert answer.status == 200
    seen = slack.wait(lambda: slack.responses(answer.response_id), timeout=10)
    assert seen, "no answer to the click"
    return seen[0]["text"]


def message(slack, pending: Pending) -> dict:
    return slack.messages[(pending.channel, pending.ts)]


def buttons(msg: dict) -> list[dict]:
    return [e for b in msg["blocks"] or [] if b["type"] == "actions" for e in b["elements"]]


def thread(slack, pending: Pending) -> list[str]:
    return [m["text"] for m in slack.messages.values() if m["thread_ts"] == pending.ts]


def audit_actions(bot) -> list[tuple[str, str, str]]:
    return [(e.user, e.action, e.result) for e in bot.ctx.store.audit_entries(count=100)]


# ---------------------------------------------------------------- the flow


def test_request_refusals_then_approval_applies_once(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, user="U1")
    assert "Sent for approval" in pending.reply
    assert f"https://acme.slack.com/archives/C1/p{pending.ts.replace('.', '')}" in pending.reply

    msg = message(slack, pending)
    text = json.dumps(msg["blocks"])
    for expected in ("<@U1>", "acme/chat", "`cpu-basic`", "`a100-large`", "$2.50/h", "$60.00/day", "+$2.50/h",
                  "never sleeps"):
        assert expected in text, expected
    assert [(b["action_id"], b["value"]) for b in buttons(msg)] == [
        ("approval:approve", pending.id), ("approval:deny", pending.id)]
    assert hub.calls("POST", HARDWARE) == []

    assert "can't approve your own" in click(bot, slack, pending, "U1")
    refusal = click(bot, slack, pending, "U3")
    assert "approver role" in refusal and "<@UAPP>" in refusal
    assert message(slack, pending)["updates"] == 0 and hub.calls("POST", HARDWARE) == []

    assert click(bot, slack, pending, "UAPP").startswith("Approved")
    calls = hub.calls("POST", HARDWARE)
    assert [c.body["flavor"] for c in calls] == ["a100-large"]
    msg = message(slack, pending)
    assert buttons(msg) == [] and "*Approved* by <@UAPP>" in json.dumps(msg["blocks"])
    assert any("<@U1>" in note and "Approved" in note for note in thread(slack, pending))

    # A replayed click changes nothing.
    assert "already approved by <@UAPP>" in click(bot, slack, pending, "UAPP2")
    assert len(hub.calls("POST", HARDWARE)) == 1

    actions = audit_actions(bot)
    assert ("UAPP", "approval.approve", "ok") in actions
    assert ("U1", "approval.request", "ok") in actions
    assert any(a[:2] == ("U3", "approval.approve") and a[2].startswith("refused") for a in actions)
    assert "approved the request to move `acme/chat` to" in bot.command("audit acme/chat")["text"]


def test_deny_changes_nothing(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, "hw acme/chat a10g-large")
    assert "+$1.10/h" in json.dumps(message(slack, pending)["blocks"])
    assert click(bot, slack, pending, "UAPP", "deny").startswith("Denied")
    msg = message(slack, pending)
    assert buttons(msg) == [] and "*Denied* by <@UAPP>" in json.dumps(msg["blocks"])
    assert any("Denied" in note for note in thread(slack, pending))
    assert "already denied" in click(bot, slack, pending, "UAPP2")
    assert hub.calls("POST", HARDWARE) == []
    assert ("UAPP", "approval.deny", "ok") in audit_actions(bot)


def test_hub_failure_keeps_the_request_open_and_a_retry_applies_once(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack)
    hub.inject("POST", HARDWARE, status=403, body={"error": "Payment method required"})
    assert "the Hub refused" in click(bot, slack, pending, "UAPP")
    msg = message(slack, pending)
    assert "Approved, but not applied" in json.dumps(msg["blocks"]) and len(buttons(msg)) == 2
    assert "last attempt failed" in bot.command("approvals")["text"]

    assert click(bot, slack, pending, "UAPP2").startswith("Approved")
    assert len(hub.calls("POST", HARDWARE)) == 2  # the refused one, then the retry
    assert buttons(message(slack, pending)) == []
    assert "already approved" in click(bot, slack, pending, "UAPP")
    assert len(hub.calls("POST", HARDWARE)) == 2
    assert any(a[1] == "approval.approve" and a[2].startswith("error") for a in audit_actions(bot))


def test_duplicate_on_paid_hardware_goes_through_approval(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, "duplicate acme/chat acme/chat-gpu --hw t4-small --private --sleep 1h")
    assert hub.calls("POST", "/api/spaces/acme/chat/duplicate") == []
    text = json.dumps(message(slack, pending)["blocks"])
    assert "acme/chat-gpu" in text and "sleeps after 1 h idle" in text
    assert click(bot, slack, pending, "UAPP").startswith("Approved")
    [call] = hub.calls("POST", "/api/spaces/acme/chat/duplicate")
    assert call.body["repository"] == "acme/chat-gpu" and call.body["hardware"] == "t4-small"
    assert call.body["sleepTimeSeconds"] == 3600 and call.body["visibility"] == "private"


# ---------------------------------------------------------------- expiry and restarts


def test_expiry_edits_the_message_and_refuses_late_clicks(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_APPROVAL_TTL="2s", **ROLES)
    pending = ask(bot, slack)
    assert "expires in 2 s" in pending.reply and pending.id in bot.command("approvals")["text"]
    assert bot.ctx.approvals.sweep(now=time.time()) == 0
    assert bot.ctx.approvals.sweep(now=time.time() + 3) == 1
    assert bot.ctx.approvals.sweep(now=time.time() + 3) == 0  # once only
    msg = message(slack, pending)
    assert buttons(msg) == [] and "*Expired*" in json.dumps(msg["blocks"])
    assert "expired" in click(bot, slack, pending, "UAPP")
    assert bot.command("approvals")["text"] == "No pending hardware requests."
    assert hub.calls("POST", HARDWARE) == []
    assert any(a[1] == "approval.expire" for a in audit_actions(bot))


def test_the_poll_tick_expires_requests_without_anyone_clicking(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_APPROVAL_TTL="2s", **ROLES)
    pending = ask(bot, slack)
    bot.ctx.watcher.tick(now=time.time() + 3)
    assert "*Expired*" in json.dumps(message(slack, pending)["blocks"])
    assert hub.calls("POST", HARDWARE) == []


def test_click_after_expiry_without_a_sweep(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack)
    approvals = bot.ctx.approvals
    approvals.clock = lambda: time.time() + 25 * 3600
    assert "expired" in click(bot, slack, pending, "UAPP")
    assert "*Expired*" in json.dumps(message(slack, pending)["blocks"])
    assert hub.calls("POST", HARDWARE) == []


def test_pending_request_survives_a_bot_restart(make_bot, hub, slack):
    hub.add_space("acme/chat")
    first = make_bot(**ROLES)
    pending = ask(first, slack)
    first.close()
    second = make_bot(**ROLES)
    assert pending.id in second.command("approvals")["text"]
    assert click(second, slack, pending, "UAPP").startswith("Approved")
    assert len(hub.calls("POST", HARDWARE)) == 1


def test_pending_request_survives_a_redis_restart(make_bot, hub, slack, tmp_path):
    hub.add_space("acme/chat")
    server = RedisServer(tmp_path, persistent=True)
    try:
        bot = make_bot(redis_url=server.url, **ROLES)
        pending = ask(bot, slack)
        server.restart()
        assert pending.id in bot.command("approvals")["text"]
        assert click(bot, slack, pending, "UAPP").startswith("Approved")
        assert len(hub.calls("POST", HARDWARE)) == 1
    finally:
        server.stop()


# ---------------------------------------------------------------- races and forgeries


def test_ten_clicks_on_two_replicas_make_one_hub_call(make_bot, hub, slack):
    hub.add_space("acme/chat")
    replicas = [make_bot(**ROLES), make_bot(**ROLES)]
    pending = ask(replicas[0], slack)
    hub.latency = 0.2  # keep the winner inside the Hub call while the others arrive
    start = threading.Barrier(10)
    answers = []

    def clicker(n: int) -> None:
        bot = replicas[n % 2]
        start.wait()
        answers.append(bot.click("approval:approve", pending.id, user=("UAPP", "UAPP2")[n // 5],
                                 channel=pending.channel, message_ts=pending.ts))

    threads = [threading.Thread(target=clicker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [a.status for a in answers] == [200] * 10
    replies = slack.wait(lambda: len([r for a in answers for r in slack.responses(a.response_id)]) == 10
                         and [r["text"] for a in answers for r in slack.responses(a.response_id)], timeout=15)
    assert replies, "not every click was answered"
    assert len(hub.calls("POST", HARDWARE)) == 1
    assert sum(text.startswith("Approved") for text in replies) == 1
    assert buttons(message(slack, pending)) == []


def test_store_claim_is_atomic_across_threads(redis_client):
    store = ApprovalStore(redis_client, 60, APPLY_LEASE)
    now = time.time()
    request = ApprovalRequest(id=store.new_id(), space="acme/chat", current="cpu-basic", flavor="t4-small",
                              requester="U1", channel="C1", ts="1.1", created_at=now, expires_at=now + 3600)
    store.create(request)
    start = threading.Barrier(10)
    outcomes = []

    def claim(n):
        start.wait()
        outcomes.append(store.claim(request.id, f"U{n}", now).outcome)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(outcomes) == ["ok"] + ["taken"] * 9
    # A claim whose replica died can be taken over after its lease, and the old claim can't finish.
    first = store.get(request.id)
    takeover = store.claim(request.id, "U9", now + APPLY_LEASE + 1)
    assert takeover.ok
    assert store.finish(first, first.attempt, now + APPLY_LEASE + 2).outcome == "guard"
    assert store.finish(takeover.request, takeover.request.attempt, now + APPLY_LEASE + 2).ok
    assert store.get(request.id).status == "approved"
    assert store.open_requests() == []


def test_forged_or_unknown_request_id_is_refused(make_bot, hub, slack):
    hub.add_space("acme/chat")
    hub.add_space("acme/other")
    bot = make_bot(**ROLES)
    chat = ask(bot, slack)
    other = ask(bot, slack, "hw acme/other a100x8")
    # The button on the chat message carrying the other request's id.
    assert "does not match" in click(bot, slack, chat, "UAPP", value=other.id)
    assert "does not match" in click(bot, slack, chat, "UAPP", value="made-up-id-123")
    assert hub.calls("POST") == []
    assert message(slack, chat)["updates"] == 0 and message(slack, other)["updates"] == 0


# ---------------------------------------------------------------- roles


def test_a_user_group_can_be_the_approvers(make_bot, hub, slack):
    hub.add_space("acme/chat")
    slack.groups["SONCALL"] = ["UG1", "UG2"]
    bot = make_bot(SPACEOPS_APPROVERS="SONCALL")
    pending = ask(bot, slack, user="U1")
    refusal = click(bot, slack, pending, "U9")
    assert "approver role" in refusal and "<@UG1>" in refusal
    assert click(bot, slack, pending, "UG2").startswith("Approved")
    assert len(hub.calls("POST", HARDWARE)) == 1


def test_refusals_name_the_missing_role(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPERATORS="UOP", SPACEOPS_ADMINS="UADM", SPACEOPS_APPROVERS="UAPP")
    seen = bot.command("hw acme/chat a100-large", user="U5")
    assert "operator role" in seen["text"] and "<@UADM>" in seen["text"]
    assert slack.posts() == []
    pending = ask(bot, slack, user="UOP")
    refusal = click(bot, slack, pending, "UOP2")
    assert "approver role" in refusal and "<@UAPP>" in refusal and "<@UADM>" in refusal


def test_namespaces_apply_to_approvals(make_bot, hub, slack):
    hub.add_space("other/chat")
    bot = make_bot(SPACEOPS_NAMESPACES="acme", **ROLES)
    assert "may only act on acme" in bot.command("hw other/chat a100-large")["text"]
    assert slack.posts() == []


def test_list_withdraw_and_cancel(make_bot, hub, slack):
    hub.add_space("acme/chat")
    hub.add_space("acme/other")
    bot = make_bot(**ROLES)
    mine = ask(bot, slack, user="U1")
    theirs = ask(bot, slack, "hw acme/other t4-small", user="U2")
    listed = bot.command("approvals", user="U7")["text"]
    assert mine.id in listed and theirs.id in listed and "<@U2>" in listed

    refusal = bot.command(f"approvals cancel {mine.id}", user="U7")["text"]
    assert "Only the requester or an admin" in refusal and "<@UADM>" in refusal
    assert "You withdrew" in bot.command(f"approvals cancel {mine.id}", user="U1")["text"]
    assert "*Withdrawn* by the requester" in json.dumps(message(slack, mine)["blocks"])
    assert "You cancelled" in bot.command(f"approvals cancel {theirs.id}", user="UADM")["text"]
    msg = message(slack, theirs)
    assert buttons(msg) == [] and "*Cancelled* by <@UADM>" in json.dumps(msg["blocks"])
    assert any("<@U2>" in note for note in thread(slack, theirs))

    assert bot.command("approvals")["text"] == "No pending hardware requests."
    assert "already cancelled" in click(bot, slack, theirs, "UAPP")
    assert "no approval request" in bot.command("approvals cancel nothing-here-1")["text"]
    assert hub.calls("POST") == []
    assert ("UADM", "approval.cancel", "ok") in audit_actions(bot)


def test_asking_twice_posts_one_request(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack)
    again = bot.command("hw acme/chat a100-large", user="U2")["text"]
    assert "already" in again and pending.id in again
    assert len(slack.posts("C1")) == 1
    periodic = bot.ctx.watcher.periodic
    assert bot.ctx.approvals.sweep in periodic and bot.ctx.approvals.sweep(time.time()) == 0


def test_approval_channel_setting(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_APPROVAL_CHANNEL="CAPPROVE", **ROLES)
    pending = ask(bot, slack, channel="C1")
    assert pending.channel == "CAPPROVE" and slack.posts("C1") == []


def test_request_not_posted_leaves_nothing_pending(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    slack.fail("chat.postMessage", status=200, body={"ok": False, "error": "not_in_channel"})
    seen = bot.command("hw acme/chat a100-large")
    assert "could not be posted" in seen["text"]
    assert bot.command("approvals")["text"] == "No pending hardware requests."


# ---------------------------------------------------------------- pure parts


def request_of(**changes) -> ApprovalRequest:
    fields = dict(id="abc123", space="acme/chat", current="t4-small", flavor="a100-large", requester="U1",
                  channel="C1", ts="1.1", created_at=1_700_000_000.0, expires_at=1_700_086_400.0)
    return ApprovalRequest(**{**fields, **changes})


def test_render_open_and_decided_messages():
    catalogue = Catalogue()
    pending = words.approval_message(request_of(), catalogue, "https://hf.co")
    [actions] = [b for b in pending.blocks if b["type"] == "actions"]
    assert {e["value"] for e in actions["elements"]} == {"abc123"}
    assert len(pending.blocks) <= 50
    shown = as_text(pending.text, pending.blocks)
    assert "$2.50/h · $60.00/day" in shown and "+$2.10/h · +$50.40/day" in shown
    assert "unchanged" in shown  # a paid → paid move keeps the sleep time

    approved = request_of(status="approved", decided_by="UAPP", decided_at=1_700_000_100.0)
    blocks = words.approval_message(approved, catalogue, "https://hf.co").blocks
    assert not [b for b in blocks if b["type"] == "actions"]
    assert "Approved* by <@UAPP>" in json.dumps(blocks)


def test_render_cost_words_for_unknown_and_cheaper_flavors():
    catalogue = Catalogue()
    assert words.upgrade_cost_words("t4-small", "mystery-gpu", catalogue) == (
        "unknown (not in the Hub's price list)", "unknown")
    assert words.upgrade_cost_words("a100-large", "t4-small", catalogue)[1] == "-$2.10/h · -$50.40/day"


def test_render_escapes_outside_text():
    request = request_of(requester="U1>", error="x")
    assert "<@U1&gt;>" in words.approval_message(request, Catalogue(), "https://hf.co").text


def test_roles_check_approver():
    roles = Roles(Settings(approvers=frozenset({"UAPP", "SGRP"}), admins=frozenset({"UADM"})),
                  resolve_group=lambda group: ["UG1"])
    roles.check_approver("UAPP", "U1")
    roles.check_approver("UADM", "U1")
    roles.check_approver("UG1", "U1")
    with pytest.raises(NotAllowed, match="your own"):
        roles.check_approver("UAPP", "UAPP")
    with pytest.raises(NotAllowed, match="approver role"):
        roles.check_approver("U9", "U1")


# ---------------------------------------------------------------- kinds other features register


def test_another_feature_registers_an_approval_kind(make_bot, hub, slack):
    """A feature's own action goes through the same message, decision and audit; its applier runs once."""
    from bot.approvals.flow import ApprovalKind
    from bot.commands.operations import Upgrade
    from bot.core.permissions import Actor

    hub.add_space("acme/chat")
    bot = make_bot(**ROLES)
    approvals = bot.ctx.approvals
    approvals.register("restart-test", ApprovalKind(
        apply=lambda request, user: bot.ctx.spaces.api.restart_space(request.space),
        landed=lambda request: False))
    upgrade = Upgrade("acme/chat", "cpu-basic", "", action="restart-test", params='{"why": "test"}',
                      summary="restart `acme/chat` for the test", cost_note="about $1.00/day")
    sent = approvals.request(upgrade, Actor(user="U1", channel="C1"))
    request_id = re.search(r"approvals cancel ([A-Za-z0-9_-]+)", sent.text).group(1)
    request = approvals.store.get(request_id)
    assert request.action == "restart-test" and request.data == {"why": "test"}
    pending = Pending(request_id, request.channel, request.ts, sent.text)
    shown = json.dumps(message(slack, pending)["blocks"])
    assert "restart `acme/chat` for the test" in shown and "about $1.00/day" in shown
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
    assert "Applied: restart `acme/chat` for the test" in json.dumps(message(slack, pending)["blocks"])
    assert ("UAPP", "approval.approve", "ok") in audit_actions(bot)


def test_request_records_decode_tolerantly(redis_client):
    """An older record (no action) is a hardware request; a newer replica's unknown fields are ignored."""
    store = ApprovalStore(redis_client, 60, APPLY_LEASE)
    now = time.time()
    redis_client.hset(store._key("old"), mapping={"id": "old", "space": "acme/chat", "current": "cpu-basic",
                                                  "flavor": "t4-small", "requester": "U1", "channel": "C1",
                                                  "ts": "1.1", "created_at": repr(now), "expires_at": "oops",
                                                  "status": "pending", "from_the_future": "x"})
    request = store.get("old")
    assert (request.action, request.flavor, request.expires_at, request.v) == ("hw", "t4-small", 0, 1)
