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
    first_seen = clock.now
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock, 20 * MIN)
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, 3 * HOUR)
    tick(bot, clock, 5 * HOUR)               # still asleep
    text = shown(bot.command("/space cost acme/chat"))
    assert "acme/chat — $1.80 · 3.0 h billed · t4-medium" in text, text
    assert "Total: $1.80 (estimate)" in text
    # The day of the first sighting itself (9 h before now less the steps was a day early after 09:00 UTC).
    day = time.strftime("%Y-%m-%d", time.gmtime(first_seen))
    assert f"since {day}, when the bot first saw acme/chat" in text
    # Nine hours of a Space that sleeps when idle say little about its month.
    assert ("not enough history yet to project: acme/chat observed for 9 h (it sleeps or stops, so a projection "
            "needs 24 h of its use)") in text

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


def test_cost_defaults_to_this_channels_namespaces_and_flags_idle_spend(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_OPERATORS="UOP,U1")
    clock = Clock(time.time() - 26 * HOUR)
    hub.add_space("acme/big", hardware="a10g-large")          # paid, never sleeps
    hub.spaces["acme/big"]["gcTimeout"] = None
    hub.add_space("acme/free")                                 # cpu-basic: free
    hub.add_space("other/x", hardware="t4-small")
    watch(bot, "acme/* <#C1|ops>", "C1")
    watch(bot, "other/x <#C2|elsewhere>", "C1")
    tick(bot, clock)
    tick(bot, clock, 2 * HOUR)
    seen = bot.command("/space cost", channel="C1")
    text = shown(seen)
    assert "Estimated spend of acme/* — last 7 days" in text
    assert "other/x" not in text                               # watched in another channel
    lines = text.splitlines()
    big = next(i for i, line in enumerate(lines) if line.startswith("acme/big —"))
    free = next(i for i, line in enumerate(lines) if line.startswith("acme/free —"))
    assert big < free and "acme/free — $0.00 · 0.0 h billed" in text   # highest first
    assert "Possible idle spend (1)" in text and "about $36.00/day" in text
    buttons = [b["accessory"] for b in seen["blocks"] if b.get("accessory")]
    assert buttons == [{"type": "button", "text": {"type": "plain_text", "text": "Set 1 h sleep"},
                        "action_id": ALERT_ACTIONS["sleep"], "value": "acme/big", "style": "primary"}]
    refused = bot.click(ALERT_ACTIONS["sleep"], "acme/big", user="UNOBODY")
    [reply] = slack.wait(lambda: slack.responses(refused.response_id))
    assert "operator role" in reply["text"] and not hub.calls("POST", "/api/spaces/acme/big/sleeptime")
    done = bot.click(ALERT_ACTIONS["sleep"], "acme/big", user="UOP")
    slack.wait(lambda: slack.responses(done.response_id))
    assert hub.calls("POST", "/api/spaces/acme/big/sleeptime")[0].body == {"seconds": 3600}

    nothing = bot.command("/space cost", channel="C5")
    assert "Nothing is watched in" in nothing["text"]
    unknown = bot.command("/space cost nobody/*", channel="C1")
    assert "no record of nobody/*" in unknown["text"]
    bad = bot.command("/space cost acme/* --days 0 ")
    assert "out of range" in bad["text"]


def test_cost_month_and_chart(bot, hub, slack):
    clock = Clock(time.time() - 3 * HOUR)
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    watch(bot, "acme/chat")
    tick(bot, clock)
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, 2 * HOUR)
    text = shown(bot.command("/space cost acme/* --month --chart"))
    month = time.strftime("%Y-%m", time.gmtime())
    assert f"Estimated spend of acme/* — {month}" in text and "$1.20" in text
    [upload] = slack.wait(lambda: slack.files)
    assert upload["channel"] == "C1" and upload["bytes"][:8] == b"\x89PNG\r\n\x1a\n"


def event(bot, event_body: dict) -> None:
    body = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()), "event": event_body}
    answer = bot.post(json.dumps(body).encode(), "application/json")
    assert answer.status == 200, answer.body


