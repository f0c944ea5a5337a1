"""One way out to Slack: a Slack answer lost after posting (Slack recorded the message, then the connection
dropped before the bot had the answer), once for each kind of message the bot posts on its own. Where the
channel's history is readable, none is posted twice; where it is not, a retry may post again (at-least-once).

Also the cases of issue 18: a digest whose chart step raises (18.3) and delivery ids that depended on the
time or on what else was folded (18.4). Ticks run with an injected clock; the Slack emulator's `drop` fault
records the message and cuts the answer short.
"""

from __future__ import annotations

import json
import time

import pytest

from bot.alerts.transitions import Alert
from bot.core.words import as_text
from tests.faults.conftest import tally

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
# How the answer is lost: cut short after a few bytes (IncompleteRead), or the connection reset before any
# (RemoteDisconnected: slack_sdk's own connection-error handler would post again at once).
DROPS = (True, "reset")
DROP_WORDS = {True: "answer cut short", "reset": "connection reset"}
ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM", "SPACEOPS_OPERATORS": "UOP,U1"}


@pytest.fixture(params=DROPS, ids=[DROP_WORDS[d] for d in DROPS])
def drop(request):
    return request.param


class Ticker:
    """The watcher's tick (lease, poll, outbox drain, the leader's jobs) with a clock that moves forward."""

    def __init__(self, bot, start: float | None = None):
        self.watcher = bot.ctx.watcher
        self.now = start or time.time()

    def __call__(self, times: int = 1, step: float = MIN) -> float:
        for _ in range(times):
            self.now += step
            self.watcher.tick(self.now)
        return self.now


def messages(slack, channel: str, words: str, thread: bool | None = None) -> list[dict]:
    """Messages Slack holds in `channel` whose text (or blocks) says `words`; top level only, or replies only."""
    with slack.lock:
        found = [m for (chan, _), m in slack.messages.items()
                 if chan == channel and words in as_text(m["text"] or "", m["blocks"])]
    if thread is not None:
        found = [m for m in found if bool(m["thread_ts"]) == thread]
    return found


def dropped(slack, method: str = "chat.postMessage") -> int:
    return len(slack.of(f"{method}!dropped"))


def once(kind: str, slack, channel: str, words: str, thread: bool | None = None) -> None:
    """The row's assertion: the fault was hit, and the message is in Slack exactly once."""
    seen = messages(slack, channel, words, thread)
    assert dropped(slack) >= 1 or len(slack.of("chat.postMessage!dropped")) >= 1, "the fault was never hit"
    assert len(seen) == 1, (kind, len(seen), [m["text"] for m in seen])
    tally(f"one way out: answer lost after posting: {kind}")


# ---------------------------------------------------------------- 18.3: a digest whose chart step raises


def _digest_bot(make_bot, hub, channel="C7", **env):
    from bot.fleet.digests import digest_due

    bot = make_bot(**{**ROLES, **env})
    assert "daily digest" in bot.command(f"/space digest <#{channel}|ops> daily 09:00", user="UOP")["text"]
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    assert "Watching" in bot.command(f"/space watch acme/* <#{channel}|ops>")["text"]
    tick = Ticker(bot)
    tick(step=0)
    tick(step=3 * HOUR)
    _, due = digest_due({"period": "daily", "time": "09:00", "tz": "UTC"}, tick.now + DAY)
    tick.now = due + MIN
    tick(step=0)
    return bot, tick


def test_a_digest_whose_chart_step_raises_is_posted_once_with_a_note(make_bot, hub, slack, monkeypatch):
    bot, tick = _digest_bot(make_bot, hub)

    def chart_fails(*args, **kwargs):
        raise RuntimeError("the chart could not be drawn")

    monkeypatch.setattr(bot.ctx.fleet.charts, "chart_png", chart_fails)
    for minute in range(3):
        bot.ctx.fleet.digest_tick(tick.now + minute * MIN)
    digests = messages(slack, "C7", "Daily digest", thread=False)
    assert len(digests) == 1, [m["text"] for m in digests]
    notes = messages(slack, "C7", "chart is missing", thread=True)
    assert len(notes) == 1 and slack.files == []
    tally("digest: the chart step raising (one digest, a note)", tried=3)


