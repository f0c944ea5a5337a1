"""Requests nobody should be able to act with: bad signatures, replays, malformed bodies.

Malformed bodies go to the real `python -m bot serve` process, so a crash or a traceback in its log
is seen; the answer must be a 2xx with nothing done, or a 4xx — never a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
from urllib.parse import urlencode

import pytest

from tests.faults.conftest import tally
from tests.harness import SIGNING_SECRET

SPACE = "acme/chat"
ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}


def writes(hub) -> list:
    return [r for r in hub.requests if r.method != "GET"]


# ---------------------------------------------------------------- signatures

SIGNATURE_CASES = {
    "missing": {"sign": False},
    "wrong secret": {"secret": "not-the-secret"},
    "stale (301 s)": {"timestamp": lambda: int(time.time()) - 301},
    "stale (1 day)": {"timestamp": lambda: int(time.time()) - 86400},
    "future (301 s)": {"timestamp": lambda: int(time.time()) + 301},
    "garbage header": {"headers": {"X-Slack-Signature": "v0=zzz"}},
    "non-numeric timestamp": {"headers": {"X-Slack-Request-Timestamp": "soon"}},
    "unicode-digit timestamp": {"headers": {"X-Slack-Request-Timestamp": "17957400²"}},  # latin-1, isdigit()
    "empty timestamp": {"headers": {"X-Slack-Request-Timestamp": ""}},
    "v1 scheme": {"headers": {"X-Slack-Signature": "v1=" + "0" * 64}},
}


@pytest.mark.parametrize("case", SIGNATURE_CASES)
def test_bad_signatures_are_401_and_nothing_runs(bot, hub, slack, case):
    hub.add_space(SPACE)
    kwargs = {k: v() if callable(v) else v for k, v in SIGNATURE_CASES[case].items()}
    for text in ("restart acme/chat", "pause acme/chat", "status acme/chat"):
        assert bot.send_command(text, **kwargs).status == 401
    assert bot.click("approval:approve", "anything", user="UAPP", **kwargs).status == 401
    time.sleep(0.2)
    assert hub.requests == [] and [c for c in slack.calls if c.method != "auth.test"] == []
    tally("bad signature", tried=4)


@pytest.mark.slow
def test_a_signed_body_replayed_with_the_same_headers_runs_once(bot, hub, slack):
    """A captured request resent within the 5-minute window: the delivery id dedupes it."""
    hub.add_space(SPACE)
    form = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": "restart acme/chat",
            "response_url": f"{slack.base}/respond/replay", "trigger_id": "trig.replay"}
    body = urlencode(form).encode()
    ts = int(time.time())
    answers = [bot.post(body, "application/x-www-form-urlencoded", timestamp=ts) for _ in range(5)]
    assert all(a.status == 200 for a in answers)
    slack.wait(lambda: slack.responses("replay"))
    time.sleep(0.3)
    assert len(hub.calls("POST", f"/api/spaces/{SPACE}/restart")) == 1
    tally("replayed signed command", tried=5)


def test_replayed_approval_click_after_the_decision_has_no_effect(make_bot, hub, slack):
    from tests.test_approvals import ask, click

    hub.add_space(SPACE, hardware="cpu-basic")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, user="U1")
    payload_answer = bot.click("approval:approve", pending.id, user="UAPP", channel=pending.channel,
                               message_ts=pending.ts)
    assert payload_answer.status == 200
    slack.wait(lambda: slack.responses(payload_answer.response_id), timeout=10)
    hardware = f"/api/spaces/{SPACE}/hardware"
    assert len(hub.calls("POST", hardware)) == 1
    updates = slack.messages[(pending.channel, pending.ts)]["updates"]
    # The same click again (new trigger: a fresh signature on an old payload), by approver, admin and requester.
    replies = [click(bot, slack, pending, user) for user in ("UAPP", "UADM", "U1", "UAPP")]
    replies.append(click(bot, slack, pending, "UADM", action="deny"))
    assert len(hub.calls("POST", hardware)) == 1
    assert all("Nothing" in r or "can't approve your own" in r for r in replies), replies
    assert slack.messages[(pending.channel, pending.ts)]["updates"] == updates
    assert hub.spaces[SPACE]["requested"] == "a100-large"
    tally("replayed approval click", tried=len(replies))


# ---------------------------------------------------------------- malformed bodies


def _form(**fields) -> bytes:
    return urlencode(fields).encode()


def _payload(obj) -> bytes:
    return urlencode({"payload": obj if isinstance(obj, str) else json.dumps(obj)}).encode()


FORM = "application/x-www-form-urlencoded"
# A read, so that a body that is odd but well-formed and signed (no content type) may run it harmlessly.
COMMAND = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": "status acme/chat",
           "response_url": "http://127.0.0.1:9/respond/x", "trigger_id": "trig.malformed"}
MALFORMED = {
    "json content type, form body": (_form(**COMMAND), "application/json"),
    "json body, json type": (json.dumps(COMMAND).encode(), "application/json"),
    "text/plain": (b"restart acme/chat", "text/plain"),
    "no content type": (_form(**COMMAND), ""),
    "empty body": (b"", FORM),
    "invalid JSON in payload": (_payload("{not json"), FORM),
    "payload is a list": (_payload([1, 2, 3]), FORM),
    "payload is a string": (_payload('"hello"'), FORM),
    "payload is null": (_payload("null"), FORM),
    "payload without type": (_payload({"user": {"id": "U1"}}), FORM),
    "unknown interaction type": (_payload({"type": "nonsense", "user": {"id": "U1"}}), FORM),
    "message_action": (_payload({"type": "message_action", "callback_id": "x", "user": {"id": "U1"},
                                 "trigger_id": "t.1"}), FORM),
    "shortcut": (_payload({"type": "shortcut", "callback_id": "x", "user": {"id": "U1"}, "trigger_id": "t.2"}),
                 FORM),
    "block_actions without actions": (_payload({"type": "block_actions", "user": {"id": "UAPP"}}), FORM),
    "block_actions, actions null": (_payload({"type": "block_actions", "user": {"id": "UAPP"}, "actions": None}),
                                    FORM),
    "approve without value": (_payload({"type": "block_actions", "user": {"id": "UAPP"},
                                        "actions": [{"action_id": "approval:approve"}]}), FORM),
    "approve, value an object": (_payload({"type": "block_actions", "user": {"id": "UAPP"},
                                           "actions": [{"action_id": "approval:approve", "value": {"a": 1}}],
                                           "container": "weird", "channel": None}), FORM),
    "approve without user": (_payload({"type": "block_actions", "user": None,
                                       "actions": [{"action_id": "approval:approve", "value": "x"}]}), FORM),
    "alert button, user null, value a list": (_payload({"type": "block_actions", "user": None, "actions": [
        {"action_id": "alert:restart", "value": "acme/chat"}, {"action_id": "alert:resume", "value": ["x"]}]}), FORM),
    "block_actions, an action without action_id": (_payload({"type": "block_actions", "user": {"id": "U1"},
                                                            "actions": [{"value": "x"}]}), FORM),
    "unknown action id": (_payload({"type": "block_actions", "user": {"id": "U1"},
                                    "actions": [{"action_id": "rm -rf", "value": "x"}]}), FORM),
    "view_submission, unknown callback": (_payload({"type": "view_submission", "user": {"id": "U1"},
                                                    "view": {"callback_id": "nope"}}), FORM),
    "secret view without state": (_payload({"type": "view_submission", "user": {"id": "U1"},
                                            "view": {"callback_id": "secret_set"}}), FORM),
    "secret view, metadata not JSON": (_payload({
        "type": "view_submission", "user": {"id": "U1"},
        "view": {"type": "modal", "callback_id": "secret_set", "private_metadata": "{{{",
                 "state": {"values": {"value": {"value": {"value": "v"}}}}}}), FORM),
    "secret view, metadata a list": (_payload({
        "type": "view_submission", "user": {"id": "U1"},
        "view": {"type": "modal", "callback_id": "secret_set", "private_metadata": "[1]",
                 "state": {"values": {"value": {"value": {"value": "v"}}}}}}), FORM),
    "secret view, forged Space": (_payload({
        "type": "view_submission", "user": {"id": "U1"},
        "view": {"type": "modal", "callback_id": "secret_set",
                 "private_metadata": json.dumps({"space": "../../etc", "key": "K"}),
                 "state": {"values": {"value": {"value": {"value": "v"}}}}}}), FORM),
    "secret view, state values a list": (_payload({
        "type": "view_submission", "user": {"id": "U1"},
        "view": {"callback_id": "secret_set", "state": {"values": [1]}}}), FORM),
    "modal without state": (_payload({"type": "view_submission", "user": {"id": "U1"},
                                      "view": {"type": "modal", "callback_id": "secret_set"}}), FORM),
    "modal, state values a list": (_payload({"type": "view_submission", "user": None, "view": {
        "type": "modal", "callback_id": "secret_set", "state": {"values": [1]}}}), FORM),
    "modal, value a number, user null": (_payload({"type": "view_submission", "user": None, "view": {
        "type": "modal", "callback_id": "secret_set", "private_metadata": json.dumps({"space": 5, "key": ["K"]}),
        "state": {"values": {"value": {"value": {"value": 42}}}}}}), FORM),
    "modal, forged key": (_payload({"type": "view_submission", "user": {"id": "U1"}, "view": {
        "type": "modal", "callback_id": "secret_set", "private_metadata": json.dumps({"space": "acme/chat",
                                                                                      "key": "../../x"}),
        "state": {"values": {"value": {"value": {"value": "v"}}}}}}), FORM),
    "view_closed": (_payload({"type": "view_closed", "user": {"id": "U1"}, "view": {"callback_id": "secret_set"}}),
                    FORM),
    "command missing user and text": (_form(command="/space", team_id="T1"), FORM),
    "command text only": (_form(text="restart acme/chat"), FORM),
    "other command": (_form(**{**COMMAND, "command": "/deploy"}), FORM),
    "command, duplicate fields": (b"command=/space&text=status+acme/chat&text=help&user_id=U1", FORM),
    "event: url_verification": (json.dumps({"type": "url_verification", "challenge": "abc"}).encode(),
                                "application/json"),
    "event: unknown event": (json.dumps({"type": "event_callback", "event_id": "Ev1", "team_id": "T1",
                                         "event": {"type": "app_home_opened", "user": "U1"}}).encode(),
                             "application/json"),
    "event: event null": (json.dumps({"type": "event_callback", "event": None}).encode(), "application/json"),
    "invalid UTF-8": (b"command=/space&text=\xff\xfe\xfd&user_id=U1", FORM),
    "NUL bytes": (b"command=/space&text=status%00acme/chat&user_id=U1\x00", FORM),
    "deeply nested payload": (_payload("[" * 5000 + "]" * 5000), FORM),
}


def signed(body: bytes) -> dict:
    """Slack's signature over raw bytes (slack_sdk's helper would decode them first, and fail on bad UTF-8)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@pytest.mark.slow