def open_home(bot, slack, user: str) -> dict:
    before = len([c for c in slack.of("views.publish") if c.body.get("user_id") == user])
    event(bot, {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home",
                "event_ts": f"{time.time():.6f}"})
    calls = slack.wait(lambda: [c for c in slack.of("views.publish") if c.body.get("user_id") == user][before:])
    assert calls, f"no views.publish for {user}"
    return slack.views[user]["view"]


def actions_of(view: dict) -> list[str]:
    return [e.get("action_id") for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]] + \
        [b["accessory"].get("action_id") for b in view["blocks"] if b.get("accessory")]


def test_app_home_per_role(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_OPERATORS="UOP,U1", SPACEOPS_APPROVERS="UAPP")
    clock = Clock(time.time() - 2 * HOUR)
    hub.add_space("acme/chat", hardware="t4-small")
    hub.add_space("acme/broken", stage="RUNTIME_ERROR", hardware="t4-medium", error="CUDA out of memory")
    watch(bot, "acme/*")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    asked = bot.command("/space hw acme/chat a100-large", user="UOP")
    assert "approver" in asked["text"].lower() or "request" in asked["text"].lower(), asked

    member = open_home(bot, slack, "UMEM")
    text = as_text("", member["blocks"])
    assert member["type"] == "home" and "2 watched Spaces" in text
    assert "acme — 1 running · 0 asleep · 1 broken" in text
    assert text.index("acme/broken") < text.index("acme/chat")                # broken first
    assert "CUDA out of memory" in text and "t4-small $0.40/h" in text
    assert set(actions_of(member)) == {"home:open:acme/chat", "home:open:acme/broken"}   # reads only
    assert "Pending hardware requests" not in text

    operator = open_home(bot, slack, "UOP")
    acts = actions_of(operator)
    assert {HOME_ACTIONS["restart"], HOME_ACTIONS["pause"], HOME_ACTIONS["sleep"]} <= set(acts)
    assert "approval:approve" not in acts

    approver = open_home(bot, slack, "UAPP")
    text = as_text("", approver["blocks"])
    assert "Pending hardware requests (1)" in text and "a100-large" in text
    assert {"approval:approve", "approval:deny"} <= set(actions_of(approver))
    assert HOME_ACTIONS["restart"] not in actions_of(approver)               # not an operator
    request_id = next(e["value"] for b in approver["blocks"] if b["type"] == "actions" for e in b["elements"]
                      if e["action_id"] == "approval:approve")
    assert len(json.dumps(approver)) < 250_000 and len(approver["blocks"]) <= 100

    # Approve from the Home: decided once, through the approvals feature.
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "UAPP"}, "api_app_id": "A1",
               "token": "legacy", "trigger_id": "trig.home1", "container": {"type": "view", "view_id": "VUAPP"},
               "view": {"id": "VUAPP", "type": "home", "blocks": []},
               "actions": [{"type": "button", "action_id": "approval:approve", "block_id": "b", "value": request_id,
                            "action_ts": "1"}]}
    assert bot.interact(payload).status == 200
    assert slack.wait(lambda: hub.calls("POST", "/api/spaces/acme/chat/hardware"))
    assert slack.wait(lambda: [p for p in slack.posts("UAPP") if "pprove" in p["text"]])

    # A member's click on a Home button is refused by the same roles; an operator's runs.
    for user in ("UMEM", "UOP"):
        payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
                   "token": "legacy", "trigger_id": f"trig.home.{user}", "container": {"type": "view", "view_id": "V"},
                   "view": {"id": "V", "type": "home", "blocks": []},
                   "actions": [{"type": "button", "action_id": HOME_ACTIONS["restart"], "block_id": "b",
                                "value": "acme/broken", "action_ts": "1"}]}
        assert bot.interact(payload).status == 200
        slack.wait(lambda: slack.posts(user))
    assert "operator role" in slack.posts("UMEM")[0]["text"]
    assert "restarted" in slack.posts("UOP")[-1]["text"]
    assert len(hub.calls("POST", "/api/spaces/acme/broken/restart")) == 1


