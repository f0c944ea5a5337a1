"""Safer defaults: variable values unwrapped from Slack's markup, the audit trail without values, refusals
without per-Space streams, response_url posts only to Slack's hosts, every setting checked with a sentence."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from handlers.replies import response_url_allowed

SPACE = "acme/chat"


def variables_posted(hub) -> list:
    return [r.body for r in hub.calls("POST", f"/api/spaces/{SPACE}/variables")]


# ---------------------------------------------------------------- var set, as Slack sends it


@pytest.mark.parametrize("typed, sent, stored", [
    ("https://api.example.com/v1", "<https://api.example.com/v1>", "https://api.example.com/v1"),
    ("api.example.com", "<http://api.example.com|api.example.com>", "api.example.com"),
    ("ops@example.com", "<mailto:ops@example.com|ops@example.com>", "ops@example.com"),
    ("@ana", "<@U123|ana>", "@ana"),
    ("a < b && c", "a &lt; b &amp;&amp; c", "a < b && c"),
])
def test_var_set_stores_what_was_typed_not_slacks_markup(bot, hub, typed, sent, stored):
    hub.add_space(SPACE)
    seen = bot.command(f"var set {SPACE} API_BASE={sent}")
    assert "set variable `API_BASE`" in seen["text"]
    assert variables_posted(hub) == [{"key": "API_BASE", "value": stored}]


def test_audit_keeps_variable_keys_never_values(bot, hub, redis_client):
    hub.add_space(SPACE)
    bot.command(f"var set {SPACE} DB_URL=postgres://admin:hunter2@db/prod")
    [entry] = [e for e in bot.ctx.store.audit_entries(SPACE) if e.action == "var.set"]
    assert entry.params == {"key": "DB_URL"}
    everything = json.dumps([redis_client.xrange(k) for k in redis_client.scan_iter("spaceops:audit*")])
    assert "hunter2" not in everything
    assert "hunter2" not in bot.command(f"audit {SPACE}")["text"]


def test_refusals_make_no_per_space_audit_streams(make_bot, hub, redis_client):
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    for n in range(5):
        seen = bot.command(f"restart acme/made-up-{n}", user="UMEM")
        assert "needs the operator role" in seen["text"]
    assert list(redis_client.scan_iter("spaceops:audit:space:*")) == []
    refused = [e for e in bot.ctx.store.audit_entries() if e.result.startswith("refused")]
    assert len(refused) == 5 and {e.space for e in refused} == {f"acme/made-up-{n}" for n in range(5)}
    assert [r for r in hub.requests if r.method != "GET"] == []


# ---------------------------------------------------------------- response_url hosts


def test_response_url_hosts():
    slack = "https://slack.com/api/"
    assert response_url_allowed("https://hooks.slack.com/commands/T1/1/abc", slack)
    assert not response_url_allowed("http://hooks.slack.com/commands/T1/1/abc", slack)
    assert not response_url_allowed("https://hooks.slack.com.evil.example/x", slack)
    assert not response_url_allowed("https://evil.example/hooks.slack.com", slack)
    assert not response_url_allowed("https://user@hooks.slack.com:8443/x", slack)
    assert not response_url_allowed("http://169.254.169.254/latest/meta-data", slack)
    assert not response_url_allowed("file:///etc/passwd", slack)
    gateway = "https://slack-gw.corp.example/api/"
    assert response_url_allowed("https://slack-gw.corp.example/respond/1", gateway)
    assert not response_url_allowed("https://other.corp.example/respond/1", gateway)
    assert not response_url_allowed("https://slack.com/respond/1", slack)  # slack.com itself: only its hooks host


def test_forged_response_url_gets_no_post(bot, hub, slack):
    """A signed payload whose response_url points elsewhere: the command runs, its reply goes nowhere."""
    hub.add_space(SPACE)
    form = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": f"status {SPACE}",
            "response_url": f"{hub.base}/respond/stolen", "trigger_id": "trig.forged"}
    answer = bot.post(urlencode(form).encode(), "application/x-www-form-urlencoded")
    assert answer.status == 200
    slack.wait(lambda: hub.calls("GET", f"/api/spaces/{SPACE}/runtime"))
    bot.ctx.pool.submit(lambda: None).result(timeout=5)
    assert not [r for r in hub.requests if "respond" in r.path]
    assert slack.responses() == []


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("name, value, words", [
    ("SPACEOPS_HUB_TIMEOUT", "ten", "SPACEOPS_HUB_TIMEOUT='ten' is not a number"),
    ("SPACEOPS_HUB_TIMEOUT", "0", "must be more than zero"),
    ("SPACEOPS_HUB_TIMEOUT", "-3", "must be more than zero"),
    ("SPACEOPS_HUB_TIMEOUT", "nan", "is not a number"),
    ("SPACEOPS_POLL_SECONDS", "0", "SPACEOPS_POLL_SECONDS='0' must be longer than zero"),
    ("SPACEOPS_POLL_SECONDS", "often", "is not a duration"),
    ("SPACEOPS_APPROVAL_TTL", "0s", "SPACEOPS_APPROVAL_TTL='0s' must be longer than zero"),
    ("SPACEOPS_APPROVAL_FREE_BELOW", "cheap", "SPACEOPS_APPROVAL_FREE_BELOW='cheap' is not a number"),
    ("SPACEOPS_APPROVAL_FREE_BELOW", "-1", "must be zero or more"),
    ("SPACEOPS_ADMINS", "alice", "SPACEOPS_ADMINS has 'alice', which is not a Slack user id"),
    ("SPACEOPS_OPERATORS", "U1,@bob", "SPACEOPS_OPERATORS has '@bob'"),
    ("SPACEOPS_APPROVERS", "C123", "SPACEOPS_APPROVERS has 'C123'"),
    ("SPACEOPS_APPROVAL_CHANNEL", "ops", "SPACEOPS_APPROVAL_CHANNEL='ops' is neither a channel id"),
    ("SPACEOPS_APPROVAL_CHANNEL", "U123", "is neither a channel id"),
])
def test_each_setting_is_checked_with_a_sentence_naming_it(name, value, words):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert words in str(err.value)


def test_good_settings_pass():
    settings = Settings.from_env({"SPACEOPS_HUB_TIMEOUT": "2.5", "SPACEOPS_ADMINS": "U1, W2,SONCALL",
                                  "SPACEOPS_APPROVAL_CHANNEL": "#ops", "SPACEOPS_APPROVAL_FREE_BELOW": "5"})
    assert (settings.hub_timeout, settings.approval_channel, settings.approval_free_below) == (2.5, "#ops", 5.0)
    assert settings.admins == frozenset({"U1", "W2", "SONCALL"})


def test_startup_warns_once_when_nobody_can_approve(make_bot, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        make_bot()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert len(lines) == 1 and "No approver or admin is configured" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        make_bot(SPACEOPS_APPROVERS="UAPP")
    assert not [r for r in caplog.records if r.name == "bot.app"]
