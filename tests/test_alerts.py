"""Alerts end to end: a real Redis, the Hub emulator driving stages, the Slack emulator recording posts.

Ticks are called directly with an injected clock; nothing sleeps for an interval.
"""

from __future__ import annotations

import time

import pytest

MIN = 60.0


class Clock:
    """The injected `now`: starts at the real time so mutes set by commands line up."""

    def __init__(self):
        self.now = time.time()

    def step(self, seconds: float = MIN) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock():
    return Clock()


def tick(bot, clock, seconds: float = MIN):
    return bot.ctx.watcher.tick(clock.step(seconds))


def watch(bot, text: str, channel: str = "C1") -> dict:
    seen = bot.command(f"/space {text}", channel=channel)
    assert "Watching" in seen["text"] or "Updated" in seen["text"], seen
    return seen


def posts(slack, channel=None):
    return slack.posts(channel)


def test_transition_posts_once_per_watching_channel(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat", "C1")
    watch(bot, "watch acme/* <#C2|ops>", "C1")
    tick(bot, clock)                       # baseline: no alert
    assert posts(slack) == []
    tick(bot, clock)                       # nothing changed
    assert posts(slack) == []
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory <!channel>")
    hub.logs["acme/chat"] = [f"line {i}" for i in range(50)] + ["Traceback: boom"]
    tick(bot, clock)
    c1, c2 = posts(slack, "C1"), posts(slack, "C2")
    assert len(c1) == 1 and len(c2) == 1
    text = str(c1[0]["blocks"])
    # It was running when the bot first saw it: two minutes is all that was observed, said as a lower bound.
    assert "crashed" in c1[0]["text"] and "(was running for at least 2 min)" in c1[0]["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "Traceback: boom" in text and "line 10" not in text   # last lines only
    assert "alert:restart" in text
    tick(bot, clock)
    assert len(posts(slack)) == 2                                  # unchanged: nothing more


def test_incident_thread_and_recovery_edit(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    tick(bot, clock)
    root = slack.of("chat.postMessage")[0]
    root_ts = next(ts for (chan, ts), m in slack.messages.items() if chan == "C1" and not m["thread_ts"])
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock, 3 * MIN)
    tick(bot, clock, 3 * MIN)
    tick(bot, clock, 3 * MIN)
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock, 3 * MIN)
    threaded = [p for p in posts(slack, "C1") if p.get("thread_ts")]
    assert [p["thread_ts"] for p in threaded] == [root_ts, root_ts]
    assert "is back up" in threaded[-1]["text"]
    updates = slack.of("chat.update")
    assert len(updates) == 1 and updates[0].body["ts"] == root_ts
    assert "recovered after 12 min" in updates[0].body["text"]
    assert "crashed" in root.body["text"]
    # The next incident starts a new thread.
    hub.set_stage("acme/chat", "BUILD_ERROR")
    tick(bot, clock)
    assert not posts(slack, "C1")[-1].get("thread_ts")


def test_unwatch_stops_posts(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    assert "Stopped watching" in bot.command("/space unwatch acme/chat")["text"]
    hub.set_stage("acme/chat", "PAUSED")
    tick(bot, clock)
    assert posts(slack) == []


def test_two_instances_post_once(make_bot, hub, slack, clock):
    a, b = make_bot(), make_bot()
    hub.add_space("acme/chat")
    watch(a, "watch acme/chat")
    now = clock.step()
    a.ctx.watcher.tick(now)
    b.ctx.watcher.tick(now)
    hub.set_stage("acme/chat", "PAUSED")
    now = clock.step()
    reports = [b.ctx.watcher.tick(now), a.ctx.watcher.tick(now)]
    assert [r.polled for r in reports].count(True) == 1
    assert len(posts(slack)) == 1 and "Resume" in str(posts(slack)[0]["blocks"])


def test_stale_or_concurrent_pollers_cannot_duplicate(make_bot, hub, slack, clock):
    """Even without the lease, the per-Space CAS lets one decision through."""
    a, b = make_bot(), make_bot()
    hub.add_space("acme/chat")
    watch(a, "watch acme/chat")
    pa, pb = a.ctx.watcher.poller, b.ctx.watcher.poller
    now = clock.step()
    pa.cycle(now)
    pb.cycle(now)
    hub.set_stage("acme/chat", "BUILDING")
    late = clock.step()
    pa.cycle(late)
    pb.cycle(late)                       # same transition, second poller: CAS refuses
    hub.set_stage("acme/chat", "RUNNING")
    pb.cycle(late - 30)                  # a stale observation cannot flip the stage back
    a.ctx.watcher.outbox.drain(clock.step())
    assert len(posts(slack)) == 1 and "building" in posts(slack)[0]["text"]


def test_killing_the_leader_hands_polling_over(make_bot, hub, slack, clock):
    a, b = make_bot(), make_bot()
    hub.add_space("acme/chat")
    watch(a, "watch acme/chat")
    wa, wb = a.ctx.watcher, b.ctx.watcher
    assert wa.tick(clock.step()).polled
    wa.stop(release=False)               # dies without releasing its lease
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    assert not wb.tick(clock.step()).polled   # the lease still runs
    assert wb.tick(clock.step(3 * MIN)).polled
    assert len(posts(slack)) == 1 and "crashed" in posts(slack)[0]["text"]


def test_slack_429_delays_without_loss_or_duplicate(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    slack.fail("chat.postMessage", 429, headers={"Retry-After": "30"})
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock)
    assert posts(slack) == [] and len(slack.of("chat.postMessage!failed")) == 1
    w = bot.ctx.watcher
    assert w.drain(clock.step(10)) == 0          # still inside Retry-After: not even tried
    assert len(slack.of("chat.postMessage!failed")) == 1
    assert w.drain(clock.step(25)) == 1
    tick(bot, clock)
    tick(bot, clock)
    assert len(posts(slack)) == 1 and "went to sleep" in posts(slack)[0]["text"]


def test_slack_5xx_and_network_errors_are_retried(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    slack.fail("chat.postMessage", 500, times=2)
    hub.set_stage("acme/chat", "PAUSED")
    tick(bot, clock)
    tick(bot, clock)
    tick(bot, clock)
    assert len(posts(slack)) == 1


def test_restart_resends_nothing(make_bot, hub, slack, clock, redis_server):
    first = make_bot()
    hub.add_space("acme/chat")
    watch(first, "watch acme/chat")
    first.ctx.watcher.tick(clock.step())
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    first.ctx.watcher.tick(clock.step())
    assert len(posts(slack)) == 1
    first.close()
    second = make_bot()
    for _ in range(3):
        second.ctx.watcher.tick(clock.step(3 * MIN))
    assert len(posts(slack)) == 1


def test_alerts_decided_but_not_enqueued_are_delivered_once(bot, hub, slack, clock, redis_client):
    """A leader that dies between the CAS and the enqueue: the next one finds the pending alerts."""
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    w = bot.ctx.watcher
    w.tick(clock.step())
    def crash(*args, **kwargs):
        raise SystemExit("the process died here")

    w.poller.outbox.enqueue = crash               # decided and committed, never enqueued
    hub.set_stage("acme/chat", "PAUSED")
    with pytest.raises(SystemExit):
        w.poller.cycle(clock.step())
    assert posts(slack) == []
    del w.poller.outbox.enqueue
    w.poller.forget()                             # a new leader reads states from Redis
    w.tick(clock.step())
    w.tick(clock.step())
    assert len(posts(slack)) == 1 and "paused" in posts(slack)[0]["text"]


def test_only_filter(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat --only errors")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    assert posts(slack) == []
    hub.set_stage("acme/chat", "BUILD_ERROR")
    tick(bot, clock)
    assert len(posts(slack)) == 1 and "failed to build" in posts(slack)[0]["text"]


def test_mute_holds_back_and_says_one_line_when_it_ends(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    assert "Muted" in bot.command("/space mute acme/chat 1h")["text"]
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    tick(bot, clock)
    assert posts(slack) == []
    tick(bot, clock, 60 * MIN)
    lines = posts(slack)
    assert len(lines) == 1 and "mute on `acme/chat` is over" in lines[0]["text"]
    assert "2 alerts" in lines[0]["text"] and "crashed" in lines[0]["text"]
    tick(bot, clock)
    assert len(posts(slack)) == 1


def test_mute_with_nothing_meanwhile_says_nothing(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    bot.command("/space mute acme/chat 10m")
    tick(bot, clock)
    tick(bot, clock, 20 * MIN)
    assert posts(slack) == []
    assert "not muted" in bot.command("/space unmute acme/chat")["text"]


def test_namespace_watch_picks_up_a_new_space(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    hub.add_space("acme/new", stage="BUILDING")
    tick(bot, clock)                       # first sight of acme/new: baseline
    hub.set_stage("acme/new", "RUNNING")
    tick(bot, clock)
    assert len(posts(slack)) == 1 and "acme/new" in posts(slack)[0]["text"]
    # one listing per tick, no per-Space reads (and the hourly hardware catalogue)
    # (and whether a Space that has an alert is private, asked once, for where its alerts may go)
    assert all(r.path in ("/api/spaces", "/api/spaces/hardware", "/api/spaces/acme/new") for r in hub.calls("GET"))


def test_namespace_watch_with_the_hub_failing_answers_its_sentence_at_once(bot, hub, slack):
    hub.inject("GET", "/api/spaces", status=503, times=100, exact=True)
    seen = bot.command("/space watch acme/*", timeout=5)
    assert "The Hub had an error (503)" in seen["text"]
    assert len(hub.calls("GET", "/api/spaces")) == 1           # no client retries for ~23 s first
    assert "Nothing is watched" in bot.command("/space watches")["text"]


def test_watches_listing(bot, hub, slack):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat --only errors,sleep")
    watch(bot, "watch beta/*", channel="C2")
    mine = bot.command("/space watches")["text"]
    assert "acme/chat" in mine and "errors, sleep" in mine and "beta" not in mine
    everywhere = bot.command("/space watches all")["text"]
    assert "beta/*" in everywhere and "C2" in everywhere


def test_watch_unknown_space_is_refused(bot, hub, slack):
    seen = bot.command("/space watch acme/nope")
    assert "not found" in seen["text"]
    assert "Nothing is watched" in bot.command("/space watches")["text"]


def test_stuck_building_alerts_once(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat --only stuck")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    for _ in range(14):
        tick(bot, clock, 3 * MIN)          # 42 min in BUILDING
    stuck = posts(slack)
    assert len(stuck) == 1 and "may be stuck" in stuck[0]["text"]


def test_hardware_applied_closes_the_loop(bot, hub, slack, clock):
    hub.add_space("acme/chat", hardware="cpu-basic")
    watch(bot, "watch acme/chat --only hardware")
    tick(bot, clock)
    bot.ctx.ops.api.request_space_hardware("acme/chat", "t4-medium")   # RUNNING_BUILDING, t4 requested
    tick(bot, clock)
    assert posts(slack) == []
    hub.apply_requested_hardware("acme/chat")
    tick(bot, clock)
    [post] = posts(slack)
    assert "t4-medium" in str(post["blocks"]) and "requested hardware applied" in str(post["blocks"])


@pytest.mark.slow
def test_cost_warning_once_a_day_with_sleep_button(bot, hub, slack, clock):
    hub.add_space("acme/gpu", hardware="a10g-large")
    hub.spaces["acme/gpu"]["gcTimeout"] = None                        # never sleeps
    watch(bot, "watch acme/gpu")
    tick(bot, clock)
    bot.ctx.watcher.poller.interval = 3 * 3600              # coarse ticks, not a downtime
    for _ in range(20):                                               # 50 h in ticks of 2.5 h
        tick(bot, clock, 150 * MIN)
    warnings = [p for p in posts(slack) if "never sleeps" in p["text"]]
    assert len(warnings) in (2, 3)                                    # once per UTC day after the first 24 h
    assert "$36.00/day" in warnings[0]["text"] and "alert:sleep1h" in str(warnings[0]["blocks"])
    assert len(posts(slack)) == len(warnings)


def test_sleep_button_runs_the_command_with_permissions(make_bot, hub, slack, clock):
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    hub.add_space("acme/gpu", hardware="a10g-large", sleep=None)
    hub.spaces["acme/gpu"]["gcTimeout"] = None
    refused = bot.click("alert:sleep1h", "acme/gpu", user="UNOBODY")
    assert refused.status == 200
    [reply] = slack.wait(lambda: slack.responses(refused.response_id))
    assert "operator role" in reply["text"] and reply["response_type"] == "ephemeral"
    assert not hub.calls("POST")
    done = bot.click("alert:sleep1h", "acme/gpu", user="UOP")
    [reply] = slack.wait(lambda: slack.responses(done.response_id))
    assert reply["response_type"] == "ephemeral" and "sleep" in reply["text"]
    assert hub.calls("POST", "/api/spaces/acme/gpu/sleeptime")[0].body == {"seconds": 3600}


def test_restart_button(bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNTIME_ERROR")
    answer = bot.click("alert:restart", "acme/chat", user="U1")
    [reply] = slack.wait(lambda: slack.responses(answer.response_id))
    assert "restarted" in reply["text"]
    assert hub.spaces["acme/chat"]["stage"] == "BUILDING"


@pytest.mark.slow
def test_crash_loop_is_one_message_with_the_rest_in_its_thread(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    for i in range(6):                      # crashes, comes back, crashes again: every minute
        hub.set_stage("acme/chat", "RUNTIME_ERROR" if i % 2 == 0 else "RUNNING", error="CUDA out of memory")
        tick(bot, clock)
    loop = [p for p in posts(slack) if "crash loop" in p["text"]]
    assert len(loop) == 1 and not loop[0].get("thread_ts") and "alert:restart" in str(loop[0]["blocks"])
    loop_ts = next(ts for (chan, ts), m in slack.messages.items() if "crash loop" in m["text"])
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock)
    threaded = [p for p in posts(slack) if p.get("thread_ts") == loop_ts]
    heads = [p["text"].split(" after ")[0].split("acme/chat")[-1] for p in threaded]
    assert heads == [">* is back up", ">* crashed", ">* is back up"], heads
    for _ in range(12):
        tick(bot, clock)                    # runs for more than 10 min: settled, once, and the root is edited
    settled = [p for p in posts(slack) if "has settled" in p["text"]]
    assert len(settled) == 1 and settled[0]["thread_ts"] == loop_ts
    edited = [u.body for u in slack.of("chat.update")]   # the two single crashes before it recovered too
    assert [e["ts"] for e in edited].count(loop_ts) == 1 and "recovered after" in edited[-1]["text"]


@pytest.mark.slow
def test_sleep_and_wake_twenty_times_a_day_never_loops(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat --only sleep", "C1")
    watch(bot, "watch acme/chat --only errors", "C2")
    tick(bot, clock)
    bot.ctx.watcher.poller.interval = 3600             # coarse ticks, not a downtime
    for _ in range(20):
        hub.set_stage("acme/chat", "SLEEPING")
        tick(bot, clock, 30 * MIN)
        hub.set_stage("acme/chat", "RUNNING")
        tick(bot, clock, 30 * MIN)
    assert len(posts(slack, "C1")) == 40
    assert posts(slack, "C2") == []
    assert not [p for p in posts(slack) if "crash loop" in p["text"]]


def test_stuck_starting_says_it_is_billed_with_its_price(bot, hub, slack, clock):
    hub.add_space("acme/chat", hardware="t4-small")
    watch(bot, "watch acme/chat --only stuck")
    tick(bot, clock)
    hub.set_stage("acme/chat", "APP_STARTING")
    for _ in range(12):
        tick(bot, clock, 3 * MIN)
    [stuck] = posts(slack)
    assert "may be stuck" in stuck["text"] and "billed meanwhile" in stuck["text"] and "$0.40/h" in stuck["text"]


def test_a_duration_is_the_whole_only_when_the_bot_saw_the_stage_begin(bot, hub, slack, clock):
    """The demo's "paused after 45 s running" for a Space that had run far longer: 45 s was since the bot first
    saw it. A stage seen from its start is timed as a whole; one running at the first sighting only "at least"."""
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)                                  # first sighting: running since who knows when
    hub.set_stage("acme/chat", "PAUSED")
    tick(bot, clock, 45)
    [paused] = posts(slack)
    assert "is paused (was running for at least 45 s)" in paused["text"], paused["text"]
    assert "after 45 s running" not in paused["text"]
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock, 3 * MIN)
    back = posts(slack)[-1]["text"]
    assert "after 3 min paused" in back and "at least" not in back, back


def test_stuck_threshold_is_a_setting(make_bot, hub, slack, clock):
    bot = make_bot(SPACEOPS_STUCK_MINUTES="10")
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat --only stuck")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    for _ in range(5):
        tick(bot, clock, 3 * MIN)
    [stuck] = posts(slack)
    assert "building for 12 min" in stuck["text"] and "Building is not billed" in stuck["text"]


def test_crash_loop_and_unreadable_thresholds_are_settings(make_bot, hub, slack, clock):
    bot = make_bot(SPACEOPS_CRASHLOOP_ERRORS="2", SPACEOPS_CRASHLOOP_MINUTES="5", SPACEOPS_UNREADABLE_AFTER="1")
    policy = bot.ctx.watcher.poller.policy
    assert (policy.crashloop_errors, policy.crashloop_window, policy.fail_report_after) == (2, 300, 1)
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    for stage in ("RUNTIME_ERROR", "RUNNING", "RUNTIME_ERROR"):
        hub.set_stage("acme/chat", stage)
        tick(bot, clock)
    assert len([p for p in posts(slack) if "crash loop" in p["text"]]) == 1
    hub.add_space("bob/other")
    watch(bot, "watch bob/other")
    tick(bot, clock)
    hub.inject("GET", "/api/spaces/bob/other/runtime", status=403)
    tick(bot, clock)                        # one failed read is enough with SPACEOPS_UNREADABLE_AFTER=1
    assert len([p for p in posts(slack) if "can't read" in p["text"] and "bob/other" in p["text"]]) == 1


def test_cost_warning_threshold_is_a_setting(make_bot, hub, slack, clock):
    bot = make_bot(SPACEOPS_COST_WARNING_HOURS="2")
    hub.add_space("acme/gpu", hardware="a10g-large")
    hub.spaces["acme/gpu"]["gcTimeout"] = None                        # never sleeps
    watch(bot, "watch acme/gpu --only cost")
    tick(bot, clock)
    bot.ctx.watcher.poller.interval = 3600                            # coarse ticks, not a downtime
    tick(bot, clock, 60 * MIN)
    assert posts(slack) == []
    tick(bot, clock, 70 * MIN)                                        # over 2 h running
    [warning] = posts(slack)
    assert "never sleeps" in warning["text"]


def test_downtime_summary_is_one_message_per_channel(make_bot, hub, slack, clock):
    bot = make_bot()
    for name in ("a", "b", "c"):
        hub.add_space(f"acme/{name}")
    watch(bot, "watch acme/*", "C1")
    watch(bot, "watch acme/a", "C2")
    tick(bot, clock)
    hub.set_stage("acme/a", "RUNTIME_ERROR")
    hub.set_stage("acme/b", "SLEEPING")
    hub.set_stage("acme/c", "PAUSED")
    tick(bot, clock, 30 * MIN)             # the bot was down for half an hour
    c1, c2 = posts(slack, "C1"), posts(slack, "C2")
    assert len(c1) == 1 and len(c2) == 1
    assert "3 changes meanwhile" in c1[0]["text"] and "1 change meanwhile" in c2[0]["text"]


def test_an_incident_that_began_during_downtime_continues_in_the_summary_thread(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    tick(bot, clock, 30 * MIN)
    [summary] = posts(slack)
    assert "could not poll" in summary["text"]
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNNING")
    tick(bot, clock)
    later = posts(slack)[1:]
    summary_ts = next(ts for (_, ts), message in slack.messages.items() if message["text"] == summary["text"])
    assert [p.get("thread_ts") for p in later] == [summary_ts, summary_ts]
    assert "back up" in later[-1]["text"]
    assert slack.of("chat.update") == []  # the summary speaks of other Spaces too: not edited


def test_hub_down_then_back_is_a_summary_not_unreadable_alerts(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    hub.inject(None, "/api/spaces", status=503, times=20)
    for _ in range(8):
        tick(bot, clock)
    assert posts(slack) == []
    hub.clear_faults()
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    tick(bot, clock)
    [post] = posts(slack)
    assert "could not poll" in post["text"]


def test_repeated_read_failures_are_reported_once(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    hub.add_space("beta/ok")
    watch(bot, "watch acme/chat")
    watch(bot, "watch beta/ok")
    tick(bot, clock)
    hub.inject("GET", "/api/spaces/acme/chat/runtime", status=403, times=50,
               body={"error": "forbidden"}, headers={"X-Error-Message": "forbidden"})
    for _ in range(6):
        tick(bot, clock)
    failures = posts(slack)
    assert len(failures) == 1 and "can't read" in failures[0]["text"] and "403" in failures[0]["text"]
    assert hub.spaces["acme/chat"]["stage"] == "RUNNING"
    hub.clear_faults()
    tick(bot, clock)
    assert len(posts(slack)) == 2 and "read again" in posts(slack)[-1]["text"]   # no transition invented


def test_batched_reads_when_cheaper(bot, hub, slack, clock):
    for i in range(5):
        hub.add_space(f"acme/s{i}")
    hub.add_space("solo/one")
    for i in range(5):
        bot.ctx.watcher.store.add("C1", f"acme/s{i}", frozenset(), "U1", clock.now)
    bot.ctx.watcher.store.add("C1", "solo/one", frozenset(), "U1", clock.now)
    report = tick(bot, clock)
    assert report.batched == ["acme"] and report.per_space == 1 and report.hub_requests == 2


def test_a_namespace_whose_listing_times_out_is_read_space_by_space_and_listed_again_later(bot, hub, slack,
                                                                                           clock):
    from bot.alerts.poller import LIST_RETRY

    for i in range(3):
        hub.add_space(f"acme/s{i}")
        bot.ctx.watcher.store.add("C1", f"acme/s{i}", frozenset(), "U1", clock.now)
    hub.add_space("big/one")
    watch(bot, "watch big/*")
    assert tick(bot, clock).batched == ["acme", "big"]         # baseline, listed
    hub.inject("GET", "/api/spaces", exact=True, hang=True, times=2)  # namespaces too large to list in time
    tick(bot, clock)
    hub.clear_faults()
    hub.inject("GET", "/api/spaces", exact=True, status=503, times=1000)  # and it stays that way
    hub.set_stage("acme/s1", "RUNTIME_ERROR", error="boom")
    hub.set_stage("big/one", "RUNTIME_ERROR", error="boom")
    report = tick(bot, clock)
    assert report.batched == [] and report.per_space == 4       # known Spaces read one by one meanwhile
    crashed = [p["text"] for p in posts(slack, "C1") if "crashed" in p["text"]]
    assert any("acme/s1" in t for t in crashed) and any("big/one" in t for t in crashed)
    hub.clear_faults()
    clock.step(LIST_RETRY)
    assert tick(bot, clock).batched == ["acme", "big"]         # then the listing is tried again


def test_hub_rate_limit_budget_slows_down(bot, hub, slack, clock):
    for i in range(3):
        hub.add_space(f"ns{i}/app")
        bot.ctx.watcher.store.add("C1", f"ns{i}/app", frozenset(), "U1", clock.now)
    hub.rate_limit = 60                    # the window has 60 requests left of 1,000
    tick(bot, clock)                       # learns the budget from the RateLimit header
    report = tick(bot, clock)
    assert report.rate_limited and report.hub_requests == 0
    assert bot.command("/space status ns0/app")["text"]               # commands still have room
    hub.rate_limit = 900
    report = tick(bot, clock, 6 * MIN)     # the window was reset
    assert not report.rate_limited and posts(slack) == []


def test_scheduler_runs_ticks_in_the_background(bot, hub, slack):
    """The real APScheduler wiring: the first poll runs at start; stopping releases the lease."""
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    w = bot.ctx.watcher
    w.start()
    assert slack.wait(lambda: hub.calls("GET", "/api/spaces/acme/chat/runtime")[1:], timeout=10)
    job = w.scheduler.get_job("poll")
    assert job.coalesce and job.max_instances == 1
    w.stop()
    assert not w.lease.holds(time.time())


def test_hub_429_is_not_a_failure_and_reading_resumes(bot, hub, slack, clock):
    hub.add_space("acme/a")
    hub.add_space("acme/b")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    read_before = len([c for c in hub.calls("GET", "/api/spaces") if "limit" not in c.query])  # watch's + a cycle's
    hub.inject("GET", "/api/spaces", status=429, times=1, body={"error": "Rate limit exceeded"},
               headers={"RateLimit": '"api";r=0;t=30', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'})
    hub.set_stage("acme/a", "PAUSED")
    report = tick(bot, clock)
    assert report.rate_limited and report.failures == 0 and posts(slack) == []
    listings = [c for c in hub.calls("GET", "/api/spaces") if "limit" not in c.query]  # not `watch`'s casing lookup
    assert len(listings) == read_before + 1        # no retry loop inside the cycle
    tick(bot, clock)
    assert len(posts(slack)) == 1 and "paused" in posts(slack)[0]["text"]


def test_build_error_without_readable_logs_says_so(bot, hub, slack, clock):
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    hub.inject("GET", "/logs/build", status=403, times=1, body={"error": "no"}, headers={"X-Error-Message": "no"})
    hub.set_stage("acme/chat", "BUILD_ERROR", error="pip failed")
    tick(bot, clock)
    [post] = posts(slack)
    assert "No log lines could be read" in str(post["blocks"]) and "pip failed" in str(post["blocks"])
    assert hub.calls("GET", "/api/spaces/acme/chat/logs/build")


def test_history_and_usage_are_kept_from_the_first_poll(bot, hub, slack, clock, redis_client):
    from bot.alerts.keys import history_key
    from bot.core.words import as_text

    clock.now -= 2 * 3600                                      # two hours ago, so `/space cost` covers it
    hub.add_space("acme/gpu", hardware="t4-small", sleep=3600)
    watch(bot, "watch acme/gpu")
    tick(bot, clock)
    tick(bot, clock, 30 * MIN)                                 # running 31 min in all on t4-small ($0.40/h)
    hub.set_stage("acme/gpu", "SLEEPING")
    tick(bot, clock)
    tick(bot, clock, 60 * MIN)                                 # asleep: not billed
    seen = bot.command("/space cost acme/gpu")
    text = as_text(seen["text"], seen.get("blocks"))
    assert "acme/gpu — $0.21 · 0.5 h billed · t4-small" in text, text
    [(_, entry)] = redis_client.xrange(history_key("acme/gpu"))
    assert '"from":"RUNNING"' in entry["entry"] and '"to":"SLEEPING"' in entry["entry"]


def test_state_of_spaces_no_longer_watched_is_forgotten_and_a_rewatch_starts_fresh(bot, hub, slack, clock,
                                                                                      redis_client):
    from bot.alerts.keys import history_key, state_key, usage_key
    from bot.alerts.retention import RETENTION

    hub.add_space("acme/chat", hardware="t4-small")
    hub.add_space("acme/kept", hardware="t4-small")
    watch(bot, "watch acme/chat")
    watch(bot, "watch acme/kept")
    tick(bot, clock)
    hub.set_stage("acme/chat", "BUILDING")
    tick(bot, clock)
    assert redis_client.exists(state_key("acme/chat"), usage_key("acme/chat"), history_key("acme/chat")) == 3
    assert redis_client.ttl(state_key("acme/chat")) > 0  # a backstop expiry while watched
    bot.command("unwatch acme/chat")
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, RETENTION - 7200)
    assert redis_client.exists(state_key("acme/chat")) == 1  # not yet
    tick(bot, clock, 7200)
    assert redis_client.exists(state_key("acme/chat"), usage_key("acme/chat"), history_key("acme/chat")) == 0
    assert redis_client.exists(state_key("acme/kept")) == 1  # still watched: kept, however old
    posted = len(posts(slack))
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    tick(bot, clock)
    assert len(posts(slack)) == posted  # a fresh baseline: no "went to sleep after 7 d"


def test_watching_a_namespace_says_what_its_spaces_are_doing_now(bot, hub):
    """`/space watch acme/*` answers with the current state in one line, and one line per broken Space."""
    from tests.emulators.hub import seed_demo

    seed_demo(hub)
    seen = bot.command("/space watch acme/*")
    assert seen["response_type"] == "in_channel"
    text = "\n".join(b["text"]["text"] for b in seen["blocks"] if b.get("text"))
    assert "`acme/*`: 6 Spaces · 3 running, 1 crashed, 1 asleep, 1 paused" in text, text
    [broken] = [line for line in text.splitlines() if "acme/broken" in line]
    assert "is crashed (`RUNTIME_ERROR`)" in broken and "/space status acme/broken" in broken
    assert not any("acme/chat" in line for line in text.splitlines())      # nothing to say about the healthy
    assert "acme/*: 6 Spaces" in seen["text"].replace("`", "")              # the notification text says it too


def test_a_private_broken_space_is_counted_not_named_where_its_details_may_not_show(bot, hub):
    hub.add_space("acme/ok")
    hub.add_space("acme/secret", stage="BUILD_ERROR", private=True)
    seen = bot.command("/space watch acme/*")
    text = "\n".join(b["text"]["text"] for b in seen["blocks"] if b.get("text"))
    assert "2 Spaces · 1 running, 1 build failed" in text, text
    assert "acme/secret" not in text and "…and 1 more broken (1 private" in text


def test_a_state_read_while_watched_carries_the_retention_mark_so_retention_leaves_it_alone(bot, hub, clock,
                                                                                             redis_client):
    """The CAS writes `watched_at` (and the backstop expiry) with a state it read; retention renews only marks
    older than FRESH, and a Space that nobody watches any more gets no new mark from its closing write."""
    from bot.alerts.keys import state_key
    from bot.alerts.retention import FRESH, Retention

    hub.add_space("acme/chat")
    hub.add_space("acme/old")
    hub.add_space("acme/gone")
    for space in ("acme/chat", "acme/old", "acme/gone"):
        watch(bot, f"watch {space}")
    tick(bot, clock)
    read_at = clock.now
    for space in ("acme/chat", "acme/old", "acme/gone"):
        assert redis_client.hget(state_key(space), "watched_at") == repr(read_at)
        assert redis_client.ttl(state_key(space)) > 0
    bot.command("/space unwatch acme/gone")
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, FRESH)                   # acme/chat read and written; acme/gone's stage closes (not a read)
    changed_at = clock.now
    assert redis_client.hget(state_key("acme/chat"), "watched_at") == repr(changed_at)
    assert redis_client.hget(state_key("acme/gone"), "watched_at") == repr(read_at)
    retention = Retention(redis_client, bot.ctx.watcher.store, marks=bot.ctx.watcher.poller.marked)
    later = clock.now + 60
    assert retention.run(later) == 0
    assert redis_client.hget(state_key("acme/chat"), "watched_at") == repr(changed_at)  # fresh: left alone
    assert redis_client.hget(state_key("acme/old"), "watched_at") == repr(later)        # older: renewed
    assert redis_client.hget(state_key("acme/gone"), "watched_at") == repr(read_at)     # unwatched: not marked


def test_a_batch_of_compare_and_sets_fences_each_space_alone(redis_client):
    """CAS_MANY (a single server's batch) answers what CAS would for each Space, and writes what CAS writes."""
    from bot.alerts.keys import history_key, state_key, usage_key
    from bot.alerts.scripts import CAS, CAS_MANY, HGETALL_MANY

    def call(space, expected, ts):
        keys = [state_key(space), usage_key(space), history_key(space)]
        return keys, [expected, ts, '{"v":1}', "RUNNING", "", "", 10, "", "", 100, ts, 1000]

    one, many = redis_client.register_script(CAS), redis_client.register_script(CAS_MANY)
    redis_client.delete(*(state_key(s) for s in ("acme/a", "acme/b", "acme/c", "acme/d")))
    keys, args = call("acme/a", "", "5.0")
    assert one(keys=keys, args=args) == [1, ""]
    calls = [call("acme/a", "", "6.0"), call("acme/b", "", "6.0"), call("acme/a", "5.0", "7.0"),
             call("acme/c", "", "6.0")]
    flat_keys, flat_args = [], []
    for k, a in calls:
        flat_keys += k
        flat_args += [len(k), len(a), *a]
    # acme/a expected "" but holds 5.0: refused; acme/b and acme/c written; acme/a then moves on from 5.0.
    assert many(keys=flat_keys, args=flat_args) == [0, [1, ""], [1, ""], [1, ""]]
    assert redis_client.hget(state_key("acme/a"), "ts") == "7.0"
    assert redis_client.hgetall(state_key("acme/b")) == {"json": '{"v":1}', "stage": "RUNNING", "ts": "6.0",
                                                         "v": "1", "watched_at": "6.0"}
    assert 0 < redis_client.ttl(state_key("acme/b")) <= 1000
    read = redis_client.register_script(HGETALL_MANY)
    names = [state_key("acme/b"), state_key("acme/d")]
    assert read(keys=names, args=[]) == [[x for kv in redis_client.hgetall(names[0]).items() for x in kv], []]


def test_a_server_that_refuses_scripts_over_several_slots_gets_one_space_per_script(bot, hub, slack, clock,
                                                                                      redis_client):
    """A proxy in front of one server may refuse CAS_MANY as a cluster would: the poller writes each Space with
    its own CAS from then on, and every alert is still posted once."""
    import redis

    from bot.alerts.keys import state_key

    def refused(**_):
        raise redis.ResponseError("CROSSSLOT Keys in request don't hash to the same slot")

    poller = bot.ctx.watcher.poller
    poller._cas_many = poller._hgetall_many = refused
    hub.add_space("acme/chat")
    hub.add_space("acme/api")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    assert poller.cross_slot_refused
    assert redis_client.hget(state_key("acme/chat"), "stage") == "RUNNING"
    hub.set_stage("acme/chat", "RUNTIME_ERROR")
    hub.set_stage("acme/api", "RUNTIME_ERROR")
    tick(bot, clock)
    assert sum("crashed" in p["text"] for p in posts(slack, "C1")) == 2
