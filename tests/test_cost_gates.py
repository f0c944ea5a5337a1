"""Every cost increase goes through an approver: resume/restart of a paused paid Space, a longer sleep,
an unknown flavor, and `SPACEOPS_APPROVAL_FREE_BELOW`. Driven through signed HTTP like Slack does."""

from __future__ import annotations

import json

import pytest

from bot.commands import costs
from bot.core.flavors import Catalogue
from tests.test_approvals import ask, click, message

ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
SPACE = "acme/chat"
BASE = f"/api/spaces/{SPACE}"


def writes(hub):
    return [(r.method, r.path, r.body) for r in hub.requests if r.method != "GET"]


def shown(slack, pending) -> str:
    return json.dumps(message(slack, pending)["blocks"], ensure_ascii=False)


# ---------------------------------------------------------------- pure rule


def test_cost_rule_pure():
    catalogue = Catalogue()
    resume = costs.resume_change("acme/chat", "a100-large", catalogue)
    assert resume.increase == pytest.approx(60.0)
    assert "`acme/chat` runs on `a100-large` ($2.50/h · up to $60.00/day)" == resume.note
    assert costs.resume_change("acme/chat", "cpu-basic", catalogue).increase == 0
    assert costs.resume_change("acme/chat", "zero-a10g", catalogue).increase == 0
    assert costs.resume_change("acme/chat", "h200", catalogue).increase is None  # unknown: paid
    never = costs.sleep_change("a100-large", 3600, -1, catalogue)
    assert never.increase == pytest.approx(2.5 * 23)
    assert never.note.startswith("never sleeps: up to $60.00/day; today it sleeps after 1 h idle")
    assert costs.sleep_change("a100-large", 3600, 1800, catalogue).increase == 0  # shorter: cheaper
    assert costs.sleep_change("a100-large", None, 3600, catalogue).increase == 0  # never → 1 h: cheaper
    assert costs.sleep_change("a100-large", -1, -1, catalogue).increase == 0
    assert costs.sleep_change("a100-large", 3600, 7200, catalogue).increase == pytest.approx(2.5)
    assert costs.hardware_change("t4-small", "t4-medium", catalogue).increase == pytest.approx(4.8)
    assert costs.hardware_change("t4-small", "h200", catalogue).increase is None
    for increase, free_below, needed in [(None, 100, True), (4.8, 0, True), (4.8, 5, False), (5, 5, True),
                                         (0, 0, False), (-3, 0, False)]:
        assert costs.needs_approval(costs.CostChange(increase, ""), free_below) is needed


# ---------------------------------------------------------------- resume and restart