def test_malformed_bodies_never_500_never_crash(serve_bot, hub, slack):
    hub.add_space(SPACE)
    proc = serve_bot(**ROLES)
    failures = {}
    for name, (body, ctype) in MALFORMED.items():
        answer = proc.post(body, ctype, sign=False, headers=signed(body))
        if answer.status >= 500 or "Traceback" in answer.body or "File \"" in answer.body:
            failures[name] = (answer.status, answer.body[:200])
        assert proc.get("/healthz").status == 200, name
        tally("malformed body", crashes=int(not proc.alive))
    assert failures == {}, (sorted(failures), proc.output()[-20000:])
    time.sleep(0.5)
    assert writes(hub) == [], writes(hub)
    assert proc.alive
    log = proc.output()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_oversized_bodies_are_413(serve_bot, hub):
    hub.add_space(SPACE)
    proc = serve_bot()
    for size in (256 * 1024 + 1, 1024 * 1024, 8 * 1024 * 1024):
        body = _form(**{**COMMAND, "text": "x" * size})
        try:
            status = proc.post(body, FORM).status
        except (ConnectionResetError, BrokenPipeError, urllib.error.URLError):
            status = 413  # refused before the client finished sending: the cap worked
        assert status == 413
        tally("oversized body")
    # A lying Content-Length (larger than the cap) is refused before the body is read.
    assert proc.post(b"short", FORM, headers={"Content-Length": str(10 ** 9)}).status in (400, 413)
    tally("oversized body")
    assert writes(hub) == [] and proc.alive and proc.get("/healthz").status == 200