def test_a_lost_answer_to_a_digest_is_found_not_posted_again(make_bot, hub, slack, drop):
    bot, tick = _digest_bot(make_bot, hub)
    slack.fail("chat.postMessage", drop=drop)
    for minute in range(3):
        bot.ctx.fleet.digest_tick(tick.now + minute * MIN)
    once(f"digest ({DROP_WORDS[drop]})", slack, "C7", "Daily digest", thread=False)
    assert len(slack.files) == 1  # the chart, in the found digest's thread
    [digest] = messages(slack, "C7", "Daily digest", thread=False)
    ts = next(ts for (chan, ts), m in slack.messages.items() if m is digest)
    assert slack.files[0]["thread_ts"] == ts


# ---------------------------------------------------------------- 18.4: folds and downtime summaries


def test_a_fold_retried_after_a_lost_answer_with_a_grown_backlog_is_found(make_bot, hub, slack):
    bot = make_bot()
    for i in range(15):
        hub.add_space(f"acme/s{i:02d}")
    assert "Watching" in bot.command("/space watch acme/*")["text"]
    watches, outbox = bot.ctx.watcher.store.load(), bot.ctx.watcher.outbox
    now = time.time()
    assert bot.ctx.watcher.lease.acquire(now)

    def crash(spaces, at):
        outbox.enqueue([Alert("transition", f"acme/s{i:02d}", at, ("errors",), old="RUNNING", new="RUNTIME_ERROR",
                              seconds=60) for i in spaces], watches)

    crash(range(12), now)
    slack.fail("chat.postMessage", drop=True)               # the fold reaches Slack; its answer is lost
    bot.ctx.watcher.drain(now)
    assert dropped(slack) == 1
    crash(range(12, 15), now + 30)                          # meanwhile the backlog grew
    for second in range(60, 600, 30):
        bot.ctx.watcher.drain(now + second)
    heads = messages(slack, "C1", "changed stage", thread=False)
    assert len(heads) == 1, [m["text"] for m in heads]
    listed = "\n".join(as_text(m["text"] or "", m["blocks"]) for m in slack.messages.values() if m["thread_ts"])
    told = [i for i in range(15) if f"acme/s{i:02d}" in listed
            or messages(slack, "C1", f"acme/s{i:02d}", thread=False)]
    assert told == list(range(15)) and outbox.pending() == 0
    tally("one way out: answer lost after posting: fold (backlog grew meanwhile)")


def test_a_downtime_summary_queued_again_later_is_posted_once(make_bot, hub, slack):
    """A leader that queued the summary died before clearing what it queued; the next one queues it again,
    later: the same outage, the same message."""
    bot = make_bot()
    hub.add_space("acme/chat")
    assert "Watching" in bot.command("/space watch acme/chat")["text"]
    watches, outbox = bot.ctx.watcher.store.load(), bot.ctx.watcher.outbox
    now = time.time()
    alerts = [Alert("transition", "acme/chat", now - 100, ("errors",), old="RUNNING", new="RUNTIME_ERROR",
                    seconds=60)]
    last_good = now - 900
    outbox.enqueue_summary(alerts, watches, now - last_good, now)
    assert bot.ctx.watcher.lease.acquire(now)
    slack.fail("chat.postMessage", drop=True)
    bot.ctx.watcher.drain(now)
    outbox.enqueue_summary(alerts, watches, now + 75 - last_good, now + 75)
    for second in range(80, 400, 40):
        bot.ctx.watcher.drain(now + second)
    once("downtime summary (queued twice)", slack, "C1", "could not poll for")


# ---------------------------------------------------------------- the other features' messages


