"""Hub push webhooks over real HTTP, the commit in alerts, and `/space webhook enable|disable`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bot.alerts.hot import PUSHES
from bot.alerts.webhooks import parse_push

from tests.test_alerts import clock, posts, tick, watch  # noqa: F401 — the clock fixture

SECRET = "whsec-" + "x" * 26
SHA = "3f2a1c9" + "ab" * 16 + "0"
ENV = {"SPACEOPS_HUB_WEBHOOK_SECRET": SECRET, "SPACEOPS_PUBLIC_URL": "https://spaceops.example.com",
       "SPACEOPS_ADMINS": "UADMIN"}


def payload(space: str = "acme/chat", sha: str = SHA, ref: str = "refs/heads/main", scope: str = "repo.content",
            kind: str = "space") -> dict:
    return {"event": {"action": "update", "scope": scope},
            "repo": {"type": kind, "name": space, "id": "65f0", "private": False, "headSha": sha,
                     "url": {"web": f"https://huggingface.co/spaces/{space}"}},
            "webhook": {"id": "6540", "version": 3},
            "updatedRefs": [{"ref": ref, "oldSha": "0" * 40, "newSha": sha}]}


def deliver(bot, body, secret: str | None = SECRET, method: str = "POST") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Webhook-Secret"] = secret
    request = urllib.request.Request(bot.url + "/hub/webhook", data=data if method == "POST" else None,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _json(err.read())


def _json(raw: bytes) -> dict:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"text": raw.decode("utf-8", "replace")}  # waitress's own 413 page


@pytest.fixture
def hook_bot(make_bot):
    return make_bot(**ENV)


def test_a_push_makes_the_space_hot_at_once_and_the_build_failure_names_the_commit(hook_bot, hub, slack, clock):
    bot = hook_bot
    bot.ctx.watcher.follow.clock = lambda: clock.now
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    tick(bot, clock)
    hub_requests = len(hub.requests)
    status, answer = deliver(bot, payload())
    assert (status, answer) == (200, {"ok": True, "hot": "acme/chat"})
    assert len(hub.requests) == hub_requests       # answered from Redis alone: no Hub call before the answer
    entry = bot.ctx.watcher.hot.get("acme/chat")
    assert entry.reason == "push" and entry.sha == SHA
    hub.set_stage("acme/chat", "BUILD_ERROR", error="pip failed")
    bot.ctx.watcher.hot_tick(clock.step(5))
    [alert] = posts(slack)
    assert "failed to build" in alert["text"] and "after push" in alert["text"] and "`3f2a1c9`" in alert["text"]
    assert f"/spaces/acme/chat/commit/{SHA}|" in alert["text"]


def test_missing_or_wrong_secret_is_refused_and_changes_nothing(hook_bot, hub, redis_client):
    hub.add_space("acme/chat")
    watch(hook_bot, "watch acme/chat")
    assert deliver(hook_bot, payload(), secret=None)[0] == 401
    assert deliver(hook_bot, payload(), secret="wrong")[0] == 403
    assert deliver(hook_bot, payload(), secret=SECRET + "x")[0] == 403
    assert hook_bot.ctx.watcher.hot.entries() == {} and not redis_client.exists(PUSHES)


def test_a_duplicate_delivery_is_answered_and_ignored(hook_bot, hub):
    hub.add_space("acme/chat")
    watch(hook_bot, "watch acme/chat")
    assert deliver(hook_bot, payload())[1]["hot"] == "acme/chat"
    hook_bot.ctx.watcher.hot.cool("acme/chat")
    assert deliver(hook_bot, payload()) == (200, {"ok": True, "duplicate": True})
    assert hook_bot.ctx.watcher.hot.get("acme/chat") is None


def test_other_branches_other_repos_and_unwatched_spaces_are_ignored(hook_bot, hub):
    hub.add_space("acme/chat")
    watch(hook_bot, "watch acme/chat")
    assert "ignored" in deliver(hook_bot, payload(ref="refs/heads/dev"))[1]
    assert "ignored" in deliver(hook_bot, payload(kind="model"))[1]
    assert "ignored" in deliver(hook_bot, payload(scope="discussion"))[1]
    assert "ignored" in deliver(hook_bot, payload(space="acme/other"))[1]
    assert hook_bot.ctx.watcher.hot.entries() == {}


def test_without_a_secret_setting_the_route_is_not_there(bot, hub):
    assert deliver(bot, payload())[0] == 404
    assert deliver(bot, payload(), method="GET")[0] == 405


def test_a_push_seen_in_the_batched_read_names_its_commit_too(bot, hub, slack, clock):
    hub.add_space("acme/a")
    hub.add_space("acme/b")
    watch(bot, "watch acme/*")
    tick(bot, clock)
    hub.spaces["acme/a"]["sha"] = SHA
    hub.set_stage("acme/a", "BUILDING")
    tick(bot, clock)
    building = posts(slack)[-1]
    assert "is building" in building["text"] and "`3f2a1c9`" in building["text"]


def test_parse_push_reads_the_main_branch_commit():
    assert parse_push(json.dumps(payload()).encode()).sha == SHA
    no_refs = payload()
    del no_refs["updatedRefs"]
    assert parse_push(json.dumps(no_refs).encode()).sha == SHA            # headSha when no refs are listed


# ---------------------------------------------------------------------- /space webhook


def test_webhook_enable_show_disable(hook_bot, hub, slack):
    hub.add_space("acme/chat")
    hub.add_space("bob/demo")
    watch(hook_bot, "watch acme/*")
    watch(hook_bot, "watch bob/demo")
    refused = hook_bot.command("/space webhook enable", user="U1")
    assert "admin role" in refused["text"] and hub.webhooks == {}
    assert "is off" in hook_bot.command("/space webhook")["text"]
    enabled = hook_bot.command("/space webhook enable", user="UADMIN")
    assert "turned on the Hub webhook" in enabled["text"]
    [hook] = hub.webhooks.values()
    assert hook["url"] == "https://spaceops.example.com/hub/webhook" and hook["secret"] == SECRET
    assert hook["domains"] == ["repo"]
    assert sorted((w["type"], w["name"]) for w in hook["watched"]) == [("org", "acme"), ("org", "bob")]
    shown = hook_bot.command("/space webhook")["text"]
    assert "is on" in shown and "`acme`" in shown and SECRET not in shown
    assert "turned off" in hook_bot.command("/space webhook disable", user="UADMIN")["text"]
    assert hub.webhooks == {} and "is off" in hook_bot.command("/space webhook")["text"]


def test_webhook_enable_needs_a_public_url(make_bot, hub):
    bot = make_bot(SPACEOPS_ADMINS="UADMIN")
    hub.add_space("acme/chat")
    watch(bot, "watch acme/chat")
    said = bot.command("/space webhook enable", user="UADMIN")["text"]
    assert "SPACEOPS_PUBLIC_URL" in said and hub.webhooks == {}