def test_app_home_pages_large_fleets_and_refreshes_on_stage_change(bot, hub, slack):
    clock = Clock(time.time() - HOUR)
    for i in range(130):
        hub.add_space(f"acme/s{i:03d}", hardware="t4-small" if i % 2 else "cpu-basic")
    hub.set_stage("acme/s077", "RUNTIME_ERROR", error="boom")
    watch(bot, "acme/*")
    tick(bot, clock)
    view = open_home(bot, slack, "U1")
    assert len(view["blocks"]) <= 100 and len(json.dumps(view)) < 250_000
    text = as_text("", view["blocks"])
    assert "130 watched Spaces" in text and "[Show all 130]" in text
    first_row = next(b for b in view["blocks"] if b["type"] == "section" and "acme/s" in b["text"]["text"]
                     and "for" in b["text"]["text"])
    assert "acme/s077" in first_row["text"]["text"]                          # broken first
    page = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1"}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": "trig.page1", "container": {"type": "view", "view_id": "VU1"},
            "view": {"id": "VU1", "type": "home", "blocks": []},
            "actions": [{"type": "button", "action_id": HOME_ACTIONS["page"], "block_id": "b", "value": "2",
                         "action_ts": "1"}]}
    publishes = len(slack.of("views.publish"))
    bot.interact(page)
    slack.wait(lambda: len(slack.of("views.publish")) > publishes)
    paged = as_text("", slack.views["U1"]["view"]["blocks"])
    assert "Spaces 21–40 of 130, by name" in paged and "acme/s020" in paged and "[Next →]" in paged

    # A stage change republishes the Home of a recent visitor, at most once per 10 s.
    publishes = len(slack.of("views.publish"))
    hub.set_stage("acme/s001", "RUNTIME_ERROR", error="x")
    tick(bot, clock, 60)
    assert len(slack.of("views.publish")) == publishes + 1
    hub.set_stage("acme/s003", "RUNTIME_ERROR", error="y")
    tick(bot, clock, 5)                                         # within 10 s: held back
    assert len(slack.of("views.publish")) == publishes + 1
    tick(bot, clock, 6)                                         # later: caught up
    assert len(slack.of("views.publish")) == publishes + 2
    tick(bot, clock, 60)                                        # nothing changed: no publish
    assert len(slack.of("views.publish")) == publishes + 2
    assert slack.of("views.publish")[-1].body.get("hash")       # published over the last view's hash


def month_start_clock() -> Clock:
    now = time.gmtime()
    import calendar
    return Clock(calendar.timegm((now.tm_year, now.tm_mon, 1, 1, 0, 0)))