def test_budget_alert(make_bot, hub, slack, drop):
    from tests.test_fleet import month_start_clock

    bot = make_bot(SPACEOPS_ADMINS="UA")
    assert "set a budget" in bot.command("/space budget acme/* 10/month", user="UA", channel="C9")["text"]
    clock = month_start_clock()
    hub.add_space("acme/gpu", hardware="a10g-large")
    hub.spaces["acme/gpu"]["gcTimeout"] = None
    assert "Watching" in bot.command("/space watch acme/*")["text"]
    tick = Ticker(bot, clock.now)
    tick(step=0)
    slack.fail("chat.postMessage", drop=drop)
    tick(times=4, step=MIN)
    once(f"budget alert ({DROP_WORDS[drop]})", slack, "C9", "is projected to exceed its budget")


def test_schedule_announcement(make_bot, hub, slack, drop):
    from tests.test_schedules import next_fire, only

    hub.add_space("acme/chat", hardware="t4-small")
    bot = make_bot(**ROLES)
    seen = bot.command("/space schedule acme/chat pause daily 19:00 --tz UTC")
    assert "scheduled" in seen["text"], seen["text"]
    s = only(bot)
    slack.fail("chat.postMessage", drop=drop)
    tick = Ticker(bot, next_fire(bot, s.id) - 30)
    tick(times=4, step=30)
    assert len(hub.calls("POST", "/api/spaces/acme/chat/pause")) == 1
    once(f"schedule announcement ({DROP_WORDS[drop]})", slack, "C1", f"schedule {s.id}: paused")


def test_timed_upgrade_reminder(make_bot, hub, slack, drop):
    from tests.test_schedules import start_timed

    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub)
    hub.apply_requested_hardware("acme/chat")
    slack.fail("chat.postMessage", drop=drop)
    tick = Ticker(bot, t.ends_at - 15 * MIN - 30)
    tick(times=4, step=30)
    once(f"timed-upgrade reminder ({DROP_WORDS[drop]})", slack, "C1", "goes back")


def test_approval_request_message(make_bot, hub, slack, drop):
    from tests.test_approvals import ask

    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(**ROLES)
    slack.fail("chat.postMessage", drop=drop)
    pending = ask(bot, slack, user="U1")
    assert "Sent for approval" in pending.reply
    once(f"approval request ({DROP_WORDS[drop]})", slack, pending.channel, pending.id, thread=False)


def test_approval_note_to_the_requester(make_bot, hub, slack, drop):
    from tests.test_approvals import ask, click, thread

    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, user="U1")
    slack.fail("chat.postMessage", drop=drop)
    assert "Approved" in click(bot, slack, pending, "UAPP")
    Ticker(bot)(times=3, step=5)
    assert slack.wait(lambda: thread(slack, pending))
    once(f"approval note ({DROP_WORDS[drop]})", slack, pending.channel, "Approved", thread=True)
    assert len(hub.calls("POST", "/api/spaces/acme/chat/hardware")) == 1


def test_follow_through_announcement(make_bot, hub, slack, drop):
    hub.add_space("acme/chat")
    bot = make_bot()
    slack.fail("chat.postMessage", drop=drop)
    answer = bot.send_command("restart acme/chat")
    assert answer.status == 200
    # The announcement is followed once it is known to be posted (after any retry): then nothing is left to run.
    assert slack.wait(lambda: bot.ctx.watcher.follow.get("acme/chat"), timeout=10)
    assert slack.responses(answer.response_id) == []   # not told a second time through response_url
    once(f"follow-through announcement ({DROP_WORDS[drop]})", slack, "C1", "restarted")


