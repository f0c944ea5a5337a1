"""What a steady poll cycle does not do again (#22): decode a listing page whose body is the same as last time,
or read the whole watch hash when its version says nobody changed it. Each shortcut decides what the long way
would: the change on a page that did change is alerted once, and a watch added by another replica is polled at
its next cycle.
"""

from __future__ import annotations

import pytest

from bot.alerts import watches as watches_module
from bot.alerts.watches import WATCHES, WatchStore
from tests.test_alerts import Clock, posts, tick, watch


@pytest.fixture
def clock():
    return Clock()


def test_a_page_read_unchanged_is_not_decoded_and_a_changed_one_is(bot, hub, slack, clock):
    hub.page_size = 100  # three pages of the namespace
    for i in range(250):
        hub.add_space(f"big/app{i:03d}")
    watch(bot, "watch big/*")
    reader = bot.ctx.watcher.poller.reader
    tick(bot, clock)  # baseline: every page decoded
    assert reader.decoded == 3
    report = tick(bot, clock)
    assert reader.decoded == 3 and report.hub_requests == 3  # all three read, none decoded again
    assert report.spaces == 250 and report.alerts == 0
    hub.set_stage("big/app150", "RUNTIME_ERROR")  # on the second page
    report = tick(bot, clock)
    assert reader.decoded == 4 and report.alerts == 1
    crashed = [p for p in posts(slack, "C1") if "big/app150" in p["text"]]
    assert len(crashed) == 1 and "crashed" in crashed[0]["text"], posts(slack)
    tick(bot, clock)
    assert reader.decoded == 4 and len(posts(slack, "C1")) == 1


def test_a_watch_another_replica_adds_is_polled_at_the_next_cycle(make_bot, hub, slack, clock, redis_client):
    first, second = make_bot(), make_bot()
    hub.add_space("acme/chat")
    hub.add_space("acme/other")
    watch(first, "watch acme/chat")
    tick(first, clock)
    store = first.ctx.watcher.poller.watch_store
    assert store.load() is store.load()  # nothing changed: the same set, the hash not read again
    watch(second, "watch acme/other", "C2")  # through the other replica's store
    assert {w.target for w in store.load().watches} == {"acme/chat", "acme/other"}
    tick(first, clock)  # its baseline
    hub.set_stage("acme/other", "SLEEPING")
    tick(first, clock)
    assert len(posts(slack, "C2")) == 1
    second.command("/space unwatch acme/other", channel="C2")
    assert {w.target for w in store.load().watches} == {"acme/chat"}


def test_a_watch_written_around_the_bot_shows_within_the_full_read(redis_client, monkeypatch):
    """A field written straight into the hash (an operator's redis-cli, a restore) moves no version: it shows
    at the next whole read, at most FULL_READ seconds later."""
    store = WatchStore(redis_client)
    store.add("C1", "acme/chat", frozenset(), "U1", 0.0)
    assert len(store.load()) == 1
    redis_client.hset(WATCHES, "C1|acme/other", '{"only": []}')
    assert len(store.load()) == 1  # within FULL_READ of the last whole read
    monkeypatch.setattr(watches_module, "FULL_READ", 0.0)
    assert len(store.load()) == 2


def test_memory_is_given_back_where_the_c_library_can():
    """glibc (this machine, the Docker image) has malloc_trim; elsewhere give_back does nothing."""
    import platform

    from bot.core import memory

    assert memory.give_back() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_a_batch_of_alerts_is_routed_as_each_alone_would_be(bot, hub, redis_client):
    """The outbox's batch checkers (one HMGET of scopes, one of follow-throughs) answer what the per-alert
    ones answer, for scoped and unscoped channels, private and public Spaces, a DM and a channel never seen."""
    from bot.access.store import ScopeStore

    hub.add_space("acme/open")
    hub.add_space("acme/secret", private=True)
    hub.add_space("other/app")
    scopes = ScopeStore(redis_client)
    scopes.set("CACME", "acme", "operate")
    scopes.set("COTHER", "other", "read")
    access = bot.ctx.access
    channels = {"CACME", "COTHER", "CNONE", "D123"}
    batch = access.may_alert_in(channels)
    for space in ("acme/open", "acme/secret", "other/app"):
        for channel in (*channels, "CLATER"):  # CLATER: not in the batch, asked alone
            assert batch(space, channel) == access.may_alert(space, channel), (space, channel)
    follow = bot.ctx.watcher.follow
    covering = follow.covering({"acme/open"})
    from bot.alerts.transitions import Alert

    alert = Alert(kind="transition", space="acme/open", at=1.0, kinds=("sleep",), old="RUNNING", new="SLEEPING")
    assert covering(alert, "CACME") == follow.covers(alert, "CACME")
