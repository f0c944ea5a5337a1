"""Hub webhooks nobody should be able to act with: forged, replayed, oversized and malformed deliveries.

Each is sent over real HTTP to the bot; the answer must be a 4xx (or a 2xx that does nothing), never a
5xx, and afterwards no Space is hot, no push is remembered and the Hub got no request.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bot.alerts.hot import PUSHES
from tests.faults.conftest import tally
from tests.test_webhooks import ENV, SECRET, deliver, payload, watch


@pytest.fixture
def hook_bot(make_bot, hub):
    bot = make_bot(**ENV)
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    return bot


def nothing_changed(bot, hub, redis_client) -> bool:
    return (bot.ctx.watcher.hot.entries() == {} and not redis_client.exists(PUSHES)
            and not [r for r in hub.requests if r.method != "GET"])


FORGED = [None, "", "wrong", SECRET[:-1], "x" + SECRET, SECRET.upper(), "x" * len(SECRET), "é" * 8, SECRET * 2]


@pytest.mark.parametrize("secret", FORGED)
def test_forged_deliveries_change_nothing(hook_bot, hub, redis_client, secret):
    status, _ = deliver(hook_bot, payload(), secret=secret)
    assert status in (401, 403)
    assert nothing_changed(hook_bot, hub, redis_client)
    tally("webhook: forged secret")


def test_a_replayed_delivery_heats_once(hook_bot, hub, redis_client):
    answers = [deliver(hook_bot, payload())[1] for _ in range(20)]
    assert answers[0].get("hot") == "acme/chat"
    assert all(a == {"ok": True, "duplicate": True} for a in answers[1:])
    first = hook_bot.ctx.watcher.hot.get("acme/chat")
    hook_bot.ctx.watcher.hot.cool("acme/chat")
    assert deliver(hook_bot, payload())[1].get("duplicate")          # still a replay after it cooled
    assert hook_bot.ctx.watcher.hot.get("acme/chat") is None and first is not None
    tally("webhook: replayed delivery", tried=20, duplicated=0)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 300 * 1024])
def test_oversized_deliveries_change_nothing(hook_bot, hub, redis_client, size):
    body = payload()
    body["padding"] = "x" * size
    status, _ = deliver(hook_bot, body)
    assert status == 413
    assert nothing_changed(hook_bot, hub, redis_client)
    tally("webhook: oversized body")


MALFORMED = [
    b"", b"not json", b"\xff\xfe\x00", b"[]", b"null", b"42", b'"string"', b"{",
    json.dumps({"event": None, "repo": None}).encode(),
    json.dumps({"event": "repo.content", "repo": "acme/chat"}).encode(),
    json.dumps({**payload(), "repo": {**payload()["repo"], "name": ["acme/chat"]}}).encode(),
    json.dumps({**payload(), "repo": {**payload()["repo"], "name": "acme/chat/../x"}}).encode(),
    json.dumps({**payload(), "updatedRefs": "refs/heads/main"}).encode(),
    json.dumps({**payload(sha="not a sha!"), "repo": {**payload()["repo"], "headSha": None}}).encode(),
    json.dumps({**payload(sha=""), "repo": {**payload()["repo"], "headSha": 123}}).encode(),
    b"[" * 100_00 + b"]" * 100_00,
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_deliveries_change_nothing(hook_bot, hub, redis_client, body):
    status, _ = deliver(hook_bot, body)
    assert 400 <= status < 500 or status == 200
    assert nothing_changed(hook_bot, hub, redis_client)
    tally("webhook: malformed body")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4), max_leaves=20)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=JSON, repo=JSON, refs=JSON)
def test_fuzzed_deliveries_never_fail(hook_bot, hub, redis_client, event, repo, refs):
    status, _ = deliver(hook_bot, {"event": event, "repo": repo, "updatedRefs": refs})
    assert status < 500
    assert nothing_changed(hook_bot, hub, redis_client)
    tally("webhook: fuzzed body")


def test_a_delivery_while_redis_is_down_gets_503_and_counts_later(make_bot, hub, tmp_path):
    from tests.emulators.redisserver import RedisServer

    server = RedisServer(tmp_path, persistent=True)
    try:
        bot = make_bot(redis_url=server.url, **ENV)
        hub.add_space("acme/chat")
        watch(bot, "watch acme/chat")
        server.stop()
        status, _ = deliver(bot, payload())
        assert status == 503                                 # the Hub's retry (or the next poll) brings it
        server.start()
        assert deliver(bot, payload())[1].get("hot") == "acme/chat"
        tally("webhook: Redis down")
    finally:
        server.stop()