def test_follow_through_edit(make_bot, hub, slack, drop):
    """An edit whose answer was lost is made again with the same content: one message, shown right."""
    from tests.test_alerts import Clock
    from tests.test_hot import announced, followed

    hub.add_space("acme/chat")
    bot = make_bot()
    clock = Clock()
    bot.ctx.watcher.follow.clock = lambda: clock.now
    bot.ctx.watcher.tick(clock.step())
    bot.command("/space restart acme/chat")
    followed(bot)
    ts, _ = announced(slack)
    bot.ctx.watcher.hot_tick(clock.step(5))                  # building…
    hub.set_stage("acme/chat", "RUNNING")
    slack.fail("chat.update", drop=drop)
    bot.ctx.watcher.hot_tick(clock.step(30))
    for _ in range(3):
        bot.ctx.watcher.hot_tick(clock.step(5))
    assert slack.of("chat.update!dropped")
    assert "running again" in slack.messages[("C1", ts)]["text"]
    assert len(messages(slack, "C1", "restarted")) == 1 and bot.ctx.watcher.outbox.pending() == 0
    tally(f"one way out: answer lost after editing: follow-through edit ({DROP_WORDS[drop]})")


def test_ops_channel_report(make_bot, hub, slack, redis_client, drop):
    bot = make_bot(SPACEOPS_OPS_CHANNEL="COPS")
    redis_client.xadd("spaceops:{outbox}:dead", {"id": "d0"})
    report = bot.ctx.watcher.periodic[-1]
    tick = Ticker(bot)
    slack.fail("chat.postMessage", drop=drop)
    report(tick.now)
    tick(times=3)
    once(f"ops-channel report ({DROP_WORDS[drop]})", slack, "COPS", "dead letter")


def test_home_button_dm(make_bot, hub, slack, drop):
    from bot.fleet.words import HOME_ACTIONS

    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPERATORS="U1")
    slack.fail("chat.postMessage", drop=drop)
    answer = bot.click(HOME_ACTIONS["pause"], "acme/chat", user="U1", channel="")
    assert answer.status == 200
    assert slack.wait(lambda: slack.of("views.publish"), timeout=10)  # the Home is refreshed after the DM
    once(f"Home button DM ({DROP_WORDS[drop]})", slack, "U1", "acme/chat")


def test_alert(make_bot, hub, slack, drop):
    hub.add_space("acme/chat")
    bot = make_bot()
    assert "Watching" in bot.command("/space watch acme/chat")["text"]
    tick = Ticker(bot)
    tick()
    slack.fail("chat.postMessage", drop=drop)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    tick(times=3)
    once(f"alert ({DROP_WORDS[drop]})", slack, "C1", "crashed")


# ---------------------------------------------------------------- where it is at-least-once


def test_without_readable_history_a_lost_answer_may_post_twice(make_bot, hub, slack):
    """No history scope (conversations.history refused): the retry cannot look, and posts again."""
    hub.add_space("acme/chat")
    bot = make_bot()
    assert "Watching" in bot.command("/space watch acme/chat")["text"]
    tick = Ticker(bot)
    tick()
    slack.fail("chat.postMessage", drop=True)
    slack.fail("conversations.history", 200, {"ok": False, "error": "missing_scope"}, times=5)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    tick(times=3)
    seen = messages(slack, "C1", "crashed")
    assert len(seen) == 2  # at-least-once: never lost, posted again when it cannot be checked
    tally("one way out: answer lost, history unreadable (at-least-once)", duplicated=0)


def test_a_queued_message_keeps_its_id_from_the_first_try(make_bot, hub, slack, redis_client):
    """The immediate try and the outbox's retry share one delivery id (the first post is found by it)."""
    bot = make_bot()
    deliveries = bot.ctx.watcher.deliveries
    slack.fail("chat.postMessage", drop=True)
    assert deliveries.send("test:one", "C5", "hello once") is None
    [entry] = [f for _, f in redis_client.xrange("spaceops:{outbox}:stream")]
    assert entry["id"] == "test:one" and json.loads(entry["payload"])["text"] == "hello once"
    tick = Ticker(bot)
    tick(times=2)
    assert len(messages(slack, "C5", "hello once")) == 1
