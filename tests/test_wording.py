"""Words that said something untrue or empty (issue 23): each through signed Slack requests."""

from __future__ import annotations


def test_status_without_error_text_has_no_error_line(bot, hub):
    hub.add_space("acme/broken", stage="RUNTIME_ERROR", hardware="t4-small", error="  \n ")
    text = bot.command("/space status acme/broken")["text"]
    assert "crashed" in text and "Error" not in text, text
    hub.add_space("acme/oom", stage="RUNTIME_ERROR", hardware="t4-small", error="CUDA out of memory")
    assert "*Error:* ```CUDA out of memory```" in bot.command("/space status acme/oom")["text"]


def test_resuming_a_paused_paid_space_is_not_called_an_upgrade(make_bot, hub):
    bot = make_bot(SPACEOPS_APPROVERS="UAPP", SPACEOPS_APPROVAL_CHANNEL="CAPP")
    hub.add_space("acme/finetune", stage="PAUSED", hardware="a10g-large", sleep=7200)
    text = bot.command("/space resume acme/finetune", user="U1")["text"]
    assert "Resuming it on paid hardware starts its billing again and needs an approver, so nothing changed yet" in text, text
    assert "upgrade" not in text
    hub.add_space("acme/chat", hardware="cpu-basic")
    text = bot.command("/space hw acme/chat a10g-small", user="U1")["text"]
    assert text.startswith(":hourglass_flowing_sand: A paid upgrade needs an approver"), text


def test_a_paused_schedule_is_said_to_hold_until_resumed(make_bot, hub):
    bot = make_bot(SPACEOPS_OPERATORS="U1")
    hub.add_space("acme/demo")
    seen = bot.command("/space schedule acme/demo pause weekdays 19:00 --tz UTC", user="U1")
    hint = " ".join(e["text"] for b in seen["blocks"] if b["type"] == "context" for e in b["elements"])
    assert "holds it until `/space schedule resume" in hint and "for a while" not in hint, hint
    help_text = bot.command("/space help schedule")["text"]
    assert "schedule pause ID holds it until schedule resume ID" in help_text and "for a while" not in help_text
