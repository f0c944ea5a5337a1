"""The console's renderer (bot/core/render.py): mrkdwn and Block Kit as Slack shows them, over every reply kind,
and the console screen that keeps the prompt last when a message arrives on its own (driven programmatically)."""

from __future__ import annotations

import io
import re

import pytest
from huggingface_hub import SpaceRuntime

from bot.core.render import PLAIN, TERMINAL, mrkdwn, render

HUB = "https://huggingface.co"
WHEN = 1796180859  # 2026-12-02 03:07 UTC


@pytest.mark.parametrize("source, shown", [
    ("*bold* and _italics_ and ~gone~", "bold and italics and gone"),
    ("`/space watch acme/*` and `NAMESPACE/*`", "`/space watch acme/*` and `NAMESPACE/*`"),
    ("watch acme/* now, *then* a/* b", "watch acme/* now, then a/* b"),     # an `*` at no word edge stays
    ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
    ("_e.g._ `/space status acme/chat`", "e.g. `/space status acme/chat`"),
    (f"<!date^{WHEN}^{{date_short_pretty}} {{time}}|2026-12-02 03:07 UTC>", "2026-12-02 03:07 UTC"),
    ("<https://huggingface.co/spaces/acme/chat|acme/chat>", "acme/chat"),
    ("<https://huggingface.co/spaces/acme/chat|Open on Hugging Face>",
     "Open on Hugging Face (https://huggingface.co/spaces/acme/chat)"),
    ("<@U1> and <@U2|ann> in <#C1|ops>, <#C2>, <!here>, <!subteam^S1|@oncall>", "@U1 and @ann in #ops, #C2, @here, @oncall"),
    ("&lt;!channel&gt; &amp; more", "<!channel> & more"),
    (":red_circle: crashed :unknown_thing: at 16:34:56", "🔴 crashed :unknown_thing: at 16:34:56"),
    ("`t4-small` Nvidia T4 - small", "`t4-small` Nvidia T4 - small"),          # an id never runs into its name
    ("*Error:* ```CUDA *out* of memory\nline two```", "Error:\n    CUDA *out* of memory\n    line two"),
    ("`<@U1>` in code", "`<@U1>` in code"),
])
def test_mrkdwn_as_slack_shows_it(source, shown):
    assert mrkdwn(source, PLAIN) == shown


def test_the_terminal_draws_marks_instead_of_showing_them():
    out = mrkdwn("*bold* `code`", TERMINAL)
    assert out == "\033[1mbold\033[0m \033[36mcode\033[0m"


def plain(reply) -> str:
    return render(reply.text, reply.blocks, PLAIN)


def no_markup_left(text: str) -> None:
    """Nothing of Slack's syntax shows: no marks, no angle tokens, no entities."""
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("    "))  # code blocks as typed
    outside_code = re.sub(r"`[^`]*`", "", prose)
    assert not re.search(r"(?<![\w/])\*\S|\S\*(?!\w)", outside_code.replace("acme/*", "")), text
    assert not re.search(r"<[@#!]|<https?://|&lt;|&gt;|&amp;", outside_code), text
    assert not re.search(r"(?<!\w)_\S[^_]*_(?!\w)", outside_code), text


