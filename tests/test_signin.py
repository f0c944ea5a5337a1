"""Sign in with Hugging Face, driven like Slack does: `/space login` through signed requests, the Hub emulator
approving (or not) the code, the poll on an injected clock, the DM, `/space whoami`, `/space logout`, and
the roles refresh. Nothing sleeps through an interval: each test ticks the poll at the time it wants."""

from __future__ import annotations

import json
import logging
import re

import pytest
from cryptography.fernet import Fernet

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.signin.flow import PENDING, flow_key
from bot.signin.vault import Vault, key_id, refresh_key
from bot.signin.words import CHECK_ACTION, OPEN_ACTION

KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()
SIGNIN = {"SPACEOPS_HUB_OAUTH_CLIENT_ID": "spaceops-app", "SPACEOPS_SECRET_KEY": KEY}
CODE = re.compile(r"`([0-9A-F]{4}-[0-9A-F]{4})`")
WRITE_MEANS = ("acme: write → you may restart, pause, change sleep time and variables; paid changes still need an "
               "approver.")


class World:
    """One bot with sign-in on, its clock stepped by the test, and the conversation with one user."""

    def __init__(self, bot, hub, slack):
        self.bot, self.hub, self.slack = bot, hub, slack
        self.now = bot.ctx.store.clock()
        bot.ctx.store.clock.inject(lambda: self.now)
        self.signin = bot.ctx.signin

    def login(self, user: str = "UA") -> tuple[dict, str]:
        out = self.bot.command("/space login", user=user, channel="C1")
        found = CODE.search(out["text"])
        assert found, out
        return out, found.group(1)

    def poll(self, seconds: float = 5.0) -> int:
        self.now += seconds
        return self.signin.tick(self.now)

    def dms(self, user: str = "UA") -> list[str]:
        return [p.get("text", "") for p in self.slack.posts(user)]

    def refresh(self, seconds: float = 3601.0) -> dict:
        self.now += seconds
        return self.refresher().run(self.now)

    def refresher(self):
        from bot.signin.refresh import Refresh

        s = self.signin
        return Refresh(self.bot.settings, self.bot.ctx.store, s.deliveries, s.links, s.vault, s.oauth)

    def token_calls(self) -> list:
        return self.hub.calls("POST", "/oauth/token")

    def audit(self, user: str = "UA") -> list:
        return [(e.action, e.result) for e in self.bot.ctx.store.audit_entries(count=100) if e.user == user
                and e.action.startswith("signin")]


@pytest.fixture
def world(make_bot, hub, slack):
    hub.add_member("alice-ml", {"acme": "write", "corp": "read"})
    return World(make_bot(**SIGNIN), hub, slack)


def linked(world, user: str = "UA", hub_user: str = "alice-ml") -> str:
    _, code = world.login(user)
    world.hub.approve(hub_user, code)
    assert world.poll() == 1
    return code


# ---------------------------------------------------------------- the whole flow


