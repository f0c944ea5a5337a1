"""Hot polling and command follow-through, end to end with an injected clock.

A real Redis, the Hub emulator driving stages, the Slack emulator recording posts and edits; the base
tick and the hot tick are called directly with the clock's time, nothing sleeps for an interval.
"""

from __future__ import annotations

import time

import pytest

from bot.alerts.hot import HOT_CEILING, HOT_FOR, hot_interval

from tests.test_alerts import clock, posts, tick, watch  # noqa: F401 — the clock fixture

RATE = {"RateLimit": '"api";r=0;t=120', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'}


@pytest.fixture(autouse=True)
def same_clock(bot, clock):
    """Changes made through commands are dated by the injected clock too."""
    bot.ctx.watcher.follow.clock = lambda: clock.now


def hot_tick(bot, clock, seconds: float = 5):
    return bot.ctx.watcher.hot_tick(clock.step(seconds))


def runtime_reads(hub, space="acme/chat"):
    return len(hub.calls("GET", f"/api/spaces/{space}/runtime"))


def message(slack, channel, ts):
    return slack.messages[(channel, ts)]


def followed(bot, space="acme/chat"):
    """The command's reply is seen once posted; its follow record is stored right after: wait for it."""
    deadline = time.monotonic() + 5
    while bot.ctx.watcher.follow.get(space) is None:
        assert time.monotonic() < deadline, "the change was not followed"
        time.sleep(0.01)


def announced(slack, channel="C1"):
    """(ts, message) of the bot's own announcement of a change in `channel`."""
    return next((ts, m) for (chan, ts), m in slack.messages.items() if chan == channel and m["text"].startswith("<@"))


def restarted(bot, hub, slack, clock, watched: bool = False) -> str:
    """acme/chat, read once, restarted from C1 (watching it when `watched`): the ts of its announcement."""
    hub.add_space("acme/chat")
    if watched:
        watch(bot, "watch acme/chat", "C1")
    tick(bot, clock)
    bot.command("/space restart acme/chat", channel="C1")
    followed(bot)
    return announced(slack)[0]


# ---------------------------------------------------------------------- hot polling


def test_a_change_through_the_bot_is_read_every_few_seconds_until_it_settles(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat", "C2")
    tick(bot, clock)                                           # baseline, and this replica leads
    seen = bot.command("/space restart acme/chat", channel="C1")
    assert seen["via"] == "chat.postMessage" and "now building" in seen["text"]
    reads = runtime_reads(hub)
    hot_tick(bot, clock)
    assert runtime_reads(hub) == reads + 1
    assert "is building" in posts(slack, "C2")[-1]["text"]     # seconds after the change, not a minute
    hub.set_stage("acme/chat", "RUNNING")
    hot_tick(bot, clock)
    assert "is back up after 5 s building" in posts(slack, "C2")[-1]["text"]
    assert bot.ctx.watcher.hot.get("acme/chat") is None        # settled: back on the batched interval
    reads = runtime_reads(hub)
    for _ in range(5):
        hot_tick(bot, clock)
    assert runtime_reads(hub) == reads


def test_a_transitional_stage_seen_in_the_batched_read_makes_the_space_hot(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    hub.add_space("acme/other")
    watch(bot, "watch acme/chat")
    watch(bot, "watch acme/other")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    assert bot.ctx.watcher.hot.get("acme/chat").reason == "stage"
    assert bot.ctx.watcher.hot.get("acme/other") is None
    other_reads = runtime_reads(hub, "acme/other")
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    hot_tick(bot, clock, 3)
    crash = posts(slack, "C1")[-1]
    assert "crashed after 3 s building" in crash["text"] and "alert:restart" in str(crash["blocks"])
    assert runtime_reads(hub, "acme/other") == other_reads    # not hot: stays on the batched read


def test_a_new_commit_in_the_batched_read_makes_the_space_hot(bot, hub, slack, clock):
    for i in range(3):
        hub.add_space(f"acme/s{i}")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    listing = [c for c in hub.calls("GET", "/api/spaces") if c.query.get("author") == ["acme"]]
    assert set(listing[-1].query["expand"]) == {"runtime", "sha", "private"}
    tick(bot, clock)
    assert bot.ctx.watcher.hot.entries() == {}                  # the first sighting of a commit is a baseline
    hub.spaces["acme/s1"]["sha"] = "3f2a1c9" + "0" * 33        # a push
    tick(bot, clock)
    entry = bot.ctx.watcher.hot.get("acme/s1")
    assert entry.reason == "push" and entry.sha.startswith("3f2a1c9")
    hub.set_stage("acme/s1", "BUILDING")
    hot_tick(bot, clock)
    assert "acme/s1" in posts(slack, "C1")[-1]["text"] and "building" in posts(slack, "C1")[-1]["text"]


@pytest.mark.slow
def test_hot_reads_stop_after_30_minutes(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat", "C2")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    for _ in range(32):
        tick(bot, clock)                                       # the base tick keeps the lease
        hot_tick(bot, clock, 1)
    assert bot.ctx.watcher.hot.get("acme/chat") is None
    reads = runtime_reads(hub)
    hot_tick(bot, clock)
    assert runtime_reads(hub) == reads


def test_hot_interval_stretches_when_the_budget_runs_low():
    # A window of 1,000 with 100 spent: hot reads may bring its use up to HOT_CEILING of the quota.
    allowance = HOT_CEILING * 1000 - 100
    assert hot_interval(5, 10, None, 200, 0) == 5                          # no RateLimit header: base interval
    assert hot_interval(5, 2, 900, 200, 300, 1000) == 5                    # 120 reads wanted: fits
    assert hot_interval(5, 10, 900, 200, 300, 1000) == 5 * 600 / allowance  # 600 wanted: stretched
    stretched = hot_interval(5, 20, 900, 200, 300, 1000)
    assert 5 < stretched and 20 * 300 / stretched <= allowance + 1e-6
    assert hot_interval(5, 20, 550, 200, 120, 1000) == 120                 # ceiling reached: wait for the reset
    assert hot_interval(5, 1, 200, 200, 120, 1000) == 120                  # at the reserve: wait for the reset


def test_peoples_commands_do_not_count_against_the_hot_ceiling_but_the_reserve_holds():
    # 600 spent this window, 300 of them by people's commands (their reads before a restart, say): hot reads
    # still have what the poll left them under the ceiling, and never the commands' reserve.
    assert hot_interval(5, 20, 400, 200, 120, 1000) == 120                 # counted as the poll's: ceiling reached
    follows = hot_interval(5, 20, 400, 200, 120, 1000, commands=300)
    assert follows < 120 and 20 * 120 / follows <= HOT_CEILING * 1000 - 300 + 1e-6
    # 10 requests above the reserve: 480 reads wanted until the reset, stretched to fit those 10
    assert hot_interval(5, 20, 210, 200, 120, 1000, commands=500) == 5 * 480 / 10
    assert hot_interval(5, 1, 200, 200, 120, 1000, commands=600) == 120    # at the reserve: wait for the reset


def test_a_429_on_a_hot_read_means_reading_less_never_an_alert(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    bot.command("/space restart acme/chat")
    hub.inject("GET", "/api/spaces/acme/chat/runtime", status=429, headers=RATE)
    report = hot_tick(bot, clock)
    assert report.rate_limited and report.read == 0
    reads = runtime_reads(hub)
    report = hot_tick(bot, clock)                               # the window has not reset: no request at all
    assert runtime_reads(hub) == reads
    assert [p for p in posts(slack, "C1") if "can't read" in p["text"]] == []
    budget = bot.ctx.watcher.poller.budget
    assert budget.remaining == 0 and budget.reserve == 200      # the commands' reserve is not spent


# ---------------------------------------------------------------------- command follow-through


def test_restart_is_followed_in_its_announcement_until_running(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    tick(bot, clock)
    bot.command("/space restart acme/chat", user="UALICE")
    followed(bot)
    ts, first = announced(slack)
    assert first["text"].startswith("<@UALICE> restarted `acme/chat`: now building. The Hub now reports")
    hot_tick(bot, clock, 60)
    assert "building… (1 min)" in message(slack, "C1", ts)["text"]
    edits = message(slack, "C1", ts)["updates"]
    hot_tick(bot, clock, 5)
    assert message(slack, "C1", ts)["updates"] == edits         # same words: no edit every 5 s
    hub.set_stage("acme/chat", "RUNNING")
    hot_tick(bot, clock, 68)
    assert "running again after 2 min 13 s" in message(slack, "C1", ts)["text"]
    done = message(slack, "C1", ts)["updates"]
    hot_tick(bot, clock)
    assert message(slack, "C1", ts)["updates"] == done          # followed no more


def test_a_crash_after_a_change_shows_the_error_logs_and_a_restart_button(bot, hub, slack, clock):
    hub.add_space("acme/chat", hardware="t4-small")
    watch(bot, "watch acme/chat", "C1")                         # the same channel watches it
    watch(bot, "watch acme/chat <#C2|ops>", "C1")               # and another one
    tick(bot, clock)
    bot.command("/space var set acme/chat BATCH=64")
    followed(bot)
    hub.set_stage("acme/chat", "BUILDING")
    hot_tick(bot, clock)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    hub.logs["acme/chat"] = ["Loading model...", "torch.OutOfMemoryError: CUDA out of memory"]
    hot_tick(bot, clock, 35)
    ts, _ = announced(slack)
    edited = message(slack, "C1", ts)
    assert "crashed after 40 s: CUDA out of memory" in edited["text"]
    assert "torch.OutOfMemoryError" in str(edited["blocks"]) and "alert:restart" in str(edited["blocks"])
    assert not [p for p in posts(slack, "C1") if "crashed" in p["text"]]    # no second message in C1
    assert [p for p in posts(slack, "C2") if "crashed" in p["text"]]        # the other channel hears it


@pytest.mark.slow
def test_following_stops_after_30_minutes_saying_it_may_be_stuck(bot, hub, slack, clock):
    ts = restarted(bot, hub, slack, clock)
    for _ in range(31):
        tick(bot, clock)
        hot_tick(bot, clock, 1)
    assert "still building after 3" in message(slack, "C1", ts)["text"]
    assert "stuck?" in message(slack, "C1", ts)["text"]
    assert bot.ctx.watcher.follow.get("acme/chat") is None


def test_when_the_bot_may_not_post_the_announcement_goes_through_response_url(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    slack.fail("chat.postMessage", 200, {"ok": False, "error": "not_in_channel"})
    seen = bot.command("/space restart acme/chat")
    assert seen["via"] == "response_url" and seen["response_type"] == "in_channel"
    assert bot.ctx.watcher.follow.get("acme/chat") is None
    assert bot.ctx.watcher.hot.get("acme/chat") is not None     # still read often: watchers hear it fast


def test_sleep_time_makes_it_hot_but_is_announced_as_before(bot, hub, slack, clock):
    hub.add_space("acme/gpu", hardware="t4-small", sleep=3600)
    seen = bot.command("/space sleep acme/gpu 30m")  # shorter: no approver needed (a longer one costs more)
    assert seen["via"] == "response_url" and "sleeps after 30 min idle" in seen["text"]
    assert bot.ctx.watcher.hot.get("acme/gpu").reason == "sleep"
    assert HOT_FOR == 30 * 60


def test_a_follow_through_edit_slack_refused_is_retried_and_lands_once(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    tick(bot, clock)
    bot.command("/space restart acme/chat")
    followed(bot)
    ts, _ = announced(slack)
    hot_tick(bot, clock)                                        # building… (5 s)
    hub.set_stage("acme/chat", "RUNNING")
    slack.fail("chat.update", 503)
    hot_tick(bot, clock, 30)
    assert "running again" not in message(slack, "C1", ts)["text"]
    hot_tick(bot, clock)                                        # the outbox retries it
    assert "running again after 35 s" in message(slack, "C1", ts)["text"]
    assert message(slack, "C1", ts)["updates"] == 2
    for _ in range(3):
        hot_tick(bot, clock)
    assert message(slack, "C1", ts)["updates"] == 2


def test_an_approved_upgrade_makes_the_space_hot(make_bot, hub, slack):
    from tests.test_approvals import ask, click

    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(SPACEOPS_APPROVERS="UAPP")
    pending = ask(bot, slack, user="U1")
    assert bot.ctx.watcher.hot.get("acme/chat") is None          # a request changes nothing yet
    assert click(bot, slack, pending, "UAPP").startswith("Approved")
    assert bot.ctx.watcher.hot.get("acme/chat").reason == "hw"


# ---------------------------------------------------------------------- follow records end (issue 18, 18.1)


def test_with_hot_reads_starved_the_channel_of_the_change_still_hears_it_from_the_batched_read(bot, hub, slack,
                                                                                                clock):
    ts = restarted(bot, hub, slack, clock, watched=True)
    tick(bot, clock)                                            # no hot read at all: only the batched one
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    tick(bot, clock)
    crashed = [p for p in posts(slack, "C1") if "crashed" in p["text"]]
    assert "crashed after" in message(slack, "C1", ts)["text"] or crashed


def test_a_crash_two_hours_after_a_restart_reaches_the_channel_when_hot_reads_never_ran(bot, hub, slack, clock):
    restarted(bot, hub, slack, clock, watched=True)
    hub.set_stage("acme/chat", "RUNNING")
    for _ in range(12):
        tick(bot, clock, 600)                                   # two hours of batched reads, no hot tick
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    tick(bot, clock)
    assert [p for p in posts(slack, "C1") if "crashed" in p["text"]]
    assert bot.ctx.watcher.follow.get("acme/chat") is None


def test_a_follow_record_ends_by_itself_in_redis(bot, hub, slack, clock, redis_client):
    from bot.alerts.followthrough import FOLLOW_FOR, FOLLOWS

    restarted(bot, hub, slack, clock)
    assert 0 < redis_client.ttl(FOLLOWS) <= 2 * FOLLOW_FOR + 60  # even if no tick of any kind ever runs again


def test_an_announcement_without_reads_does_not_claim_the_space_is_stuck(bot, hub, slack, clock):
    ts = restarted(bot, hub, slack, clock)
    hub.inject("GET", "/api/spaces", status=503, times=10_000)
    for _ in range(31):
        tick(bot, clock)
        hot_tick(bot, clock, 1)
    text = message(slack, "C1", ts)["text"]
    assert "stuck?" not in text and "could not read" in text
    assert bot.ctx.watcher.follow.get("acme/chat") is None


def test_a_second_change_finishes_the_first_announcement(bot, hub, slack, clock):
    first = restarted(bot, hub, slack, clock)
    bot.command("/space var set acme/chat BATCH=64", channel="C2")
    deadline = time.monotonic() + 5
    while bot.ctx.watcher.follow.get("acme/chat").channel != "C2":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second, _ = announced(slack, "C2")
    hot_tick(bot, clock)                                        # building…
    hub.set_stage("acme/chat", "RUNNING")
    hot_tick(bot, clock, 20)
    assert "running again" in message(slack, "C2", second)["text"]
    assert "later change" in message(slack, "C1", first)["text"]   # finished, pointing at the later one
    assert message(slack, "C1", first)["updates"] >= 1


def test_the_follow_hides_only_what_its_announcement_reports():
    from bot.alerts.followthrough import FOLLOW_FOR, Follow, reports
    from bot.alerts.transitions import Alert

    follow = Follow("acme/chat", "C1", "1.0", "restarted", started=1000.0)

    def alert(new, at, kind="transition"):
        return Alert(kind=kind, space="acme/chat", at=at, kinds=("transition",), old="RUNNING", new=new)

    assert reports(follow, alert("BUILDING", 1010))
    assert reports(follow, alert("RUNTIME_ERROR", 1100))
    assert not reports(follow, alert("BUILDING", 990))                 # before the change
    assert not reports(follow, alert("RUNTIME_ERROR", 1000 + FOLLOW_FOR))  # after the announcement stopped
    assert not reports(follow, alert("RUNNING", 1010, kind="crashloop"))


def test_a_read_racing_a_later_change_neither_revives_nor_overwrites_its_record(bot, hub, slack, clock):
    from bot.alerts.transitions import Observation

    restarted(bot, hub, slack, clock)
    follow = bot.ctx.watcher.follow
    loaded = follow.get("acme/chat")                           # what a read loaded just before the change
    bot.command("/space var set acme/chat BATCH=64", channel="C2")
    deadline = time.monotonic() + 5
    while follow.get("acme/chat").channel != "C2":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    follow._observe(loaded, Observation("acme/chat", "BUILDING", clock.now + 5), clock.now + 5)
    assert follow.get("acme/chat").channel == "C2"             # the later announcement is still followed
    first, _ = announced(slack, "C1")
    follow._observe(loaded, Observation("acme/chat", "RUNNING", clock.now + 200), clock.now + 200)
    bot.ctx.watcher.drain(clock.now)                           # the outbox makes the edits that were queued
    assert follow.get("acme/chat").channel == "C2"             # and the earlier one's end does not end it
    assert "later change" in message(slack, "C1", first)["text"]   # nor edits the earlier announcement again
