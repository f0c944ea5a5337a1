"""The bot on Redis Cluster (3 primaries + 3 replicas) and on Sentinel (primary, replica, 3 Sentinels):
real servers on free ports, the same scenarios as on one Redis, then a primary killed mid-flight.

Skipped, with the reason, where redis-server/redis-cli can't run these topologies.
"""

from __future__ import annotations

import inspect
import threading
import time

import pytest

from bot.core.store import REDIS_ERRORS, connect
from tests import test_alerts, test_approvals
from tests.emulators.redistopology import ClusterServers, SentinelServers, why_not
from tests.faults.conftest import figure, tally

ROLES = test_approvals.ROLES
HARDWARE = test_approvals.HARDWARE

# The scenarios that lean on Redis atomicity, each run unchanged against the topology.
SCENARIOS = [
    test_approvals.test_request_refusals_then_approval_applies_once,
    test_approvals.test_ten_clicks_on_two_replicas_make_one_hub_call,
    test_approvals.test_store_claim_is_atomic_across_threads,
    test_approvals.test_hub_failure_keeps_the_request_open_and_a_retry_applies_once,
    test_approvals.test_list_withdraw_and_cancel,
    test_alerts.test_two_instances_post_once,
    test_alerts.test_stale_or_concurrent_pollers_cannot_duplicate,
    test_alerts.test_killing_the_leader_hands_polling_over,
    test_alerts.test_incident_thread_and_recovery_edit,
    test_alerts.test_slack_429_delays_without_loss_or_duplicate,
    test_alerts.test_alerts_decided_but_not_enqueued_are_delivered_once,
    test_alerts.test_restart_resends_nothing,
    test_alerts.test_mute_holds_back_and_says_one_line_when_it_ends,
    test_alerts.test_downtime_summary_is_one_message_per_channel,
    test_alerts.test_history_and_usage_are_kept_from_the_first_poll,
]


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def topology(request, tmp_path_factory):
    reason = why_not(sentinel=request.param == "sentinel")
    if reason:
        pytest.skip(f"Redis {request.param} suite skipped: {reason}")
    kind = ClusterServers if request.param == "cluster" else SentinelServers
    servers = kind(tmp_path_factory.mktemp(request.param))
    servers.kind = request.param
    servers.killed = []
    yield servers
    servers.stop()


