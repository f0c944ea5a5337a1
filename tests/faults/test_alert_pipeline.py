"""The alert pipeline is never silent and never double: deadlines on Hub reads, poison entries and states,
a burst for one channel, replicas with skewed clocks, and a Slack post whose answer was lost.

Ticks are driven directly with an injected clock; a tick that could hang runs in a thread joined with a
generous bound, so a hang fails the test instead of the session.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from bot.alerts.poller import LIST_RETRY
from tests.faults.conftest import tally

MIN = 60.0
LIVENESS = 60.0  # a tick that has not returned by then is hung (they take a few seconds at most)


class Ticker:
    def __init__(self, bot, start: float | None = None):
        self.watcher = bot.ctx.watcher
        self.now = start or time.time()

    def __call__(self, times: int = 1, step: float = MIN):
        for _ in range(times):
            self.now += step
            finished = run_bounded(lambda: self.watcher.tick(self.now))
            assert finished, "a poll tick did not return: the pipeline is stuck"


def run_bounded(fn) -> bool:
    """Run fn in a thread; True when it returned within LIVENESS seconds."""
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 — re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(LIVENESS)
    if errors:
        raise errors[0]
    return not thread.is_alive()


def texts(slack, channel: str | None = None) -> list[str]:
    return [p["text"] for p in slack.posts(channel)]


# ---------------------------------------------------------------------------------------- deadlines

@pytest.mark.parametrize("how", ["hang", "stall"], ids=["hangs forever", "stalls mid-page"])
def test_a_hung_namespace_listing_does_not_stop_the_pipeline(make_bot, hub, slack, caplog, how):
    bot = make_bot(SPACEOPS_HUB_TIMEOUT="1")
    for space in ("acme/chat", "acme/other"):
        hub.add_space(space)
    hub.add_space("beta/app")
    for target in ("acme/*", "beta/app", "gamma/site"):
        if target == "gamma/site":
            hub.add_space(target)
        assert "Watching" in bot.command(f"/space watch {target}")["text"]
    tick = Ticker(bot)
    tick()                                                     # baseline
    hub.inject("GET", "/api/spaces", exact=True, times=10_000, **{how: True})
    hub.set_stage("beta/app", "RUNTIME_ERROR", error="boom")
    caplog.set_level(logging.INFO, logger="bot.alerts.poller")
    tick()                                                     # the hung listing ends; the cycle goes on
    assert [t for t in texts(slack) if "beta/app" in t and "crashed" in t], texts(slack)
    tick(times=4)
    # Meanwhile its known Spaces are read one by one: readable, so no "can't read", and they still alert.
    assert [t for t in texts(slack) if "can't read" in t] == []
    hung = [r for r in caplog.records if "Hub read of acme failed" in r.getMessage()]
    assert len(hung) == 1 and "timeout" in hung[0].getMessage()          # the hang is reported once
    hub.set_stage("acme/chat", "PAUSED")
    tick()
    assert [t for t in texts(slack) if "acme/chat" in t and "paused" in t], texts(slack)
    hub.clear_faults()
    tick(step=LIST_RETRY)                                                # then the listing is tried again
    assert len([r for r in caplog.records if "Hub reads of acme work again" in r.getMessage()]) == 1
    crashed = [t for t in texts(slack) if "beta/app" in t and "crashed" in t]
    tally(f"alerts: namespace listing {'hangs forever' if how == 'hang' else 'stalls mid-page'}",
          duplicated=len(crashed) - 1)


@pytest.mark.slow
def test_every_request_of_the_client_has_a_timeout(make_bot, hub, monkeypatch):
    """`list_spaces` passes timeout=None (no timeout at all in httpx); the transport gives it one.

    Each of the client's tries waits out the real 1 s timeout against a Hub that never answers; only the
    client's own backoff between tries (1+2+4+8+8 s in huggingface_hub) is recorded instead of slept."""
    from huggingface_hub.utils import _http

    backoff: list[float] = []

    class BackoffClock:  # huggingface_hub's `time` module, with its retry sleeps recorded, not slept
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            backoff.append(seconds)

    monkeypatch.setattr(_http, "time", BackoffClock())
    bot = make_bot(SPACEOPS_HUB_TIMEOUT="1")
    hub.add_space("acme/chat")
    hub.inject("GET", "/api/spaces", exact=True, hang=True, times=10)
    outcome: list = []

    def listing():
        try:
            list(bot.ctx.spaces.api.list_spaces(author="acme"))
        except Exception as err:  # noqa: BLE001 — what the client raised is the result
            outcome.append(err)

    assert run_bounded(listing), "list_spaces hung: the request had no timeout"
    assert outcome and "timeout" in type(outcome[0]).__name__.lower()
    # Every try reached the Hub and timed out (none was cut short): one more try than backoff waits.
    assert backoff and len(hub.calls("GET", "/api/spaces")) == len(backoff) + 1, (backoff, hub.calls("GET"))
    tally("alerts: request without a timeout")


