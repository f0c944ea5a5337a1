"""Sign-in under faults: the Hub's OAuth endpoints down or hanging, codes that expire, consent denied, a member
removed from an org between refreshes, forged and replayed completions, Redis lost between the code and the
token. Each row checks what the user was told, that nothing is half-linked, that no link grants more than
the Hub says now (wrong grants), and that no token or device code reached a log line, Slack or /metrics.
The session prints the table after the fault tally."""

from __future__ import annotations

import json
import logging

import pytest

from tests.faults.conftest import figure, tally
from tests.test_signin import CHECK_ACTION, SIGNIN, World

ROWS: list[tuple[str, int, int, int, int, int]] = []


def _header() -> None:
    if not ROWS:
        figure("")
        figure(f"{'sign-in fault':<48}| cases | user told | half-linked | wrong grants | tokens leaked")
        figure(f"{'-' * 48}|-------|-----------|-------------|--------------|--------------")


@pytest.fixture
def faults(make_bot, hub, slack, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []
    real = hub._issue

    def issue(user):
        out = real(user)
        issued.extend(v for k, v in out.items() if k.endswith("_token"))
        return out
    monkeypatch.setattr(hub, "_issue", issue)
    hub.add_member("alice-ml", {"acme": "write", "corp": "read"})
    world = World(make_bot(SPACEOPS_HUB_TIMEOUT="1", **SIGNIN), hub, slack)
    world.issued = issued
    world.caplog = caplog
    yield world
    hub.clear_faults()


def half_linked(world, user: str = "UA") -> bool:
    """A link without its roles, a refresh token without a link, or a link and a flow at once."""
    redis = world.bot.ctx.store.redis
    link = world.signin.links.get(user)
    token = redis.get(f"spaceops:signin:refresh:{user}")
    return (link is None and token is not None) or (link is not None and link.refreshable and token is None)


def wrong_grants(world, user: str = "UA", hub_user: str = "alice-ml") -> int:
    """Orgs where the link's role is higher than the member's role on the Hub now."""
    link = world.signin.links.get(user)
    if link is None:
        return 0
    order = ("no_access", "read", "contributor", "write", "admin")
    truth = world.hub.members.get(hub_user, {}).get("orgs", {})
    return sum(order.index(link.role_in(org, world.now)) > order.index(truth.get(org, "no_access"))
               for org in set(truth) | set(link.orgs))


def leaked(world) -> int:
    secrets = set(world.issued) | set(world.hub.device_codes)
    logged = "\n".join(r.getMessage() + str(r.exc_text or "") for r in world.caplog.records)
    said = json.dumps([c.body for c in world.slack.calls], default=str)
    metrics = world.bot.get("/metrics").body
    return sum(1 for s in secrets if s in logged or s in said or s in metrics)


def record(world, name: str, told: bool, expect_link: bool, user: str = "UA") -> None:
    half, wrong, leaks = int(half_linked(world, user)), wrong_grants(world, user), leaked(world)
    has_link = world.signin.links.get(user) is not None
    assert (half, wrong, leaks) == (0, 0, 0), (name, half, wrong, leaks)
    assert told, name
    assert has_link == expect_link, name
    _header()
    ROWS.append((name, 1, int(told), half, wrong, leaks))
    figure(f"{name:<48}| {1:>5} | {int(told):>9} | {half:>11} | {wrong:>12} | {leaks:>13}")
    tally("sign-in: " + name)


def test_device_endpoint_down_at_login(faults, hub):
    hub.inject("POST", "/oauth/device", status=503, body="down")
    out = faults.bot.command("/space login", user="UA")
    record(faults, "/oauth/device answers 503", "did not answer" in out["text"] and faults.signin.flow("UA") is None,
           False)


def test_device_endpoint_hangs_at_login(faults, hub):
    hub.inject("POST", "/oauth/device", hang=True)
    out = faults.bot.command("/space login", user="UA", timeout=10)
    record(faults, "/oauth/device hangs", "did not answer" in out["text"] and faults.signin.flow("UA") is None, False)


@pytest.mark.parametrize("fault", ["503", "hang"])
def test_token_endpoint_fails_until_the_code_expires(faults, hub, fault):
    _, code = faults.login()
    if fault == "hang":
        hub.inject("POST", "/oauth/token", hang=True, times=1000)
    else:
        hub.inject("POST", "/oauth/token", status=503, body="down", times=1000)
    hub.approve("alice-ml", code)
    for _ in range(3):
        faults.poll(5)
    assert faults.signin.flow("UA") is not None and faults.dms() == []  # inconclusive: still polling
    faults.poll(900)
    record(faults, f"/oauth/token {'hangs' if fault == 'hang' else 'answers 503'} until expiry",
           "expired" in " ".join(faults.dms()), False)


def test_token_endpoint_recovers_before_expiry(faults, hub):
    _, code = faults.login()
    hub.inject("POST", "/oauth/token", status=502, body="bad gateway", times=2)
    hub.approve("alice-ml", code)
    faults.poll(), faults.poll(), faults.poll()
    record(faults, "/oauth/token 502 twice, then answers", "Signed in as" in " ".join(faults.dms()), True)


def test_userinfo_down_after_the_grant(faults, hub):
    _, code = faults.login()
    hub.approve("alice-ml", code)
    hub.inject("GET", "/oauth/userinfo", status=500, body="oops", times=5)
    faults.poll()
    record(faults, "/oauth/userinfo down after the grant", "nothing was linked" in " ".join(faults.dms()), False)


def test_code_expires(faults, hub):
    _, code = faults.login()
    hub.expire(code)
    faults.poll()
    record(faults, "code expires", "expired" in " ".join(faults.dms()), False)


def test_consent_denied(faults, hub):
    _, code = faults.login()
    hub.deny(code)
    faults.poll()
    record(faults, "consent denied", "declined" in " ".join(faults.dms()), False)


@pytest.mark.parametrize("change", ["removed", "lowered", "sso"])
def test_member_changed_between_refreshes(faults, hub, change):
    _, code = faults.login()
    hub.approve("alice-ml", code)
    faults.poll()
    if change == "removed":
        hub.set_role("alice-ml", "acme", None)
    elif change == "lowered":
        hub.set_role("alice-ml", "acme", "read")
    else:
        hub.set_restrictions("alice-ml", "acme", ["sso"])
    faults.refresh()
    link = faults.signin.links.get("UA")
    told = "changed" in faults.dms()[-1] if change != "sso" else link.role_in("acme", faults.now) == "no_access"
    record(faults, f"member {change} in an org between refreshes", told, True)


def test_forged_completion(faults, hub, slack):
    _, code = faults.login("UA")
    flow_id = faults.signin.flow("UA").id
    hub.approve("alice-ml", code)
    told = True
    for user, value in (("UB", flow_id), ("UB", "guess"), ("UA", "guess")):
        answer = faults.bot.click(CHECK_ACTION, value, user=user)
        said = slack.wait(lambda: slack.responses(answer.response_id), 5)
        told &= "not yours" in said[0]["text"]
    assert faults.signin.links.get("UB") is None and faults.token_calls() == []
    record(faults, "forged completion (other user, unknown id)", told, False, user="UB")


def test_replayed_completion(faults, hub, slack):
    _, code = faults.login("UA")
    flow_id = faults.signin.flow("UA").id
    hub.approve("alice-ml", code)
    faults.poll()
    calls = len(faults.token_calls())
    hub.set_role("alice-ml", "acme", "read")  # were a replay to link again, it would read new roles
    answer = faults.bot.click(CHECK_ACTION, flow_id, user="UA")
    said = slack.wait(lambda: slack.responses(answer.response_id), 5)
    faults.poll()
    assert len(faults.token_calls()) == calls and len(faults.dms()) == 1
    faults.refresh()  # and the next refresh brings the link down to the Hub's truth
    record(faults, "replayed completion", "not yours" in said[0]["text"], True)


def test_redis_lost_between_code_and_token(faults, hub):
    _, code = faults.login()
    faults.bot.ctx.store.redis.flushall()
    hub.approve("alice-ml", code)
    faults.poll()
    record(faults, "Redis lost between code and token", "was lost" in " ".join(faults.dms()), False)