@pytest.fixture
def topo_client(topology):
    # Nodes a failover test killed come back (as replicas) only if another test needs the topology.
    while topology.killed:
        topology.bring_back(topology.killed.pop())
    client = connect(topology.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def topo_make_bot(make_bot, topology, topo_client):
    """`make_bot` with REDIS_URL pointing at the topology (the bot builds its own client from it)."""
    def make(**env):
        return make_bot(redis_url=topology.url, client=connect(topology.url), **env)
    return make


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_scenario_on_the_topology(scenario, request, topology, topo_make_bot, topo_client):
    given = {"make_bot": topo_make_bot, "redis_client": topo_client, "redis_server": None,
             "clock": test_alerts.Clock()}
    args = {}
    for name in inspect.signature(scenario).parameters:
        if name == "bot":
            args[name] = topo_make_bot()
        elif name in given:
            args[name] = given[name]
        else:
            args[name] = request.getfixturevalue(name)
    scenario(**args)


@pytest.mark.slow  # starts a 6-node cluster and a Sentinel set (6 s each) when no other test has
def test_the_client_matches_the_url(topology, topo_client):
    from redis.cluster import RedisCluster

    assert isinstance(topo_client, RedisCluster) == (topology.kind == "cluster")
    assert topo_client.ping()


# ---------------------------------------------------------------- a primary dies


def _until(what, step, timeout: float = 30.0):
    """Run `step()` every 0.1 s until it returns truthy, treating Redis errors as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = step()
            if result:
                return result
        except REDIS_ERRORS:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


def _kill_a_primary(topology, key: str) -> tuple[object, float]:
    """Kill the primary that holds `key`; return (node, seconds until its replica serves)."""
    topology.sync_replicas()
    if topology.kind == "cluster":
        node = topology.primary_for(key)
        return node, topology.fail_primary(node)
    return topology.fail_primary()


@pytest.mark.slow
def test_primary_failover_loses_nothing_and_posts_nothing_twice(topology, topo_make_bot, hub, slack):
    """Two replicas of the bot; a pending approval, watches, and alerts queued behind a Slack 429; then the
    primary holding the outbox dies, later the one holding the approvals: every alert is posted exactly once,
    the watches and the request survive, and ten clicks on two replicas make one Hub call."""
    from bot.alerts.outbox import STREAM
    from bot.approvals.store import TAG

    clock = test_alerts.Clock()
    for name in ("acme/chat", "acme/api", "acme/demo"):
        hub.add_space(name, hardware="cpu-basic")
    a, b = topo_make_bot(**ROLES), topo_make_bot(**ROLES)
    test_alerts.watch(a, "watch acme/*", "C1")
    test_alerts.watch(a, "watch acme/api", "C2")
    assert a.ctx.watcher.tick(clock.step()).polled
    pending = test_approvals.ask(a, slack)
    posts_before = len(slack.posts())

    # Decided and queued, not delivered: Slack says 429 for a while.
    slack.fail("chat.postMessage", 429, headers={"Retry-After": "30"}, times=1000)
    hub.set_stage("acme/api", "RUNTIME_ERROR", error="boom")
    hub.set_stage("acme/demo", "PAUSED")
    a.ctx.watcher.tick(clock.step())
    queued = a.ctx.store.redis.xlen(STREAM)
    assert queued >= 3 and len(slack.posts()) == posts_before

    with slack.lock:
        slack.faults.clear()
    killed = topology.killed  # brought back before the next test that needs them
    node, failover = _kill_a_primary(topology, STREAM)
    killed.append(node)
    start = time.monotonic() - failover

    # The leader keeps ticking (the drain job runs every second); alerts flow once the replica serves.
    def flowed():
        a.ctx.watcher.tick(clock.step(40))
        return len(slack.posts()) >= posts_before + queued
    _until("queued alerts delivered after the failover", flowed)
    flowing = time.monotonic() - start

    # The primary holding the approvals dies, and ten clicks land on two replicas before its replica is
    # promoted. (Each click's write either reached the replica or was refused by a dead node: replication
    # is asynchronous, so a write acknowledged in the very instant of a crash could still be lost.)
    approvals_key = f"spaceops:{TAG}:pending"
    if topology.kind == "sentinel":
        topology.bring_back(killed.pop())      # its one replica is needed for a second failover
        topology.sync_replicas()
        killed_node, promoted = topology.kill_primary()
    else:
        if topology.primary_for(approvals_key) in killed:   # same node as the outbox: already failed over
            topology.bring_back(killed.pop())
        topology.sync_replicas()
        killed_node = topology.primary_for(approvals_key)
        promoted = topology.kill_primary(killed_node)
    killed.append(killed_node)
    def race() -> list[str]:
        """Ten Approve clicks at once, alternating between the two bot replicas; what each clicker was told."""
        hub.latency = 0.2  # keep the winner inside the Hub call while the others arrive
        barrier = threading.Barrier(10)
        answers = []

        def clicker(n: int) -> None:
            bot = (a, b)[n % 2]
            barrier.wait()
            answers.append(bot.click("approval:approve", pending.id, user=("UAPP", "UAPP2")[n // 5],
                                     channel=pending.channel, message_ts=pending.ts))

        threads = [threading.Thread(target=clicker, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        hub.latency = 0.0
        assert [x.status for x in answers] == [200] * 10
        slack.wait(lambda: all(slack.responses(x.response_id) for x in answers), timeout=30)
        return [r["text"] for x in answers for r in slack.responses(x.response_id)]

    # Clicks that meet the dead primary are told the database is unreachable and change nothing.
    told = race()
    unreachable = sum("database" in text for text in told)
    promoted()
    # Once the replica serves, the same race again (and again while a client still finds its way to the new
    # primary): exactly one click in all of them applies the request.
    approved, after = [], []

    def settled() -> bool:
        after.extend(race())
        approved.extend(text for text in after[-10:] if text.startswith("Approved"))
        return a.ctx.approvals.store.get(pending.id).status == "approved"
    _until("the request approved once the replica serves", settled)
    assert len(approved) == 1, approved
    hardware_calls = len(hub.calls("POST", HARDWARE))

    # Nothing posted twice, nothing lost, and polling goes on from the stored states (no repeats).
    for _ in range(3):
        _until("a tick", lambda: a.ctx.watcher.tick(clock.step(40)) or True)
    texts = [(p["channel"], p["text"]) for p in slack.posts()[posts_before:]]
    duplicated = len(texts) - len(set(texts))
    expected = {("C1", "api"), ("C1", "demo"), ("C2", "api")}
    seen = {(channel, space) for channel, text in texts for space in ("api", "demo") if f"acme/{space}" in text}
    lost = len(expected - seen)
    watches = a.command("/space watches all")["text"]
    assert "acme/*" in watches and "acme/api" in watches
    hub.set_stage("acme/chat", "SLEEPING")
    _until("an alert after the failover", lambda: (a.ctx.watcher.tick(clock.step(40)) and False)
           or any("acme/chat" in p["text"] for p in slack.posts()[posts_before:]))

    assert (hardware_calls, lost, duplicated) == (1, 0, 0), texts
    assert a.get("/healthz").status == b.get("/healthz").status == 200
    assert test_approvals.buttons(test_approvals.message(slack, pending)) == []
    tally(f"Redis {topology.kind}: primary killed", tried=queued + 20, lost=lost, duplicated=duplicated)
    figure(f"Redis {topology.kind}, primary killed with {queued} alerts queued and a paid-hardware request pending "
           f"(2 bot replicas; 10 Approve clicks while it was down, {unreachable} told the database is unreachable, "
           f"{len(after)} more after): Hub hardware calls {hardware_calls}, alerts lost {lost}, duplicated {duplicated}, "
           f"replica serving after {failover:.1f} s, alerts flowing after {flowing:.1f} s")
