"""Every way in passes the gate: the real Bolt app's registered listeners, each driven through signed HTTP
by a user and place it must refuse. Each refuses; no Hub write and no private detail comes out.

The listeners are read from the app itself (slack_bolt keeps them in `App._listeners`, each with the
built-in matcher that names its command, action, view, event or options id). A listener this test does
not know fails it: a way in added later has to say here how it is refused, and so has to ask the gate.
"""

from __future__ import annotations

import inspect
import json
import re
import time

import pytest
from cryptography.fernet import Fernet

from bot.alerts.words import ALERT_ACTIONS
from bot.approvals.words import APPROVE_ACTION, DENY_ACTION
from bot.signin.words import CHECK_ACTION, OPEN_ACTION
from bot.fleet.words import BUDGET_ACTIONS, HOME_ACTIONS
from bot.schedules.store import Timed
from bot.schedules.words import EXTEND_ACTION, REVERT_ACTION
from bot.surfaces.steps import STEPS
from bot.surfaces.words import LOGS_ACTION, PREVIEW_STATUS_ACTION
from tests.harness import _ids
from tests.test_approvals import ask

ENV = {"SPACEOPS_ADMINS": "UADM", "SPACEOPS_READERS": "UREAD,UGST,UOUT", "SPACEOPS_APPROVERS": "UOUT,UAPP",
       "SPACEOPS_HUB_OAUTH_CLIENT_ID": "spaceops-app", "SPACEOPS_SECRET_KEY": Fernet.generate_key().decode()}
# UREAD: a member who may read and (SPACEOPS_OPERATORS unset) operate; UGST: a guest (read only);
# UOUT: of another workspace (listed everywhere: only the workspace boundary refuses them); UNOB: no read right.
USERS = {"UGST": {"is_restricted": True}, "UOUT": {"team_id": "T9"}}
REFUSALS = ("only takes commands from members", "operator role", "read-only for", "may only name Spaces of",
            "is private:", "reader role", "approver role", "not yours, or it has ended")
SECRETS = ("ERRSECRET", "VARSECRET")
SPACE = "acme/priv"
PRIVATE_URL = "https://huggingface.co/spaces/acme/priv"


def ways_in(app) -> list[tuple[str, str, bool]]:
    """(kind, id, on the Home) of every registered listener: kind is command, action, view_submission,
    event, options… (the built-in matcher's name), id what it matches."""
    found = []
    for listener in app._listeners:
        kind, ident, home = None, None, False
        for matcher in listener.matchers:
            func = getattr(matcher, "func", None)
            if func is None:
                continue
            name = func.__qualname__.split(".")[0]
            values = inspect.getclosurevars(func).nonlocals
            value = next((v for k, v in values.items() if k in ("command", "constraints", "callback_id",
                                                                   "event_type")), None)
            if value is not None:
                kind, ident = name, value.pattern if isinstance(value, re.Pattern) else str(value)
            elif name == "_from_home":
                home = True
        assert kind is not None, f"a listener with no built-in matcher: {listener.ack_function}"
        found.append((kind, ident, home))
    return found


class Drive:
    """Sends one payload as `user` in `place` and returns everything the bot sent back to Slack."""

    def __init__(self, bot, slack):
        self.bot, self.slack = bot, slack

    def outputs(self, since: int) -> list[dict]:
        with self.slack.lock:
            return [{"method": c.method, **(c.body if isinstance(c.body, dict) else {})}
                    for c in self.slack.calls[since:] if c.method not in ("users.info", "auth.test")]

    def run(self, send, expect_answer: bool = True) -> list[dict]:
        since = len(self.slack.calls)
        send()
        if expect_answer:
            self.slack.wait(lambda: [o for o in self.outputs(since) if o.get("text") or o.get("view")], 6)
        time.sleep(0.2)  # anything else the work sends after its answer
        return self.outputs(since)

    def block_action(self, action_id: str, value: str, user: str, place: str, home: bool, ts: str = "1.0"):
        rid = f"r{next(_ids)}"
        team = USERS.get(user, {}).get("team_id", "T1")
        container = {"type": "view", "view_id": f"V{user}"} if home else \
            {"type": "message", "message_ts": ts, "channel_id": place, "is_ephemeral": False}
        payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": team},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": f"trig.{rid}",
                   "response_url": f"{self.slack.base}/respond/{rid}", "container": container,
                   "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                                "action_ts": "1"}]}
        if home:
            payload["view"] = {"id": f"V{user}", "type": "home", "blocks": []}
        else:
            payload["channel"] = {"id": place}
            payload["message"] = {"type": "message", "ts": ts, "text": "", "blocks": []}
        return lambda: self.bot.interact(payload)