def test_a_log_stream_that_keeps_sending_keepalives_is_cut_short(make_bot, hub, slack):
    bot = make_bot()
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat")
    tick = Ticker(bot)
    tick()
    hub.logs["acme/chat"] = ["Loading model...", "torch.OutOfMemoryError: CUDA out of memory"]
    hub.inject("GET", "/logs/", keepalive=0.2, times=100)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    started = time.monotonic()
    tick()
    waited = time.monotonic() - started
    posts = slack.posts()
    assert len(posts) == 1 and "crashed" in posts[0]["text"]
    assert "torch.OutOfMemoryError" in str(posts[0]["blocks"])      # the lines that came are kept
    assert waited < LIVENESS
    tick(times=2)
    assert len(slack.posts()) == 1
    tally("alerts: log stream sends keep-alives forever", duplicated=len(slack.posts()) - 1)


# ---------------------------------------------------------------------------------------- poison

def test_a_poison_outbox_entry_is_dead_lettered_and_the_others_go_on(bot, hub, slack, redis_client, caplog):
    import json

    from bot.alerts.outbox import DEAD, STREAM
    from bot.alerts.transitions import Alert

    for space in ("acme/chat", "acme/other"):
        hub.add_space(space)
    bot.command("/space watch acme/chat", channel="C1")
    bot.command("/space watch acme/other", channel="C2")
    tick = Ticker(bot)
    tick()
    newer = json.loads(Alert("transition", "acme/other", tick.now, ("sleep",), old="RUNNING", new="SLEEPING",
                             seconds=60).to_json())
    newer.update(v=2, mood="a field from a newer replica")
    poison = [
        {"v": "1", "id": "p1>C1", "channel": "C1", "op": "post", "payload": "{not json"},
        {"v": "1", "id": "p2>C2", "channel": "C2", "op": "summary", "payload": json.dumps({"gap": "x"})},
        {"v": "1", "op": "post", "payload": "{}"},                                     # no channel, no id
        {"v": "9", "id": "p4>C1", "channel": "C1", "op": "teleport", "payload": "{}"},  # an op we do not know
    ]
    for fields in poison:
        redis_client.xadd(STREAM, fields)
    redis_client.xadd(STREAM, {"v": "2", "id": "n1>C2", "channel": "C2", "op": "post", "payload": json.dumps(newer),
                               "route": "a field we do not know"})
    hub.set_stage("acme/chat", "PAUSED")
    caplog.set_level(logging.INFO, logger="bot.alerts.outbox")
    tick()
    assert [t for t in texts(slack, "C1") if "paused" in t], texts(slack)        # behind poison, still on time
    assert [t for t in texts(slack, "C2") if "went to sleep" in t], texts(slack)  # the newer entry decoded
    tick(times=8)
    outbox = bot.ctx.watcher.outbox
    assert outbox.pending() == 0 and outbox.dead_letters() == 4
    assert sorted(f.get("id", "-") for _, f in redis_client.xrange(DEAD)) == ["-", "p1>C1", "p2>C2", "p4>C1"]
    dead_logs = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(dead_logs) == 4                                                    # once each
    assert len(slack.posts()) == 2
    tally("alerts: poison outbox entry", tried=len(poison) + 1, lost=2 - len(slack.posts()))


