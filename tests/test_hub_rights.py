"""Rights from the Hub (SPACEOPS_ROLES_FROM=hub|both): the pure table, then scenarios through signed Slack
requests with Hub links written directly (the sign-in flow that writes them is tested on its own)."""

from __future__ import annotations

import json

import pytest

from bot.access.hubroles import Standing, combined, effective, hub_allows, hub_level
from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.signin.links import STALE_SECONDS, HubLink, Links
from tests.test_approvals import ask, click, message

RESTART = "/api/spaces/acme/chat/restart"
# hub and both refuse to start without a key for the sign-in tokens (bot/core/settings.py).
SECRET = {"SPACEOPS_SECRET_KEY": "hBVJr8Jd1qzYcl5kU3c6XbA4rZLfPpwdX0hm2eTKMtQ="}
ALICE, BOB, CAROL, DAN, ERIN = "UALICE", "UBOB", "UCAROL", "UDAN", "UERIN"

# role → (read, operate, approve, admin): written out by hand, the oracle for hub_allows.
TABLE = {
    "admin": (True, True, True, True),
    "write": (True, True, False, False),
    "contributor": (True, False, False, False),
    "read": (True, False, False, False),
    "no_access": (False, False, False, False),
}
ACTIONS = ("read", "operate", "approve", "admin")


# ---------------------------------------------------------------- the pure function

@pytest.mark.parametrize("role", TABLE)
@pytest.mark.parametrize("private", [False, True])
def test_each_hub_role_gives_its_row_of_rights_public_or_private(role, private):
    standing = Standing(linked=True, role=role, member=True)
    assert tuple(hub_allows(standing, a, private) for a in ACTIONS) == TABLE[role]
    assert hub_level(standing, private) == ("operate" if TABLE[role][1] else "read" if TABLE[role][0] else "none")


@pytest.mark.parametrize("unlinked, private, reads", [("read", False, True), ("read", True, False),
                                                      ("none", False, False), ("none", True, False)])
def test_unlinked_members_read_public_spaces_only_or_nothing(unlinked, private, reads):
    standing = Standing(linked=False)
    assert hub_allows(standing, "read", private, unlinked) is reads
    assert not any(hub_allows(standing, a, private, unlinked) for a in ("operate", "approve", "admin"))


@pytest.mark.parametrize("slack, hub, both", [("operate", "read", "read"), ("read", "operate", "read"),
                                              ("none", "operate", "none"), ("operate", "operate", "operate")])
def test_both_takes_the_lower_of_the_two(slack, hub, both):
    assert effective("both", slack, hub) == both
    assert effective("slack", slack, hub) == slack and effective("hub", slack, hub) == hub
    assert combined("both", True, False) is False and combined("hub", False, True) is True


def test_the_two_settings_are_validated_with_a_sentence_naming_them():
    assert Settings.from_env({}).roles_from == "slack" and Settings.from_env({}).unlinked == "read"
    assert Settings.from_env({"SPACEOPS_ROLES_FROM": "both", "SPACEOPS_UNLINKED": "none", **SECRET}).unlinked == "none"
    for name in ("SPACEOPS_ROLES_FROM", "SPACEOPS_UNLINKED"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: "sometimes"})


def test_a_links_own_namespace_is_admin_and_a_stale_one_reads():
    link = HubLink("U1", "alice-ml", {"acme": "write"}, roles_at=1000.0)
    assert link.role_in("alice-ml", 1000) == "admin" and link.role_in("acme", 1000) == "write"
    stale = HubLink("U1", "alice-ml", {"acme": "write"}, roles_at=1000.0, refresh_failed_at=2000.0)
    assert stale.role_in("acme", 1000 + STALE_SECONDS) == "read"


# ---------------------------------------------------------------- through Slack

def link(bot, user: str, hub_user: str, orgs: dict[str, str], **fields) -> None:
    now = bot.ctx.store.clock()
    Links(bot.ctx.store.redis).put(HubLink(user, hub_user, orgs, linked_at=now, roles_at=now, **fields))


def writes(hub) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


@pytest.fixture
def acme(hub):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    hub.add_space("acme/priv", hardware="cpu-basic", private=True)
    return hub