def test_budget_thresholds_alerted_once_each(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_ADMINS="UA")
    refused = bot.command("/space budget acme/* 10/month", user="UX", channel="C9")
    assert "admins" in refused["text"]
    assert "set a budget of $10.00/month" in bot.command("/space budget acme/* 10/month", user="UA",
                                                         channel="C9")["text"]
    clock = month_start_clock()
    hub.add_space("acme/gpu", hardware="a10g-large")              # $1.50/h, never sleeps
    hub.spaces["acme/gpu"]["gcTimeout"] = None
    watch(bot, "acme/*")

    def budget_posts():
        return [p for p in slack.posts("C9") if "budget" in p["text"]]

    tick(bot, clock)
    tick(bot, clock, MIN)
    assert [p["text"] for p in budget_posts()] == ["`acme/*` :chart_with_upwards_trend: is projected to exceed its "
                                                   "budget this month."]
    tick(bot, clock, 5 * HOUR)                                   # $7.5: under 80%
    tick(bot, clock, MIN)
    assert len(budget_posts()) == 1
    tick(bot, clock, 30 * MIN)                                   # $8.3: 80%
    tick(bot, clock, MIN)
    assert len(budget_posts()) == 2 and "80%" in budget_posts()[1]["text"]
    tick(bot, clock, HOUR)                                        # $9.8
    tick(bot, clock, 30 * MIN)                                    # $10.6: 100%
    tick(bot, clock, MIN)
    for _ in range(3):
        tick(bot, clock, 10 * MIN)
    posts = budget_posts()
    assert len(posts) == 3 and "whole budget" in posts[2]["text"]
    assert "when the bot first saw acme/gpu" in str(posts[2]["blocks"])
    actions = [e["action_id"] for b in posts[2]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == [BUDGET_ACTIONS["pause"], ALERT_ACTIONS["sleep"]]
    shown_budget = bot.command("/space budget acme/*", channel="C9")["text"]
    assert "of a $10.00/month budget" in shown_budget
    assert "removed the budget" in bot.command("/space budget acme/* off", user="UA")["text"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_digest_posted_once_per_period_across_replicas_and_handover(make_bot, hub, slack):
    one, two = make_bot(SPACEOPS_OPERATORS="UOP,U1"), make_bot(SPACEOPS_OPERATORS="UOP,U1")
    refused = one.command("/space digest <#C7|ops> daily 09:00", user="UX")
    assert "operator role" in refused["text"]
    assert "daily digest" in one.command("/space digest <#C7|ops> daily 09:00 --tz Europe/Paris",
                                         user="UOP")["text"]
    assert "<#C7" in one.command("/space digests")["text"] and "Europe/Paris" in one.command("/space digests")["text"]
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    hub.add_space("acme/down", stage="RUNTIME_ERROR", hardware="t4-small", error="boom")
    watch(one, "acme/* <#C7|ops>", "C1")
    clock = Clock(time.time())
    one.ctx.watcher.tick(clock.now)               # one leads
    two.ctx.watcher.tick(clock.now)
    hub.set_stage("acme/chat", "SLEEPING")
    one.ctx.watcher.tick(clock.step(3 * HOUR))
    # The next 09:00 in Paris, a minute later.
    from bot.fleet.digests import digest_due
    period, due = digest_due({"period": "daily", "time": "09:00", "tz": "Europe/Paris"}, clock.now + DAY)
    clock.now = due + MIN
    one.ctx.watcher.tick(clock.now)
    assert one.ctx.fleet.digest_tick(clock.now) + two.ctx.fleet.digest_tick(clock.now) == 1
    assert one.ctx.fleet.digest_tick(clock.step(MIN)) == 0
    [digest] = [p for p in slack.posts("C7") if "digest" in p["text"]]
    text = as_text(digest["text"], digest["blocks"])
    assert "Daily digest" in text and "Uptime and incidents" in text and "acme/down" in text
    assert "Broken or stuck now" in text and "Spend:" in text and "since " in text
    [upload] = slack.wait(lambda: slack.files)
    ts = next(ts for (channel, ts), m in slack.messages.items() if channel == "C7" and "digest" in (m["text"] or ""))
    assert upload["channel"] == "C7" and upload["thread_ts"] == ts
    width, height = png_size(upload["bytes"])
    assert width >= 800 and height >= 400 and len(upload["bytes"]) > 5_000

    # Handover: the leader stops; the other takes the lease and does not post the same period again.
    one.ctx.watcher.stop(release=True)
    clock.step(2 * MIN)
    two.ctx.watcher.tick(clock.now)
    assert two.ctx.fleet.digest_tick(clock.now) == 0
    # Both down for almost three days: the latest missed digest is posted late, once (not the two before it).
    clock.step(3 * DAY - 2 * HOUR)
    two.ctx.watcher.tick(clock.now)
    assert two.ctx.fleet.digest_tick(clock.now) == 1
    assert two.ctx.fleet.digest_tick(clock.step(MIN)) == 0
    late = [p for p in slack.posts("C7") if "digest" in p["text"]]
    assert len(late) == 2 and "posted late" in str(late[1]["blocks"])
    assert "Stopped the digest" in two.command("/space digest <#C7|ops> off", user="UOP")["text"]


def test_rollup_of_a_transition_is_pure_and_split_at_midnight():
    from bot.alerts.rollups import transition_rollup
    from bot.alerts.transitions import SpaceState
    midnight = 1764547200.0                                      # 2025-12-01 00:00 UTC
    prev = SpaceState("acme/chat", "RUNNING", since=midnight - 2 * HOUR, hardware="t4-medium", incident=None)
    down = SpaceState("acme/chat", "RUNTIME_ERROR", since=midnight + HOUR, hardware="t4-medium",
                      incident=midnight + HOUR)
    deltas = transition_rollup(prev, down, 0.6)
    assert deltas["2025-11-30"].add == {"up": 7200, "b|t4-medium|0.6": 7200}
    assert deltas["2025-11-30"].strip == "." * 22 + "rr"
    assert deltas["2025-12-01"].add == {"up": 3600, "b|t4-medium|0.6": 3600, "inc": 1}
    back = SpaceState("acme/chat", "RUNNING", since=midnight + 3 * HOUR, hardware="t4-medium", incident=None)
    deltas = transition_rollup(down, back, 0.6)
    assert deltas["2025-12-01"].peak == {"out": 7200} and deltas["2025-12-01"].strip[1:3] == "bb"
    assert "b|t4-medium|0.6" not in deltas["2025-12-01"].add    # an error is not billed
    free = SpaceState("acme/x", "RUNNING", since=midnight, hardware="cpu-basic")
    assert transition_rollup(free, SpaceState("acme/x", "SLEEPING", since=midnight + HOUR), 0.0)[
        "2025-12-01"].add == {"up": 3600}


def test_digest_due_follows_the_time_zone_and_mondays():
    from bot.fleet.digests import digest_due
    import calendar
    wednesday_noon = calendar.timegm((2026, 12, 2, 12, 0, 0))   # 13:00 in Paris
    period, due = digest_due({"period": "daily", "time": "09:00", "tz": "Europe/Paris"}, wednesday_noon)
    assert period == "2026-12-02" and due == calendar.timegm((2026, 12, 2, 8, 0, 0))
    period, due = digest_due({"period": "weekly", "time": "09:00", "tz": "UTC"}, wednesday_noon)
    assert period == "2026-W49" and due == calendar.timegm((2026, 11, 30, 9, 0, 0))


@pytest.mark.slow
def test_digest_shows_a_private_spaces_error_text_only_where_its_namespace_is_in_scope(make_bot, hub, slack):
    """As `/space status` does: a private Space's error text goes to a channel scoped to its namespace (or a
    DM), never into an unscoped one; a public Space's error text goes everywhere."""
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    hub.add_space("acme/secret", stage="RUNTIME_ERROR", hardware="t4-small", private=True,
                  error="KeyError: 'HF_PRIVATE_DATASET_ROW'")
    hub.add_space("acme/open", stage="RUNTIME_ERROR", hardware="t4-small", error="boom in public")
    assert "scoped" in bot.command("scope <#C8|acme-ops> acme/*", user="UADM")["text"]
    watch(bot, "acme/* <#C7|general>")
    watch(bot, "acme/* <#C8|acme-ops>")
    now = time.time()
    bot.ctx.watcher.tick(now)
    asked = len(hub.requests)
    config = {"period": "daily", "time": "09:00", "tz": "UTC"}
    bot.ctx.fleet.post_digest("C7", config, now, now + MIN)
    bot.ctx.fleet.post_digest("C8", config, now, now + MIN)
    # Whether each is private came with the poller's batched read: the digests asked the Hub nothing.
    assert hub.requests[asked:] == []
    [unscoped] = [as_text(p["text"], p["blocks"]) for p in slack.posts("C7") if "digest" in p["text"]]
    [scoped] = [as_text(p["text"], p["blocks"]) for p in slack.posts("C8") if "digest" in p["text"]]
    assert "acme/secret" in unscoped and "HF_PRIVATE_DATASET_ROW" not in unscoped
    assert "private: its error text and spend are shown in a channel scoped to its namespace" in unscoped
    assert "spend private" in unscoped and "spend private" not in scoped   # its spend too (issue 19)
    assert "boom in public" in unscoped
    assert "HF_PRIVATE_DATASET_ROW" in scoped and "boom in public" in scoped and "private:" not in scoped


def test_cost_projects_a_sleeping_space_only_after_a_day_of_history(bot, hub):
    """The first minutes: "not enough history yet"; a day later, a projection from the share of time it ran."""
    clock = Clock(time.time() - 30 * HOUR)
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    watch(bot, "acme/chat")
    tick(bot, clock)
    tick(bot, clock, 3 * MIN)
    bot.ctx.fleet.clock = lambda: clock.now
    text = shown(bot.command("/space cost acme/chat"))
    assert "This month: $0.03 so far · not enough history yet to project: acme/chat observed for 3 min" in text, text
    assert "projected at today's" not in text
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, 57 * MIN)
    tick(bot, clock, 24 * HOUR)
    text = shown(bot.command("/space cost acme/chat"))
    assert "projected at today's hardware and sleep settings" in text and "not enough history" not in text, text