def test_a_poison_state_is_started_afresh_not_a_crash(bot, hub, slack, redis_client, caplog):
    import json

    from bot.alerts.keys import state_key

    for space in ("acme/chat", "acme/newer", "acme/fine"):
        hub.add_space(space)
    bot.command("/space watch acme/*")
    tick = Ticker(bot)
    tick()
    stored = json.loads(redis_client.hget(state_key("acme/newer"), "json"))
    redis_client.hset(state_key("acme/newer"), "json", json.dumps({**stored, "v": 2, "mood": "new field"}))
    redis_client.hset(state_key("acme/chat"), mapping={"json": "{garbage", "ts": "not a number"})
    bot.ctx.watcher.poller.forget()                         # as a new leader would: read states from Redis
    for space in ("acme/chat", "acme/newer", "acme/fine"):
        hub.set_stage(space, "PAUSED")
    caplog.set_level(logging.INFO, logger="bot.alerts.poller")
    tick()
    paused = sorted(t.split("spaces/")[1].split("|")[0] for t in texts(slack) if "paused" in t)
    assert paused == ["acme/fine", "acme/newer"], texts(slack)        # unknown fields ignored
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    hub.set_stage("acme/chat", "RUNNING")                   # acme/chat was started afresh (PAUSED baseline)
    tick()
    assert [t for t in texts(slack) if "acme/chat" in t], texts(slack)
    tick(times=2)
    assert len(slack.posts()) == 3
    tally("alerts: poison state", tried=2)


def test_decided_but_not_queued_is_queued_next_cycle_and_never_overwritten(bot, hub, slack, redis_client):
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat")
    tick = Ticker(bot)
    tick()
    outbox = bot.ctx.watcher.outbox
    real_enqueue = outbox.enqueue

    def broken(*args, **kwargs):
        raise OSError("queue unreachable for a moment")

    outbox.enqueue = broken                                  # the same leader keeps leading
    hub.set_stage("acme/chat", "PAUSED")
    tick.now += MIN
    with pytest.raises(OSError):
        bot.ctx.watcher.tick(tick.now)
    outbox.enqueue = real_enqueue
    hub.set_stage("acme/chat", "BUILDING")                   # a second decision before the first was queued
    tick()
    tick(times=2)
    said = texts(slack)
    assert len([t for t in said if "is paused" in t]) == 1, said
    assert len([t for t in said if "is building" in t]) == 1, said
    assert len(said) == 2
    tally("alerts: decided but not queued", tried=2, lost=2 - len(said))


# ---------------------------------------------------------------------------------------- head of line

def _burst_setup(bot, hub, slack, count: int):
    for i in range(count):
        hub.add_space(f"acme/s{i:04d}")
    for n, channel in enumerate(("C2", "C3", "C4")):
        hub.add_space(f"team{n}/app")
        assert "Watching" in bot.command(f"/space watch team{n}/app", channel=channel)["text"]
    assert "Watching" in bot.command("/space watch acme/*", channel="C1")["text"]


def _burst_outcome(slack, count: int) -> tuple[int, int]:
    """(lost, duplicated) over the burst channel's list and the three others' alerts."""
    c1 = slack.posts("C1")
    heads = [p for p in c1 if not p.get("thread_ts")]
    listed = "\n".join(b["text"]["text"] for p in c1 if p.get("thread_ts") for b in p["blocks"]
                       if b.get("type") == "section")
    seen = [f"acme/s{i:04d}" for i in range(count) if f"spaces/acme/s{i:04d}|" in listed]
    twice = sum(listed.count(f"spaces/acme/s{i:04d}|") > 1 for i in range(count))
    others = [len([p for p in slack.posts(c) if "is paused" in p["text"]]) for c in ("C2", "C3", "C4")]
    lost = (count - len(seen)) + sum(1 for n in others if n == 0) + (0 if heads else 1)
    duplicated = twice + sum(max(0, n - 1) for n in others) + max(0, len(heads) - 1)
    return lost, duplicated


@pytest.mark.slow
def test_a_burst_for_one_channel_is_one_message_and_others_arrive_within_10_s(bot, hub, slack):
    count = 2000
    _burst_setup(bot, hub, slack, count)
    tick = Ticker(bot)
    tick()                                                          # baseline of 2,003 Spaces
    for i in range(count):
        hub.set_stage(f"acme/s{i:04d}", "RUNTIME_ERROR", error="org-wide outage")
    for n in range(3):
        hub.set_stage(f"team{n}/app", "PAUSED")
    tick()
    watcher, start = bot.ctx.watcher, tick.now
    for second in range(1, 11):                                     # ten seconds of the injected clock
        watcher.drain(start + second)
    for channel in ("C2", "C3", "C4"):
        assert [p for p in slack.posts(channel) if "is paused" in p["text"]], channel
    heads = [p for p in slack.posts("C1") if not p.get("thread_ts")]
    assert len(heads) == 1 and "2,000 Spaces of `acme` changed stage: 2,000 crashed" in heads[0]["text"], heads
    for second in range(11, 120):                                   # the list arrives in its thread, paced
        watcher.drain(start + second)
    lost, duplicated = _burst_outcome(slack, count)
    assert (lost, duplicated) == (0, 0)
    assert watcher.outbox.pending() == 0
    assert all(len(str(p["blocks"])) < 13_000 for p in slack.posts("C1"))   # Slack's size limit per message
    tally("alerts: burst of 2,000 for one channel + 3 others", tried=count + 3, lost=lost, duplicated=duplicated)