@pytest.fixture
def world(make_bot, hub, slack):
    hub.add_space(SPACE, stage="RUNTIME_ERROR", hardware="a100-large", private=True, error="ERRSECRET boom",
                  variables={"DB": "VARSECRET"})
    hub.add_space("acme/priv2", hardware="t4-small", private=True, variables={"DB": "VARSECRET"})
    hub.logs[SPACE] = ["ERRSECRET in the logs"]
    slack.users.update(USERS)
    bot = make_bot(**ENV)
    bot.command("/space scope <#CREAD|x> acme/* read", user="UADM")
    bot.command("/space scope <#CBETA|x> beta/* operate", user="UADM")
    timed = bot.command("/space hw acme/priv t4-small --for 20m", user="UREAD", channel="CDM")
    assert "until" in timed["text"], timed
    [t] = [r for r in bot.ctx.schedules.store.all() if isinstance(r, Timed)]
    pending = ask(bot, slack, "hw acme/priv2 a100-large", user="UREAD", channel="C1")
    hub.requests.clear()
    return bot, t, pending


def cases_for(kind: str, ident: str, home: bool, t: Timed, pending) -> list[tuple[str, str, str]] | None:
    """(what it sends, user, place) that must each be refused; [] for a listener that does nothing at all
    (a link button); None when this test does not know the listener."""
    changes_in_channels = [("UOUT", "C1"), ("UGST", "C1"), ("UREAD", "CREAD")]
    if kind == "command" and ident == "/space":
        return [("restart acme/priv", u, p) for u, p in changes_in_channels + [("UNOB", "C1")]] + \
            [("var ls acme/priv", "UREAD", "C1"), ("status acme/priv", "UNOB", "C1")]
    if kind == "view_submission" and ident == "secret_set":
        return [("secret", u, p) for u, p in changes_in_channels]
    if kind == "event" and ident == "app_home_opened":
        return [("home", u, u) for u in ("UOUT", "UNOB")]
    if kind == "event" and ident == "link_shared":  # refused = no preview at all (SILENT)
        return [(PRIVATE_URL, u, p) for u, p in [("UOUT", "CREAD"), ("UNOB", "C1"), ("UREAD", "C1"),
                                                  ("UGST", "CBETA")]]
    if kind == "function_executed" and ident in STEPS:
        who = [("UNOB", "C1"), ("UOUT", "C1")] if STEPS[ident] in ("status", "wait") else \
            changes_in_channels + [("UNOB", "C1")]
        return [(SPACE, u, p) for u, p in who]
    if kind != "action":
        return None
    if ident in ("^home:open:", OPEN_ACTION):
        return []
    if ident == CHECK_ACTION:  # "I've approved it": only the member who asked for that sign-in, in this workspace
        return [("any-id", "UOUT", "C1"), ("not-their-sign-in", "UREAD", "C1"), ("", "UNOB", "C1")]
    if ident in (PREVIEW_STATUS_ACTION, LOGS_ACTION):
        return [(SPACE, u, "C1") for u in ("UOUT", "UNOB")]
    if ident in (APPROVE_ACTION, DENY_ACTION):
        value = pending.id
        places = [("UOUT", pending.channel), ("UGST", pending.channel), ("UAPP", "CBETA")] if not home else \
            [("UOUT", ""), ("UGST", "")]
        return [(value, u, p) for u, p in places]
    if ident in (EXTEND_ACTION, REVERT_ACTION):
        return [(t.id, u, p) for u, p in changes_in_channels]
    if ident in (HOME_ACTIONS["page"], HOME_ACTIONS["next"]):
        return [("0", u, "") for u in ("UOUT", "UNOB")]
    if ident in {HOME_ACTIONS[k] for k in ("restart", "pause", "resume", "sleep")}:
        return [(SPACE, u, "") for u in ("UOUT", "UGST", "UNOB")]
    if ident in set(ALERT_ACTIONS.values()) | set(BUDGET_ACTIONS.values()):
        return [(SPACE, u, p) for u, p in changes_in_channels]
    return None