@pytest.fixture
def hub_bot(make_bot, acme):
    bot = make_bot(SPACEOPS_ROLES_FROM="hub", SPACEOPS_ADMINS="UADM", **SECRET)
    link(bot, ALICE, "alice-ml", {"acme": "write"})
    link(bot, BOB, "bob", {"acme": "admin"})
    link(bot, CAROL, "carol", {"acme": "read"})
    link(bot, DAN, "dan", {"acme": "contributor"})
    link(bot, ERIN, "erin", {"acme": "write"}, restricted=("acme",))
    return bot


def test_write_on_the_hub_restarts_and_the_audit_names_both_identities(hub_bot, acme):
    seen = hub_bot.command("restart acme/chat", user=ALICE)
    assert "restarted" in seen["text"], seen
    assert writes(acme) == [("POST", RESTART)]
    audit = hub_bot.command("audit acme/chat", user=ALICE)["text"]
    assert "<@UALICE> (hf: alice-ml, write in acme) restarted `acme/chat`" in audit, audit


def test_read_on_the_hub_is_refused_with_the_role_what_is_needed_and_whom_to_ask(hub_bot, acme):
    seen = hub_bot.command("restart acme/chat", user=CAROL)
    assert seen["text"] == (":warning: Your Hugging Face role in `acme` is `read`: restarting acme/chat needs `write`. "
                            "Ask an acme admin."), seen
    assert writes(acme) == []
    assert "is *running*" in hub_bot.command("status acme/chat", user=CAROL)["text"]  # reading is theirs


def test_contributor_reads_only(hub_bot, acme):
    assert "is `contributor`: restarting acme/chat needs `write`" in hub_bot.command("restart acme/chat", user=DAN)[
        "text"]
    assert writes(acme) == []


def test_sso_pending_counts_as_no_access_and_says_so(hub_bot, acme):
    text = hub_bot.command("restart acme/chat", user=ERIN)["text"]
    assert text.startswith(":warning: You haven't completed SSO for `acme` on Hugging Face."), text
    assert "completed SSO" in hub_bot.command("status acme/chat", user=ERIN)["text"]
    assert writes(acme) == []


def test_a_namespace_the_member_is_not_in_gives_nothing(hub_bot, acme):
    acme.add_space("beta/app")
    text = hub_bot.command("status beta/app", user=ALICE)["text"]
    assert "not a member of `beta`" in text and "alice-ml" in text, text


def test_the_members_own_namespace_counts_as_admin(hub_bot, acme):
    acme.add_space("alice-ml/demo")
    assert "restarted" in hub_bot.command("restart alice-ml/demo", user=ALICE)["text"]
    assert writes(acme) == [("POST", "/api/spaces/alice-ml/demo/restart")]


def test_unlinked_members_read_public_spaces_only(hub_bot, acme):
    assert "is *running*" in hub_bot.command("status acme/chat", user="UNOBODY")["text"]
    private = hub_bot.command("status acme/priv", user="UNOBODY")["text"]
    assert "private" in private and "/space login" in private, private
    change = hub_bot.command("restart acme/chat", user="UNOBODY")["text"]
    assert "/space login" in change and "isn't linked" in change, change
    assert writes(acme) == []


def test_unlinked_none_reads_nothing(make_bot, acme):
    bot = make_bot(SPACEOPS_ROLES_FROM="hub", SPACEOPS_UNLINKED="none", **SECRET)
    text = bot.command("status acme/chat", user="UNOBODY")["text"]
    assert "/space login" in text and "isn't linked" in text, text
    assert "is *running*" not in text


def test_a_stale_link_counts_as_read_and_an_ended_one_asks_to_sign_in_again(hub_bot, acme):
    now = hub_bot.ctx.store.clock()
    links = Links(hub_bot.ctx.store.redis)
    links.put(HubLink(ALICE, "alice-ml", {"acme": "write"}, roles_at=now - STALE_SECONDS - 1,
                      refresh_failed_at=now - 60))
    text = hub_bot.command("restart acme/chat", user=ALICE)["text"]
    assert "is `read`: restarting acme/chat needs `write`" in text and "could not refresh" in text, text
    links.put(HubLink(ALICE, "alice-ml", {"acme": "write"}, roles_at=now, expires_at=now - 1))
    text = hub_bot.command("restart acme/chat", user=ALICE)["text"]
    assert "has ended" in text and "/space login" in text, text
    assert writes(acme) == []