def test_every_reply_kind_renders_without_markup():
    from bot.alerts.transitions import Alert
    from bot.alerts.words import alert_message
    from bot.approvals.store import ApprovalRequest
    from bot.approvals.words import approval_message
    from bot.commands.words import audit_reply, help_reply, status_reply
    from bot.core.flavors import Catalogue
    from bot.core.store import AuditEntry
    from bot.fleet.report import SpaceCost
    from bot.fleet.words import cost_reply

    catalogue = Catalogue()
    help_text = plain(help_reply())
    assert "`/space watch SPACE|NAMESPACE/* [#channel] [--only KINDS]` — post this channel's alerts" in help_text
    assert "e.g. `/space status acme/chat`" in help_text and "_e.g._" not in help_text

    runtime = SpaceRuntime({"stage": "RUNTIME_ERROR", "hardware": {"current": "t4-small", "requested": "t4-small"},
                            "gcTimeout": None, "errorMessage": "CUDA out of memory <!channel>",
                            "replicas": {"current": 0, "requested": 1}})
    status = plain(status_reply("acme/broken", runtime, catalogue, HUB))
    assert status.splitlines()[0] == "🔴 acme/broken is crashed (`RUNTIME_ERROR`)"
    assert "Hardware: `t4-small` ($0.40/h)" in status
    assert "Error:\n    CUDA out of memory <!channel>" in status
    assert status.splitlines()[-1] == f"Open on Hugging Face ({HUB}/spaces/acme/broken)"

    row = SpaceCost("acme/chat", cost=1.8, billed_seconds=10800, flavors=["t4-medium"], up=3600, observed=3600)
    cost = plain(cost_reply("acme/*", "last 7 days", [row], 1.8, (1.8, None, (180.0, "acme/chat")), [], {},
                            (WHEN, "acme/chat"), WHEN, HUB))
    assert "Estimated spend of acme/* — last 7 days" in cost
    assert "acme/chat — $1.80 · 3.0 h billed · `t4-medium` · uptime 100%" in cost
    assert "not enough history yet to project: acme/chat observed for 3 min" in cost

    entries = [AuditEntry("1-0", WHEN, "U1", "sleep", "acme/chat", {"seconds": 3600}, "ok")]
    audit = plain(audit_reply(entries, None))
    assert audit == "Audit trail, newest first:\n2026-12-02 03:07 UTC @U1 set the sleep time of `acme/chat` to 1 h"

    request = ApprovalRequest("1oNSxQ2p", "acme/chat", "cpu-basic", "a10g-small", "U1", "CAPP", "1.0", WHEN,
                              WHEN + 86400)
    card = plain(approval_message(request, catalogue, HUB))
    assert "Paid hardware request from @U1: move `acme/chat` from `cpu-basic` to `a10g-small`." in card
    assert "[Approve]  [Deny]" in card and "Expires: 2026-12-03 03:07 UTC" in card

    alert = Alert("transition", "acme/chat", WHEN, ("paused",), old="RUNNING", new="PAUSED", seconds=45,
                  hardware="t4-small", at_least=True)
    shown = plain(alert_message(alert, HUB))
    assert shown.startswith("⏸ acme/chat is paused (was running for at least 45 s)"), shown
    assert "[Resume]" in shown and "`PAUSED` · 2026-12-02 03:07 UTC · Open on Hugging Face" in shown

    for text in (help_text, status, cost, audit, card, shown):
        no_markup_left(text)


# ---------------------------------------------------------------------- the console screen


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_message_arriving_at_the_prompt_redraws_it():
    from bot.console import Screen
    from bot.core.slack import ConsolePoster

    out = Terminal()
    screen = Screen(out, interactive=True)
    poster = ConsolePoster(out, style=PLAIN)
    poster.screen = screen
    screen.prompt("space-ops> ")
    poster.post("ops", ":red_circle: *acme/chat* is crashed")
    poster.update("ops", "console.1", ":large_green_circle: *acme/chat* is running")
    poster.post("ops", "a reply", thread_ts="console.1")
    assert out.getvalue() == ("space-ops> "
                              "\r\033[K[#ops] 🔴 acme/chat is crashed\n\nspace-ops> "
                              "\r\033[K[#ops, edited] 🟢 acme/chat is running\n\nspace-ops> "
                              "\r\033[K[#ops, thread] a reply\n\nspace-ops> ")
    screen.answered()
    poster.post("ops", "while a reply is written")
    assert out.getvalue().endswith("space-ops> \n[#ops] while a reply is written\n\n")


def test_the_console_labels_channel_replies_like_channel_posts_and_says_how_to_switch_back(bot, hub):
    from bot.console import main

    hub.add_space("acme/chat")
    out = io.StringIO()
    stdin = io.StringIO("/space watch acme/chat\nas alice\nas console\n")
    assert main(bot.ctx, stdin=stdin, stdout=out, style=PLAIN) == 0
    text = out.getvalue()
    assert "[#console] Watching `acme/chat` in #console: all alerts. It is running now." in text, text
    assert "You are now @alice. `as console` switches back." in text
    assert "You are now @console.\n" in text
    from bot.console import banner
    assert "`as you` switches back" in banner("http://hub", "you")