@pytest.mark.slow
def test_every_listener_refuses_who_and_where_it_must(world, hub, slack):
    bot, t, pending = world
    drive = Drive(bot, slack)
    listed = ways_in(bot.app)
    kinds = {kind for kind, _, _ in listed}
    assert {"command", "action", "view_submission", "event"} <= kinds, listed
    tried = 0
    for kind, ident, home in listed:
        cases = cases_for(kind, ident, home, t, pending)
        assert cases is not None, (f"a way in this test does not know: {kind} {ident!r}. Make it ask the gate "
                                   f"(bot/access) and add here who and where it must refuse.")
        if not cases:  # a link button: Slack opens the link; the bot only acknowledges
            clicked = f"home:open:{SPACE}" if ident.startswith("^") else ident
            out = drive.run(drive.block_action(clicked, "https://example.invalid", "UOUT", "", home),
                            expect_answer=False)
            assert [o for o in out if o.get("text") or o.get("view")] == [], (ident, out)
            continue
        for value, user, place in cases:
            label = (kind, ident, "home" if home else "", value, user, place)
            if kind == "command":
                out = drive.run(lambda: bot.send_command(value, user=user, channel=place))
            elif kind == "view_submission":
                meta = json.dumps({"space": SPACE, "key": "API_KEY", "channel": place,
                                   "response_url": f"{slack.base}/respond/sub{next(_ids)}"})
                out = drive.run(lambda: bot.submit_view(
                    "secret_set", {"value": ("value", "v"), "description": ("description", "")}, meta, user=user))
            elif kind == "event" and ident == "link_shared":
                ts = f"{next(_ids)}.5"
                slack.share(place, ts, [value])
                out = drive.run(lambda: bot.post(json.dumps({
                    "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                    "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()),
                    "event": {"type": "link_shared", "channel": place, "user": user, "message_ts": ts,
                              "links": [{"url": value, "domain": "huggingface.co"}]}}).encode(),
                    "application/json"), expect_answer=False)
                assert [o for o in out if o["method"] == "chat.unfurl"] == [], (label, out)
                assert not any(s in json.dumps(out) for s in SECRETS), (label, out)
                tried += 1
                continue
            elif kind == "function_executed":
                execution = f"Fx{next(_ids)}"
                slack.execute(execution)
                out = drive.run(lambda: bot.post(json.dumps({
                    "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                    "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()),
                    "event": {"type": "function_executed", "function": {"callback_id": ident},
                              "function_execution_id": execution, "event_ts": "1",
                              "inputs": {"space": value, "user": user, "channel": place, "flavor": "a10g-large"}}
                }).encode(), "application/json"), expect_answer=False)
                slack.wait(lambda: slack.executions[execution]["state"] != "running", 6)
                assert slack.executions[execution]["state"] == "failed", (label, slack.executions[execution])
                out = drive.outputs(0)[-1:] + [slack.executions[execution]]
            elif kind == "event":
                out = drive.run(lambda: bot.post(json.dumps({
                    "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                    "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()),
                    "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home",
                              "event_ts": f"{time.time():.6f}"}}).encode(), "application/json"))
            else:
                # Approval buttons are clicked on the request's own message (its channel and ts).
                ts = pending.ts if ident in (APPROVE_ACTION, DENY_ACTION) else "1.0"
                out = drive.run(drive.block_action(ident, value, user, place, home, ts))
            said = json.dumps(out, ensure_ascii=False)
            assert any(r in said for r in REFUSALS), (label, said[:600])
            assert not any(s in said for s in SECRETS), (label, said[:600])
            writes = [(r.method, r.path) for r in hub.requests if r.method != "GET"]
            assert writes == [], (label, writes)
            tried += 1
    assert [r.status for r in bot.ctx.schedules.store.all() if isinstance(r, Timed)] == ["active"]
    print(f"ways in: {len(listed)} listeners, {tried} refusals tried, 0 let through")
