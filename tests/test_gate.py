"""One gate (issue 19): every way in asks the same question of who may see and do what, here.

Each numbered case of issue 19 has a test here, driven like Slack does (signed HTTP, the Slack and Hub
emulators, a real Redis), asserting what a person would read and what the Hub received.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from bot.core.words import as_text
from bot.fleet.words import HOME_ACTIONS
from bot.schedules.store import Schedule, Timed
from bot.schedules.words import EXTEND_ACTION, REVERT_ACTION
from tests.test_alerts import Clock
from tests.test_fleet import open_home

HOUR = 3600


def home_click(bot, user: str, action_id: str, value: str, team: str = "T1"):
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": team},
               "api_app_id": "A1", "token": "legacy", "trigger_id": f"trig.h{time.monotonic_ns()}",
               "container": {"type": "view", "view_id": f"V{user}"},
               "view": {"id": f"V{user}", "type": "home", "blocks": []},
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                            "action_ts": "1"}]}
    assert bot.interact(payload).status == 200


def writes(hub) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


def tick(bot, clock, seconds: float = 60):
    return bot.ctx.watcher.tick(clock.step(seconds))


# ---------------------------------------------------------------- 19.1 the App Home per viewer


@pytest.mark.slow
def test_app_home_shows_each_viewer_what_the_gate_lets_them_read(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small")
    hub.add_space("acme/priv", stage="RUNTIME_ERROR", private=True, error="ERRSECRET crash")
    hub.add_space("evil/app", stage="RUNTIME_ERROR", error="EVILERR")
    first = make_bot()
    for target in ("acme/*", "evil/*"):
        assert "Watching" in first.command(f"/space watch {target}")["text"]
    clock = Clock()
    first.ctx.watcher.tick(clock.step(0))
    first.close()
    # Later the bot is told to touch acme only, and who may read.
    slack.users.update({"UGST": {"is_restricted": True}, "UOUT": {"team_id": "T9"}})
    bot = make_bot(SPACEOPS_NAMESPACES="acme", SPACEOPS_READERS="UREAD,UGST", SPACEOPS_OPERATORS="UOP")

    nobody = as_text("", open_home(bot, slack, "UMEM")["blocks"])
    assert "reader role" in nobody and "acme/" not in nobody and "$" not in nobody
    outsider = as_text("", open_home(bot, slack, "UOUT")["blocks"])
    assert "only takes commands from members" in outsider and "acme/" not in outsider

    reader = open_home(bot, slack, "UREAD")
    text = as_text("", reader["blocks"])
    assert "acme/chat" in text and "evil/app" not in text and "EVILERR" not in text   # readable namespaces only
    assert "acme/priv" in text and "ERRSECRET" in text      # the Home is the reader's own (DM-like) place
    assert HOME_ACTIONS["restart"] not in json.dumps(reader)  # buttons by rights
    guest = open_home(bot, slack, "UGST")
    assert HOME_ACTIONS["restart"] not in json.dumps(guest) and "evil/app" not in as_text("", guest["blocks"])
    operator = open_home(bot, slack, "UOP")
    assert HOME_ACTIONS["restart"] in json.dumps(operator) and "evil/app" not in as_text("", operator["blocks"])


@pytest.mark.slow
def test_a_refresh_round_builds_the_home_once_per_role_and_scope(bot, hub, slack):
    hub.add_space("acme/chat")
    assert "Watching" in bot.command("/space watch acme/*")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step(0))
    users = [f"UV{i}" for i in range(6)]
    for user in users:
        open_home(bot, slack, user)
    built = []
    homes = bot.ctx.fleet.homes
    view_for = homes.view_for
    homes.view_for = lambda *args: built.append(args[0]) or view_for(*args)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    publishes = len(slack.of("views.publish"))
    tick(bot, clock, 60)
    assert len(slack.of("views.publish")) == publishes + len(users)   # everyone's Home is new…
    assert len(built) == 1                                             # …built once for the one role


# ---------------------------------------------------------------- 19.2 follow-through and private details


def crash_after_restart(bot, hub, slack, space: str, channel: str) -> str:
    clock = Clock()
    bot.ctx.watcher.follow.clock = lambda: clock.now
    bot.ctx.watcher.tick(clock.step(0))
    seen = bot.command(f"/space restart {space}", channel=channel)
    assert seen["via"] == "chat.postMessage", seen
    deadline = time.monotonic() + 5
    while bot.ctx.watcher.follow.get(space) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hub.set_stage(space, "BUILDING")
    bot.ctx.watcher.hot_tick(clock.step(5))
    hub.set_stage(space, "RUNTIME_ERROR", error="ERRSECRET token=hf_x")
    hub.logs[space] = ["Loading...", "LOGSECRET at line 3"]
    bot.ctx.watcher.hot_tick(clock.step(35))
    bot.ctx.watcher.outbox.drain(clock.now)  # the edit goes out through the outbox
    ts = next(ts for (chan, ts), m in slack.messages.items() if chan == channel and m["text"].startswith("<@"))
    message = slack.wait(lambda: [m for (c, t), m in slack.messages.items() if (c, t) == (channel, ts)
                                  and "crashed" in m["text"]])
    return json.dumps(message[0], ensure_ascii=False)


def test_follow_through_keeps_a_private_spaces_error_and_logs_out_of_an_unscoped_channel(make_bot, hub, slack):
    hub.add_space("acme/priv", private=True)
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    shown = crash_after_restart(bot, hub, slack, "acme/priv", "C1")
    assert "crashed after" in shown and "is private" in shown
    assert "ERRSECRET" not in shown and "LOGSECRET" not in shown


def test_follow_through_shows_them_in_a_channel_scoped_to_the_namespace(make_bot, hub, slack):
    hub.add_space("acme/priv", private=True)
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    bot.command("/space scope <#CACME|x> acme/* operate", user="UADM")
    shown = crash_after_restart(bot, hub, slack, "acme/priv", "CACME")
    assert "ERRSECRET" in shown and "LOGSECRET" in shown


# ---------------------------------------------------------------- 19.3 reminder buttons, Home Approve/Deny


def timed_upgrade(bot, slack) -> Timed:
    seen = bot.command("/space hw acme/chat t4-small --for 20m")  # cheaper for a while: no approver
    assert "until" in seen["text"], seen
    [t] = [r for r in bot.ctx.schedules.store.all() if isinstance(r, Timed)]
    return t


def test_reminder_buttons_are_refused_to_guests_and_other_workspaces(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="a100-large", sleep=3600)
    slack.users.update({"UGST": {"is_restricted": True}, "UCON": {"team_id": "T9"}})
    bot = make_bot(SPACEOPS_ADMINS="UADM")          # SPACEOPS_OPERATORS unset: every member operates
    t = timed_upgrade(bot, slack)
    before = writes(hub)
    for user in ("UGST", "UCON"):
        for action in (EXTEND_ACTION, REVERT_ACTION):
            answer = bot.click(action, t.id, user=user)
            seen = slack.wait(lambda: slack.responses(answer.response_id))[0]["text"]
            assert "operator role" in seen or "only takes commands from members" in seen, (user, action, seen)
    assert writes(hub) == before
    [still] = [r for r in bot.ctx.schedules.store.all() if isinstance(r, Timed)]
    assert still.status == "active" and still.ends_at == t.ends_at


def test_home_approve_passes_the_click_check_of_the_requests_message(make_bot, hub, slack):
    from tests.test_approvals import ask

    hub.add_space("acme/chat", hardware="t4-small")
    slack.users.update({"UAPPX": {"team_id": "T9"}})
    bot = make_bot(SPACEOPS_APPROVERS="UAPPX,UAPP", SPACEOPS_OPERATORS="UOP")
    pending = ask(bot, slack, "hw acme/chat a100-large", user="UOP")
    home_click(bot, "UAPPX", "approval:approve", pending.id, team="T9")
    [said] = slack.wait(lambda: slack.posts("UAPPX"))
    assert "only takes commands from members" in said["text"]
    assert not hub.calls("POST", "/api/spaces/acme/chat/hardware")


# ---------------------------------------------------------------- 19.4 commands that name no Space


def test_commands_by_id_and_other_channels_follow_the_channels_scope(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    hub.add_space("beta/app")
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    seen = bot.command("/space schedule acme/demo pause daily 19:00")
    assert "pause" in seen["text"].lower(), seen
    [s] = [r for r in bot.ctx.schedules.store.all() if isinstance(r, Schedule)]
    assert "Watching" in bot.command("/space watch acme/*", channel="C2")["text"]
    bot.command("/space scope <#CBETA|x> beta/* operate", user="UADM")
    bot.command("/space scope <#CREAD|x> acme/* read", user="UADM")

    for text in (f"unschedule {s.id}", f"schedule pause {s.id}", f"schedule resume {s.id}"):
        for channel, says in (("CBETA", "may only name Spaces of"), ("CREAD", "read-only for")):
            seen = bot.command(f"/space {text}", channel=channel)["text"]
            assert says in seen, (text, channel, seen)
    assert [r.status for r in bot.ctx.schedules.store.all() if isinstance(r, Schedule)] == ["active"]

    listed = bot.command("/space schedules", channel="CBETA")["text"]
    assert listed.startswith("No schedule"), listed
    assert s.id in bot.command("/space schedules", channel="C1")["text"]

    seen = bot.command("/space digest <#C2|ops> daily 09:00", channel="CBETA")["text"]
    assert "may only name Spaces of" in seen, seen
    assert bot.ctx.fleet.store.digests() == {}


# ---------------------------------------------------------------- 19.5 scopes read with the normal client


BUSY = """local t = redis.call('TIME'); local start = t[1] * 1000000 + t[2]
while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - start > tonumber(ARGV[1]) then break end end
return 1"""


def slow_redis_moment(redis_client, micros: int = 700_000) -> None:
    """Redis busy with one long script (a fleet script over many Spaces): every client waits meanwhile."""
    thread = threading.Thread(target=redis_client.eval, args=(BUSY, 0, micros), daemon=True)
    thread.start()
    time.sleep(0.05)


def test_a_slow_redis_moment_does_not_open_a_read_only_channel(make_bot, hub, slack, redis_client):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    bot.command("/space scope <#CREAD|x> acme/* read", user="UADM")
    # The slow moment comes just as the command's checks start.
    bot.ctx.ops.guards.insert(0, lambda cmd, actor: slow_redis_moment(redis_client))
    seen = bot.command("/space restart acme/chat", channel="CREAD", timeout=8)
    assert "read-only for" in seen["text"], seen
    assert writes(hub) == []


def test_a_slow_redis_moment_does_not_drop_a_private_spaces_alert(make_bot, hub, slack, redis_client):
    hub.add_space("acme/priv", private=True)
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    bot.command("/space scope <#CACME|x> acme/* read", user="UADM")
    assert "Watching" in bot.command("/space watch acme/priv", channel="CACME")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step(0))
    outbox = bot.ctx.watcher.outbox
    may_post = outbox.may_post   # the slow moment comes just as the alert's channel is checked
    outbox.may_post = lambda space, channel: (slow_redis_moment(redis_client), may_post(space, channel))[1]
    hub.set_stage("acme/priv", "RUNTIME_ERROR", error="boom")
    tick(bot, clock)
    tick(bot, clock)
    assert slack.wait(lambda: [p for p in slack.posts("CACME") if "acme/priv" in p["text"]])


def test_when_scopes_cannot_be_read_changes_are_refused_with_a_sentence(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot()
    bot.ctx.access.scopes.reads = bot.ctx.access.scopes.redis = _down_client()
    seen = bot.command("/space restart acme/chat", channel="C5")
    assert "can't check this channel's scopes right now" in seen["text"] and "nothing was changed" in seen["text"]
    assert writes(hub) == []
    assert "acme/chat" in bot.command("/space status acme/chat", channel="C5")["text"]   # a public read goes on


def _down_client():
    """A client of a Redis that is not there (the scopes' reads only; the rest of the bot has its Redis)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


# ---------------------------------------------------------------- 19.7 Home Restart: one announcement, logged jobs


def test_home_restart_announces_once_in_the_dm_and_button_jobs_log_their_errors(make_bot, hub, slack, caplog):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    home_click(bot, "UOP", HOME_ACTIONS["restart"], "acme/chat")
    slack.wait(lambda: slack.posts("UOP"))
    slack.wait(lambda: slack.of("views.publish"))
    time.sleep(0.2)
    announced = [p for p in slack.posts("UOP") if "restarted" in p["text"]]
    assert len(announced) == 1, [p["text"] for p in slack.posts("UOP")]
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1

    def broken(cmd, actor):
        raise RuntimeError("a bug in a Home job")
    bot.ctx.ops.run = broken
    with caplog.at_level("ERROR"):
        home_click(bot, "UOP", HOME_ACTIONS["resume"], "acme/chat")
        deadline = time.monotonic() + 5
        while "a bug in a Home job" not in caplog.text:
            assert time.monotonic() < deadline, "the job's exception was not logged"
            time.sleep(0.02)


def test_an_alert_whose_channel_cannot_be_checked_is_routed_next_cycle(make_bot, hub, slack):
    hub.add_space("acme/priv", private=True)
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    bot.command("/space scope <#CACME|x> acme/* read", user="UADM")
    assert "Watching" in bot.command("/space watch acme/priv", channel="CACME")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step(0))
    scopes = bot.ctx.access.scopes
    working = scopes.reads
    scopes.reads = _down_client()            # this cycle, the channel's scopes can't be read
    hub.set_stage("acme/priv", "RUNTIME_ERROR", error="boom")
    try:
        tick(bot, clock)
    except Exception:  # noqa: BLE001 — however the cycle ends, the alert must not be lost
        pass
    assert not [p for p in slack.posts("CACME") if "acme/priv" in p["text"]]
    scopes.reads = working                   # the next cycle can
    tick(bot, clock)
    tick(bot, clock)
    assert slack.wait(lambda: [p for p in slack.posts("CACME") if "acme/priv" in p["text"]])