@pytest.mark.slow
def test_a_backlog_for_one_channel_does_not_hold_back_the_others(bot, hub, slack):
    """Alerts that piled up for one channel over many cycles (one by one in the stream) before the others'."""
    from bot.alerts.transitions import Alert

    count = 2000
    _burst_setup(bot, hub, slack, count)  # the Spaces exist: an alert about a Space the Hub can't show is held back
    watches, outbox = bot.ctx.watcher.store.load(), bot.ctx.watcher.outbox
    now = time.time()
    for start in range(0, count, 100):                              # 20 cycles' worth, oldest first
        outbox.enqueue([Alert("transition", f"acme/s{i:04d}", now + start, ("sleep",), old="RUNNING",
                              new="SLEEPING", seconds=60) for i in range(start, start + 100)], watches)
    outbox.enqueue([Alert("transition", f"team{n}/app", now + count, ("paused",), old="RUNNING", new="PAUSED",
                          seconds=60) for n in range(3)], watches)
    assert bot.ctx.watcher.lease.acquire(now)
    for second in range(0, 11):
        bot.ctx.watcher.drain(now + second)
    for channel in ("C2", "C3", "C4"):
        assert [p for p in slack.posts(channel) if "is paused" in p["text"]], channel
    for second in range(11, 120):
        bot.ctx.watcher.drain(now + second)
    lost, duplicated = _burst_outcome(slack, count)
    assert (lost, duplicated) == (0, 0), (lost, duplicated)
    assert outbox.pending() == 0
    tally("alerts: burst of 2,000 for one channel + 3 others", tried=count + 3, lost=lost, duplicated=duplicated)


# ---------------------------------------------------------------------------------------- exactly once

def _messages(slack, channel: str, words: str) -> list[dict]:
    with slack.lock:
        return [m for (chan, _), m in slack.messages.items() if chan == channel and words in (m["text"] or "")]


def test_an_uncertain_post_is_looked_for_before_it_is_posted_again(bot, hub, slack):
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat")
    tick = Ticker(bot)
    tick()
    slack.fail("chat.postMessage", drop=True)             # Slack records the crash alert, the answer is lost
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    tick()
    assert len(slack.of("chat.postMessage!dropped")) == 1
    tick()
    assert slack.of("conversations.history"), "the retry did not look before posting"
    assert len(_messages(slack, "C1", " crashed (was running")) == 1
    slack.fail("chat.postMessage", drop=True)             # the follow-up in the incident's thread, too
    hub.set_stage("acme/chat", "BUILDING")
    tick()
    tick()
    assert slack.of("conversations.replies")
    building = _messages(slack, "C1", "is building")
    assert len(building) == 1 and building[0]["thread_ts"]                       # still in the thread
    root = [ts for (chan, ts), m in slack.messages.items() if chan == "C1" and " crashed (was running" in m["text"]]
    assert building[0]["thread_ts"] == root[0]
    tick(times=3)
    tried = 2
    duplicated = len(_messages(slack, "C1", " crashed (was running")) - 1 + len(_messages(slack, "C1", "is building")) - 1
    assert duplicated == 0
    tally("alerts: uncertain Slack post (recorded, reset)", tried=tried, duplicated=duplicated)


def test_two_drainers_never_post_one_entry(make_bot, hub, slack):
    """Two replicas drain at once (a lease handover mid-drain): claims let one of them post each entry."""
    from bot.alerts.transitions import Alert

    a, b = make_bot(), make_bot()
    for n in range(5):
        hub.add_space(f"acme/s{n}")
    a.command("/space watch acme/*")
    watches = a.ctx.watcher.store.load()
    now = time.time()
    a.ctx.watcher.outbox.enqueue([Alert("transition", f"acme/s{n}", now, ("paused",), old="RUNNING", new="PAUSED",
                                        seconds=60) for n in range(5)], watches)
    barrier = threading.Barrier(2)

    def drain(bot):
        barrier.wait()
        for second in range(10):
            bot.ctx.watcher.outbox.drain(now + second)

    threads = [threading.Thread(target=drain, args=(x,)) for x in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LIVENESS)
    paused = _messages(slack, "C1", "is paused")
    assert len(paused) == 5, [m["text"] for m in paused]
    tally("alerts: two drainers at once", tried=5, lost=5 - len(paused), duplicated=max(0, len(paused) - 5))