def test_login_answers_privately_with_the_code_a_button_and_how_long_then_links_and_dms(world, hub, slack):
    out, code = world.login()
    assert out["response_type"] == "ephemeral"
    assert "valid 15 min more" in out["text"] and "I'll DM you" in out["text"]
    buttons = [e for b in out["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["action_id"] == OPEN_ACTION and buttons[0]["url"].endswith(f"user_code={code}")
    assert buttons[1]["action_id"] == CHECK_ACTION
    [start] = hub.calls("POST", "/oauth/device")
    assert "client_id=spaceops-app" in start.body and "read-memberships" in start.body
    assert world.poll(1) == 0  # not due before the Hub's interval
    assert world.poll(4) == 1 and world.dms() == []  # pending
    hub.approve("alice-ml", code)
    assert world.poll() == 1
    [dm] = world.dms()
    assert dm.startswith("Signed in as `alice-ml` (Hugging Face). ")
    assert WRITE_MEANS in dm and "corp: read → you may read its Spaces" in dm
    link = world.signin.links.get("UA")
    assert (link.hub_user, link.orgs, link.refreshable) == ("alice-ml", {"acme": "write", "corp": "read"}, True)
    assert link.role_in("acme", world.now) == "write" and link.role_in("alice-ml", world.now) == "admin"
    assert world.bot.ctx.store.redis.get(flow_key("UA")) is None
    assert ("signin.link", "ok") in world.audit()
    # whoami: the Slack user, the Hub account, each org with what it means, since when, next refresh.
    me = world.bot.command("/space whoami", user="UA")["text"]
    assert "<@UA> is `alice-ml` on Hugging Face" in me and WRITE_MEANS in me and "next refresh" in me
    assert "alice-ml: your own namespace: admin" in me


def test_two_logins_in_a_row_reuse_the_live_code(world, hub):
    _, first = world.login()
    again, second = world.login()
    assert first == second and "still valid" in again["text"]
    assert len(hub.calls("POST", "/oauth/device")) == 1


def test_slow_down_adds_five_seconds_and_5xx_is_inconclusive(world, hub, slack):
    _, code = world.login()
    hub.inject("POST", "/oauth/token", status=400, body={"error": "slow_down"})
    assert world.poll() == 1
    assert world.signin.flow("UA").interval == 10
    assert world.poll(5) == 0 and world.poll(5) == 1  # now every 10 s
    hub.inject("POST", "/oauth/token", status=503, body="upstream down", times=2)
    assert world.poll(10) == 1 and world.poll(10) == 1
    assert world.signin.flow("UA") is not None and world.dms() == []  # still polling, nothing said
    hub.approve("alice-ml", code)
    assert world.poll(10) == 1
    assert world.dms()[0].startswith("Signed in as `alice-ml`")


def test_network_errors_and_a_hanging_token_endpoint_keep_polling(world, hub):
    _, code = world.login()
    hub.inject("POST", "/oauth/token", status=200, body=b"<html>not json</html>", times=1)
    assert world.poll() == 1 and world.signin.flow("UA") is not None
    hub.approve("alice-ml", code)
    assert world.poll() == 1 and world.signin.links.get("UA") is not None


@pytest.mark.parametrize("end, says", [("deny", "declined on the Hub"), ("expire", "expired before it was approved")])
def test_denied_or_expired_says_so_and_how_to_start_again(world, hub, end, says):
    _, code = world.login()
    getattr(hub, end)(code)
    assert world.poll() == 1
    [dm] = world.dms()
    assert says in dm and "Run `/space login` to start again." in dm
    assert world.signin.links.get("UA") is None and world.signin.flow("UA") is None
    assert world.poll() == 0  # nothing left to poll


def test_our_own_expiry_ends_the_flow_without_asking_the_hub(world, hub):
    world.login()
    world.now += 901
    before = len(world.token_calls())
    assert world.signin.tick(world.now) == 1
    assert len(world.token_calls()) == before and "expired" in world.dms()[0]


def test_forged_and_replayed_completions_do_nothing(world, hub, slack):
    _, code = world.login("UA")
    flow_id = world.signin.flow("UA").id
    hub.approve("alice-ml", code)
    # Another Slack user clicks A's "I've approved it" (or sends any id): refused, no token request.
    for user, value in (("UB", flow_id), ("UA", "not-the-id"), ("UB", "")):
        answer = world.bot.click(CHECK_ACTION, value, user=user)
        assert answer.status == 200
        said = slack.wait(lambda: slack.responses(answer.response_id), 5)
        assert "not yours, or it has ended" in said[0]["text"]
    assert world.token_calls() == [] and world.signin.links.get("UB") is None
    # The owner's click completes it.
    world.now += 5
    answer = world.bot.click(CHECK_ACTION, flow_id, user="UA")
    assert "Done" in slack.wait(lambda: slack.responses(answer.response_id), 5)[0]["text"]
    assert world.signin.links.get("UA").hub_user == "alice-ml" and len(world.dms()) == 1
    # Replayed: the click again, and a poll tick: no token request, no second DM, the link as it was.
    calls = len(world.token_calls())
    answer = world.bot.click(CHECK_ACTION, flow_id, user="UA")
    assert "not yours, or it has ended" in slack.wait(lambda: slack.responses(answer.response_id), 5)[0]["text"]
    assert world.poll() == 0 and len(world.token_calls()) == calls and len(world.dms()) == 1
    # Another user's /space login gets a code of its own, never A's link.
    _, other = world.login("UB")
    assert other != code and world.signin.links.get("UB") is None


def test_logout_during_a_sign_in_then_approval_links_nothing(world, hub):
    _, code = world.login()
    world.bot.command("/space logout", user="UA")
    hub.approve("alice-ml", code)
    assert world.poll() == 0 and world.signin.links.get("UA") is None


def test_redis_lost_between_code_and_token_asks_to_start_again(world, hub):
    _, code = world.login()
    world.bot.ctx.store.redis.flushall()
    hub.approve("alice-ml", code)
    world.poll()
    [dm] = world.dms()
    assert "was lost" in dm and "Run `/space login` to start again." in dm
    assert world.signin.links.get("UA") is None and world.token_calls() == []
    out, _ = world.login()  # a fresh code
    assert "Sign in with Hugging Face:" in out["text"]


def test_roles_unreadable_after_the_grant_links_nothing(world, hub):
    _, code = world.login()
    hub.approve("alice-ml", code)
    hub.inject("GET", "/oauth/userinfo", status=503, body="down", times=2)
    world.poll()
    assert world.signin.links.get("UA") is None
    assert world.bot.ctx.store.redis.get(refresh_key("UA")) is None
    assert "did not say who you are" in world.dms()[0]


def test_whoami_unlinked_and_logout(world, hub):
    assert "not signed in with Hugging Face" in world.bot.command("/space whoami", user="UA")["text"]
    linked(world)
    out = world.bot.command("/space logout", user="UA")["text"]
    assert "Signed out" in out and "alice-ml" in out
    assert world.signin.links.get("UA") is None and world.bot.ctx.store.redis.get(refresh_key("UA")) is None
    assert "not signed in" in world.bot.command("/space whoami", user="UA")["text"]
    assert ("signin.logout", "ok") in world.audit()


def test_login_when_not_set_up_says_what_to_set(make_bot):
    bot = make_bot()
    assert "SPACEOPS_HUB_OAUTH_CLIENT_ID" in bot.command("/space login", user="UA")["text"]


def test_login_with_the_hub_down_starts_nothing(world, hub):
    hub.inject("POST", "/oauth/device", status=502, body="bad gateway")
    out = world.bot.command("/space login", user="UA")
    assert "Hugging Face did not answer (HTTP 502)" in out["text"] and world.signin.flow("UA") is None


# ---------------------------------------------------------------- the refresh


def test_refresh_rotates_the_token_and_reads_a_lowered_role(world, hub):
    linked(world)
    redis = world.bot.ctx.store.redis
    first = world.signin.vault.get_refresh("UA")
    assert world.refresh(60)["refreshed"] == 0  # not due yet
    hub.set_role("alice-ml", "acme", "read")
    assert world.refresh()["changed"] == 1
    assert world.signin.vault.get_refresh("UA") not in (None, first)  # rotated
    assert world.signin.links.get("UA").orgs["acme"] == "read"
    assert "acme: write → read" in world.dms()[-1].replace("`", "")
    assert ("signin.refresh", "changed") in world.audit()
    assert redis.get(refresh_key("UA")) is not None


def test_membership_removed_removes_the_rights_at_once(world, hub):
    linked(world)
    hub.set_role("alice-ml", "acme", None)
    world.refresh()
    link = world.signin.links.get("UA")
    assert "acme" not in link.orgs and link.role_in("acme", world.now) == "no_access"


def test_invalid_grant_forgets_the_link_and_says_why(world, hub):
    linked(world)
    hub.revoke("alice-ml")
    assert world.refresh()["removed"] == 1
    assert world.signin.links.get("UA") is None and world.signin.vault.get_refresh("UA") is None
    assert "no longer accepts your sign-in" in world.dms()[-1]


def test_a_transient_refresh_failure_keeps_the_roles_then_they_count_as_read(world, hub):
    linked(world)
    hub.inject("POST", "/oauth/token", status=503, body="down", times=100)
    assert world.refresh()["failed"] == 1
    link = world.signin.links.get("UA")
    assert link.refresh_failed_at and link.role_in("acme", world.now) == "write"
    world.refresh(3600)
    world.refresh(22 * 3600)
    assert world.signin.links.get("UA").role_in("acme", world.now) == "read"  # 24 h old


def test_no_refresh_token_expires_after_link_days_and_asks_again(world, hub):
    hub.oauth_give_refresh = False
    linked(world)
    link = world.signin.links.get("UA")
    assert not link.refreshable and link.expires_at == pytest.approx(link.linked_at + 30 * 86400)
    world.refresh(29 * 86400)
    assert world.signin.links.get("UA") is not None
    world.refresh(2 * 86400)
    assert world.signin.links.get("UA") is None and "has ended" in world.dms()[-1]


def test_one_bad_link_does_not_stop_the_refresh(world, hub):
    linked(world)
    world.bot.ctx.store.redis.set("spaceops:hublink:UBAD", "{not json")
    hub.set_role("alice-ml", "acme", "admin")
    assert world.refresh()["changed"] == 1


# ---------------------------------------------------------------- secrets


def test_tokens_never_reach_slack_logs_exceptions_metrics_or_redis_in_clear(world, hub, slack, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []
    real_issue = hub._issue

    def issue(user):  # every token the Hub hands out, access and refresh
        out = real_issue(user)
        issued.extend(v for k, v in out.items() if k.endswith("_token"))
        return out
    monkeypatch.setattr(hub, "_issue", issue)
    _, code = world.login()
    hub.inject("POST", "/oauth/token", status=503, body="down")
    world.poll()
    hub.approve("alice-ml", code)
    world.poll()
    hub.set_role("alice-ml", "acme", "read")
    world.refresh()
    hub.revoke("alice-ml")
    world.refresh()
    device_codes = list(hub.device_codes)
    # The refresh tokens the bot sent (each one the Hub had issued, since rotated or revoked).
    sent = re.findall(r"refresh_token=([^&]+)", " ".join(str(r.body) for r in world.token_calls()))
    secrets = set(issued) | set(sent) | set(device_codes) | {KEY}
    assert len(issued) >= 4 and sent and device_codes
    said = json.dumps([c.body for c in slack.calls], default=str)
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    metrics = world.bot.get("/metrics").body
    dump = {k: (world.bot.ctx.store.redis.dump(k) or b"").decode("latin-1")
            for k in world.bot.ctx.store.redis.scan_iter("*")}
    for secret in secrets:
        assert secret not in said and secret not in logged and secret not in metrics, secret[:12]
        assert not any(secret in v for v in dump.values()), secret[:12]


def test_vault_rotation_and_binding():
    old = Vault((OLD_KEY,))
    sealed = old.seal("hf_oauth_refresh_x", "UA", "refresh")
    assert json.loads(sealed)["kid"] == key_id(OLD_KEY) and "hf_oauth" not in sealed
    rotated = Vault((KEY, OLD_KEY))
    assert rotated.open(sealed, "UA", "refresh") == "hf_oauth_refresh_x"
    assert json.loads(rotated.seal("t", "UA", "refresh"))["kid"] == key_id(KEY)
    assert rotated.open(sealed, "UB", "refresh") is None      # copied to another user's record: refused
    assert rotated.open(sealed, "UA", "device") is None       # another purpose: refused
    assert Vault((KEY,)).open(sealed, "UA", "refresh") is None  # the old key dropped: absent
    assert KEY not in repr(rotated) and OLD_KEY not in repr(rotated)


@pytest.mark.parametrize("env, says", [
    ({"SPACEOPS_ROLES_FROM": "hub"}, "SPACEOPS_ROLES_FROM=hub needs SPACEOPS_SECRET_KEY"),
    ({"SPACEOPS_ROLES_FROM": "both"}, "SPACEOPS_ROLES_FROM=both needs SPACEOPS_SECRET_KEY"),
    ({"SPACEOPS_HUB_OAUTH_CLIENT_ID": "app"}, "SPACEOPS_HUB_OAUTH_CLIENT_ID is set but SPACEOPS_SECRET_KEY is not"),
    ({"SPACEOPS_SECRET_KEY": "hunter2"}, "SPACEOPS_SECRET_KEY: entry 1 of 1 is not a Fernet key"),
    ({"SPACEOPS_SECRET_KEY": f"{KEY},{KEY}"}, "lists the same key twice"),
    ({"SPACEOPS_HUB_ROLES_TTL": "soon"}, "SPACEOPS_HUB_ROLES_TTL='soon' is not a duration"),
    ({"SPACEOPS_HUB_ROLES_TTL": "10s"}, "SPACEOPS_HUB_ROLES_TTL=10s is too short"),
    ({"SPACEOPS_HUB_LINK_DAYS": "0"}, "SPACEOPS_HUB_LINK_DAYS='0' must be between 1 and 365"),
])
def test_settings_are_checked_with_a_sentence_naming_them(env, says):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert says in err.value.sentence if hasattr(err.value, "sentence") else says in str(err.value)
    assert "hunter2" not in str(err.value)


def test_settings_defaults_and_rotation():
    s = Settings.from_env({**SIGNIN, "SPACEOPS_SECRET_KEY": f"{KEY},{OLD_KEY}"})
    assert (s.hub_roles_ttl, s.hub_link_days, s.secret_keys, s.signin_enabled) == (3600, 30, (KEY, OLD_KEY), True)
    assert KEY not in repr(s)
    assert Settings.from_env({"SPACEOPS_ROLES_FROM": "hub", **SIGNIN}).signin_enabled


def test_the_poll_is_in_redis_and_survives_a_restart(make_bot, hub, slack, redis_client):
    hub.add_member("alice-ml", {"acme": "write"})
    first = World(make_bot(**SIGNIN), hub, slack)
    _, code = first.login()
    first.bot.close()
    hub.approve("alice-ml", code)
    second = World(make_bot(**SIGNIN), hub, slack)
    second.now = first.now
    assert redis_client.zscore(PENDING, "UA") is not None
    assert second.poll() == 1 and second.signin.links.get("UA").hub_user == "alice-ml"


def test_socket_mode_signs_in_too_and_every_replica_polls_on_its_scheduler(world, hub, slack):
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.socket_mode.request import SocketModeRequest

    handler = SocketModeHandler(world.bot.app, app_token="xapp-test")
    handler.client.send_socket_mode_response = lambda response: None

    def envelope(text: str, rid: str) -> list:
        handler.handle(handler.client, SocketModeRequest.from_dict({
            "envelope_id": rid, "type": "slash_commands", "accepts_response_payload": True, "payload": {
                "team_id": "T1", "channel_id": "C1", "user_id": "UA", "command": "/space", "text": text,
                "response_url": f"{slack.base}/respond/{rid}", "trigger_id": f"trig.{rid}"}}))
        return slack.wait(lambda: slack.responses(rid), 5)

    code = CODE.search(envelope("login", "sock1")[0]["text"]).group(1)
    hub.approve("alice-ml", code)
    world.poll()
    assert world.dms()[0].startswith("Signed in as `alice-ml`")
    assert "<@UA> is `alice-ml`" in envelope("whoami", "sock2")[0]["text"]
    # `serve` and `socket` both start the watcher's scheduler, which runs the poll every few seconds.
    assert ("signin-poll", world.signin.scheduled, {"second": "*/2"}) in world.bot.ctx.watcher.cron
    assert "signin-refresh" in world.bot.ctx.watcher.periodic.names


def test_the_leaders_tick_refreshes_the_roles(world, hub):
    linked(world)
    hub.set_role("alice-ml", "acme", "read")
    world.now += 60
    world.bot.ctx.watcher.tick(world.now)
    assert world.signin.links.get("UA").orgs["acme"] == "write"  # not due yet
    world.now += 3600
    world.bot.ctx.watcher.tick(world.now)
    assert world.signin.links.get("UA").orgs["acme"] == "read"


def test_two_slack_users_may_link_one_hub_account_and_the_audit_says_so(world, hub):
    linked(world, "UA")
    linked(world, "UB")
    [entry] = [e for e in world.bot.ctx.store.audit_entries(count=50) if e.user == "UB" and e.action == "signin.link"]
    assert entry.params["hub_user"] == "alice-ml" and entry.params["also_linked"] == ["UA"]
    assert "refresh_token" not in json.dumps(entry.params) and "hf_oauth" not in json.dumps(entry.params)


# ---------------------------------------------------------------- the issue's end-to-end flow (with bot/access)


@pytest.mark.parametrize("unlinked", ["read", "none"])
def test_sign_in_then_hub_roles_decide_restart_and_a_lowered_role_refuses_after_the_refresh(make_bot, hub, slack,
                                                                                            unlinked):
    """/space login → the DM with the code → the Hub approves → restart allowed for `write` and refused for
    `read` with the sentence → the role is lowered on the Hub → after the refresh, the restart is refused."""
    hub.add_space("acme/chat")
    hub.add_member("alice-ml", {"acme": "write"})
    hub.add_member("rita-ml", {"acme": "read"})
    world = World(make_bot(SPACEOPS_ROLES_FROM="hub", SPACEOPS_UNLINKED=unlinked, **SIGNIN), hub, slack)
    bot = world.bot
    before = bot.command("/space restart acme/chat", user="UA")["text"]
    assert "/space login" in before and hub.calls("POST", "/api/spaces/acme/chat/restart") == []
    linked(world, "UA", "alice-ml")
    linked(world, "UR", "rita-ml")
    assert world.dms("UA")[0].startswith("Signed in as `alice-ml` (Hugging Face). " + WRITE_MEANS)
    assert "restarted `acme/chat`" in bot.command("/space restart acme/chat", user="UA")["text"]
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
    refused = bot.command("/space restart acme/chat", user="UR")["text"]
    assert "Your Hugging Face role in `acme` is `read`" in refused and "needs `write`" in refused
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
    # The audit names both identities.
    [entry] = [e for e in bot.ctx.store.audit_entries("acme/chat") if e.action == "restart" and e.user == "UA"][:1]
    assert entry.hub == {"user": "alice-ml", "role": "write", "namespace": "acme"}
    assert "(hf: alice-ml, write in acme)" in bot.command("/space audit acme/chat", user="UA")["text"]
    # The role is lowered on the Hub; before the refresh the link still says write, after it read.
    hub.set_role("alice-ml", "acme", "read")
    world.now += 3601
    bot.ctx.watcher.tick(world.now)
    assert "acme: write → read" in world.dms("UA")[-1].replace("`", "")
    after = bot.command("/space restart acme/chat", user="UA")["text"]
    assert "Your Hugging Face role in `acme` is `read`" in after
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
    me = bot.command("/space whoami", user="UA")["text"]
    assert "acme: read → you may read its Spaces." in me and "SPACEOPS_ROLES_FROM=slack" not in me
    assert "Signed out" in bot.command("/space logout", user="UA")["text"]