@pytest.mark.parametrize("verb", ["resume", "restart"])
def test_resuming_a_paused_paid_space_needs_an_approver(make_bot, hub, slack, verb):
    hub.add_space(SPACE, stage="PAUSED", hardware=None, requested="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, f"{verb} {SPACE}", user="U1")
    assert "nothing changed yet" in pending.reply
    assert writes(hub) == []  # pending: no Hub write
    text = shown(slack, pending)
    assert f"{verb} `acme/chat` on `a100-large`" in text
    assert "`acme/chat` runs on `a100-large` ($2.50/h · up to $60.00/day)" in text
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert [(m, p) for m, p, _ in writes(hub)] == [("POST", f"{BASE}/restart")]
    # A replayed click applies nothing more.
    click(bot, slack, pending, "UAPP")
    assert len(writes(hub)) == 1


def test_resume_of_free_or_running_space_applies_at_once(make_bot, hub, slack):
    hub.add_space("acme/free", stage="PAUSED", hardware=None, requested="cpu-basic")
    hub.add_space(SPACE, stage="RUNNING", hardware="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    assert "resumed" in bot.command("resume acme/free")["text"]
    assert "restarted" in bot.command(f"restart {SPACE}")["text"]
    assert [(m, p) for m, p, _ in writes(hub)] == [("POST", "/api/spaces/acme/free/restart"),
                                                   ("POST", f"{BASE}/restart")]
    assert not [p for p in slack.posts() if "approval:approve" in json.dumps(p.get("blocks"))]


# ---------------------------------------------------------------- sleep


def test_never_sleeping_on_paid_hardware_needs_an_approver(make_bot, hub, slack):
    hub.add_space(SPACE, hardware="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, f"sleep {SPACE} never", user="U1")
    assert writes(hub) == []
    text = shown(slack, pending)
    assert "never sleeps: up to $60.00/day; today it sleeps after 1 h idle" in text
    assert "let `acme/chat` never sleep" in text
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert writes(hub) == [("POST", f"{BASE}/sleeptime", {"seconds": -1})]


def test_shorter_sleep_applies_at_once_longer_needs_approval(make_bot, hub, slack):
    hub.add_space(SPACE, hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    assert "set the sleep time" in bot.command(f"sleep {SPACE} 15m")["text"]
    assert writes(hub) == [("POST", f"{BASE}/sleeptime", {"seconds": 900})]
    pending = ask(bot, slack, f"sleep {SPACE} 2h", user="U1")
    assert "sleeps after 2 h idle" in shown(slack, pending)
    assert len(writes(hub)) == 1


# ---------------------------------------------------------------- unknown flavors and free-below


def test_unknown_flavor_is_sent_for_approval_not_refused_nor_applied(make_bot, hub, slack):
    hub.add_space(SPACE, hardware="t4-small")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, f"hw {SPACE} h200", user="U1")  # the Hub knows h200; the shipped list does not
    assert writes(hub) == []
    assert "unknown" in shown(slack, pending)
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert writes(hub) == [("POST", f"{BASE}/hardware", {"flavor": "h200"})]
    # A typo of a known flavor still gets a suggestion, and nothing is posted.
    seen = bot.command(f"hw {SPACE} t4-meduim")
    assert "Did you mean `t4-medium`?" in seen["text"]


def test_free_below_lets_small_increases_through(make_bot, hub, slack):
    hub.add_space(SPACE, hardware="t4-small", sleep=3600)
    bot = make_bot(SPACEOPS_APPROVAL_FREE_BELOW="10", **ROLES)
    assert "moved" in bot.command(f"hw {SPACE} t4-medium", user="U1")["text"]  # +$4.80/day
    assert writes(hub) == [("POST", f"{BASE}/hardware", {"flavor": "t4-medium"})]
    ask(bot, slack, f"hw {SPACE} a100-large", user="U1")  # +$45.60/day
    ask(bot, slack, f"hw {SPACE} h200", user="U1")  # unknown: never free
    assert len(writes(hub)) == 1


# ---------------------------------------------------------------- where the request goes


def test_request_from_a_dm_goes_to_the_approval_channel_or_is_refused(make_bot, hub, slack):
    hub.add_space(SPACE, hardware="t4-small")
    bot = make_bot(**ROLES)
    seen = bot.command(f"hw {SPACE} a100-large", user="U1", channel="D0123")
    assert "approvers can't see a direct message" in seen["text"]
    assert slack.posts() == [] and writes(hub) == []
    other = make_bot(SPACEOPS_APPROVAL_CHANNEL="CAPPROVE", **ROLES)
    pending = ask(other, slack, f"hw {SPACE} a100-large", user="U1", channel="D0123")
    assert pending.channel == "CAPPROVE"
    assert writes(hub) == []


def test_approval_channel_given_by_name_is_resolved_at_start(make_bot, hub, slack):
    from bot.core.errors import ConfigError
    from tests.test_approvals import click

    hub.add_space(SPACE, hardware="t4-small")
    slack.channels.update({"general": "CGEN", "ops": "COPS1"})
    bot = make_bot(SPACEOPS_APPROVAL_CHANNEL="#ops", **ROLES)
    assert bot.ctx.settings.approval_channel == "COPS1"
    pending = ask(bot, slack, f"hw {SPACE} a100-large", user="U1", channel="D0123")  # from a DM: to #ops
    assert pending.channel == "COPS1"
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert [(m, p) for m, p, _ in writes(hub)] == [("POST", f"{BASE}/hardware")]
    with pytest.raises(ConfigError, match="SPACEOPS_APPROVAL_CHANNEL=#nope: Space Ops sees no channel"):
        make_bot(SPACEOPS_APPROVAL_CHANNEL="#nope", **ROLES)