@pytest.mark.slow
def test_replicas_with_clocks_240_s_apart_have_one_leader_and_every_write_lands(make_bot, hub, slack, redis_client):
    """±120 s of clock skew between two replicas, on the production path (no injected `now`): the lease and
    the CAS fence run on Redis's clock."""
    from bot.alerts.keys import LEASE, state_key

    fast, slow = make_bot(SPACEOPS_POLL_SECONDS="2"), make_bot(SPACEOPS_POLL_SECONDS="2")
    fast.ctx.store.clock.machine = lambda: time.time() + 120  # each machine's own clock (bot/core/clock.py)
    slow.ctx.store.clock.machine = lambda: time.time() - 120
    hub.add_space("acme/chat")
    fast.command("/space watch acme/chat")
    leaders = []
    for _ in range(3):                                     # alternate ticks: one leader, never two
        leaders.append([w.ctx.watcher.tick().polled for w in (slow, fast)])
    assert all(row.count(True) == 1 for row in leaders), leaders
    hub.set_stage("acme/chat", "PAUSED")
    for _ in range(2):
        slow.ctx.watcher.tick(), fast.ctx.watcher.tick()
    assert len(_messages(slack, "C1", "is paused")) == 1

    # A state fenced with a time 120 s ahead (a replica whose clock ran fast wrote it) does not block writes.
    ahead = float(redis_client.hget(state_key("acme/chat"), "ts")) + 120
    redis_client.hset(state_key("acme/chat"), "ts", repr(ahead))
    for watcher in (fast.ctx.watcher, slow.ctx.watcher):
        watcher.poller.forget()
    leader = fast if fast.ctx.watcher.leading else slow
    other = slow if leader is fast else fast
    hub.set_stage("acme/chat", "RUNNING")
    leader.ctx.watcher.tick()
    assert len(_messages(slack, "C1", "is running")) + len(_messages(slack, "C1", "back up")) == 1

    # The leader dies; the other (with the other clock) takes over within the lease and its writes land.
    leader.ctx.watcher.stop(release=False)
    deadline = time.monotonic() + LIVENESS
    while not other.ctx.watcher.tick().polled:
        assert time.monotonic() < deadline, redis_client.get(LEASE)
        time.sleep(0.2)
    hub.set_stage("acme/chat", "SLEEPING")
    other.ctx.watcher.tick()
    assert len(_messages(slack, "C1", "went to sleep")) == 1
    said = [m["text"] for (chan, _), m in slack.messages.items() if chan == "C1"]
    assert len(said) == 3, said
    tally("alerts: clock skew ±120 s between two replicas", tried=3, lost=3 - len(said))


# ---------------------------------------------------------------------------------------- one Space's failure

def test_a_deleted_watched_space_is_reported_to_its_channel_once(bot, hub, slack):
    """The workspace watches only that Space: its 404 is its own failure, not the Hub being down."""
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat", channel="C7")
    tick = Ticker(bot)
    tick()
    with hub.lock:
        del hub.spaces["acme/chat"]
    tick(times=6)
    gone = texts(slack, "C7")
    assert len(gone) == 1 and "gone from the Hub" in gone[0] and "/space unwatch acme/chat" in gone[0], gone
    tally("alerts: watched Space deleted", lost=1 - len(gone))


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_hub_failure_on_the_only_watched_space_blames_no_space(bot, hub, slack, status):
    hub.add_space("acme/chat")
    bot.command("/space watch acme/chat")
    tick = Ticker(bot)
    tick()
    hub.inject("GET", "/api/spaces/acme/chat/runtime", status=status, times=100)
    tick(times=6)
    assert slack.posts() == []
    tally(f"alerts: Hub {status} on the only watched Space")


def test_a_403_on_one_space_among_many_namespaces_is_that_spaces_failure(bot, hub, slack):
    hub.add_space("acme/secret")
    bot.command("/space watch acme/secret")
    tick = Ticker(bot)
    tick()
    hub.inject("GET", "/api/spaces/acme/secret/runtime", status=403, times=100,
               headers={"X-Error-Message": "forbidden"})
    tick(times=6)
    said = texts(slack)
    assert len(said) == 1 and "403" in said[0] and "acme/secret" in said[0], said
    tally("alerts: 403 on the only watched Space", lost=1 - len(said))