def test_both_takes_the_lower_of_the_lists_and_the_hub(make_bot, acme):
    bot = make_bot(SPACEOPS_ROLES_FROM="both", SPACEOPS_OPERATORS="UOP,UOP2", **SECRET)
    link(bot, "UOP", "op", {"acme": "read"})     # listed, but read on the Hub
    link(bot, "UMEM", "mem", {"acme": "write"})  # write on the Hub, but not listed
    link(bot, "UOP2", "op2", {"acme": "write"})  # both
    assert "is `read`: restarting" in bot.command("restart acme/chat", user="UOP")["text"]
    assert "needs the operator role" in bot.command("restart acme/chat", user="UMEM")["text"]
    assert writes(acme) == []
    assert "restarted" in bot.command("restart acme/chat", user="UOP2")["text"]
    assert writes(acme) == [("POST", RESTART)]


def test_slack_mode_ignores_links(make_bot, acme):
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    link(bot, "UMEM", "mem", {"acme": "admin"})
    assert "needs the operator role" in bot.command("restart acme/chat", user="UMEM")["text"]
    assert "restarted" in bot.command("restart acme/chat", user="UOP")["text"]
    assert "(hf:" not in bot.command("audit acme/chat", user="UOP")["text"]


def test_approvals_are_for_admins_of_the_namespace_never_the_requester(hub_bot, acme, slack):
    pending = ask(hub_bot, slack, "hw acme/chat a100-large", user=ALICE)
    assert "from <@UALICE> (hf: alice-ml, write in acme)" in json.dumps(message(slack, pending)["blocks"])
    assert "approvers (admins of `acme` on Hugging Face) decide" in json.dumps(message(slack, pending)["blocks"])
    refused = click(hub_bot, slack, pending, CAROL)
    assert "needs `admin`" in refused and "Ask an acme admin" in refused, refused
    refused = click(hub_bot, slack, pending, ALICE)
    assert "can't approve your own" in refused, refused
    refused = click(hub_bot, slack, pending, "UADM")  # a Slack admin, no Hub account linked
    assert "/space login" in refused, refused
    assert writes(acme) == []
    click(hub_bot, slack, pending, BOB)
    assert writes(acme) == [("POST", "/api/spaces/acme/chat/hardware")]
    shown = json.dumps(message(slack, pending)["blocks"])
    assert "Approved* by <@UBOB> (hf: bob, admin of acme)" in shown, shown
    # An admin requesting can't approve their own either.
    pending = ask(hub_bot, slack, "hw acme/priv a100-large", user=BOB)
    assert "can't approve your own" in click(hub_bot, slack, pending, BOB)


def test_admin_commands_need_admin_in_that_namespace(hub_bot, acme):
    assert "Your Hugging Face role in `acme` is `write`" in hub_bot.command("scope <#COPS|ops> acme/* operate",
                                                                            user=ALICE)["text"]
    assert "scoped" in hub_bot.command("scope <#COPS|ops> acme/* operate", user=BOB)["text"]
    assert "needs `admin`" in hub_bot.command("budget acme/* 100/month", user=ALICE)["text"]
    assert "100" in hub_bot.command("budget acme/* 100/month", user=BOB)["text"]


def test_older_audit_entries_without_a_hub_identity_still_read(hub_bot):
    hub_bot.ctx.store.redis.xadd("spaceops:audit:space:acme/chat", {"ts": "1.0", "user": "UOLD", "action": "pause",
                                                                     "space": "acme/chat", "params": "{}",
                                                                     "result": "ok", "v": "1"})
    text = hub_bot.command("audit acme/chat", user=BOB)["text"]
    assert "<@UOLD> paused `acme/chat`" in text, text


def test_cancelling_another_members_request_needs_admin_in_its_namespace(hub_bot, acme, slack):
    pending = ask(hub_bot, slack, "hw acme/chat a100-large", user=ALICE)
    for user in (CAROL, "UADM"):  # read on the Hub; a Slack admin with no linked account
        text = hub_bot.command(f"approvals cancel {pending.id}", user=user)["text"]
        assert "cancelling another member's request" in text or "/space login" in text, text
    text = hub_bot.command(f"approvals cancel {pending.id}", user=BOB)["text"]
    assert pending.id in text and "needs" not in text, text
    assert "Cancelled* by <@UBOB> (hf: bob, admin of acme)" in json.dumps(message(slack, pending)["blocks"])
