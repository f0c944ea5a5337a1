"""Nothing cut silently: long replies are split across blocks at line boundaries and across messages (an
answer's second message, a post's thread), and what still cannot be shown says so. The Slack emulator
refuses every block over a limit (tests/emulators/blockkit.py), so each test here also proves Slack takes it."""

from __future__ import annotations

import time

from bot.commands.grammar import COMMANDS
from bot.core.blocks import CUT, MESSAGE_BLOCKS, SECTION_TEXT, clip, fit_blocks, fit_view, pages, split_text, text_length
from bot.core.words import as_text, not_shown_in_view, section

SPACE = "acme/chat"


def answer(bot, slack, text: str, user: str = "U1", count: int = 1, timeout: float = 5.0) -> list[dict]:
    """Every message posted to the command's response_url (a long answer takes more than one)."""
    sent = bot.send_command(text, user=user)
    assert sent.status == 200
    slack.wait(lambda: len(slack.responses(sent.response_id)) >= count, timeout)
    time.sleep(0.2)  # a further message would follow at once
    return slack.responses(sent.response_id)


def shown(messages: list[dict]) -> str:
    return "\n".join(as_text(m.get("text", ""), m.get("blocks")) for m in messages)


def raw(messages: list[dict]) -> str:
    return "\n".join(b["text"]["text"] for m in messages for b in m.get("blocks") or []
                     if b.get("type") == "section" and b.get("text"))


def test_help_shows_every_command_to_the_last(bot, slack):
    messages = answer(bot, slack, "help")
    text = raw(messages)
    for usage in COMMANDS:
        assert f"`/space {COMMANDS[usage][0]}`" in text.replace("&lt;", "<").replace("&gt;", ">") or \
            f"/space {usage}" in text, usage
    assert text.rstrip().endswith("`/space " + list(COMMANDS.values())[-1][1] + "`")
    assert all(len(b["text"]["text"]) <= SECTION_TEXT for m in messages for b in m["blocks"] if b["type"] == "section")


def test_a_long_variables_list_loses_nothing(bot, hub, slack):
    variables = {f"VARIABLE_{i:03d}": f"value-{i:03d}-" + "v" * 40 for i in range(150)}
    hub.add_space(SPACE, variables=variables)
    messages = answer(bot, slack, f"variables ls {SPACE}", count=2)
    assert len(messages) == 2  # ~12,000 characters: more than one message holds
    text = raw(messages)
    assert all(f"`{key}` = `{value}`" in text for key, value in variables.items())
    assert messages[0]["text"].startswith("*Variables of acme/chat:*")
    assert messages[1]["replace_original"] is False


def test_a_list_longer_than_an_answer_holds_says_how_much_is_not_shown(bot, hub, slack):
    variables = {f"VARIABLE_{i:03d}": f"value-{i:03d}-" + "v" * 60 for i in range(400)}
    hub.add_space(SPACE, variables=variables)
    messages = answer(bot, slack, f"variables ls {SPACE}", count=2)
    text = raw(messages)
    listed = sum(f"`{key}`" in text for key in variables)
    note = messages[-1]["blocks"][-1]["elements"][0]["text"]
    assert 100 < listed < 400 and f"{400 - listed} more lines not shown" in note and "Narrow" in note


def test_a_long_audit_loses_nothing(bot, hub, slack):
    hub.add_space(SPACE)
    for i in range(20):
        bot.ctx.store.audit(f"U{i}", "secret.set", SPACE, {"key": f"SECRET_{i}_{'X' * 120}"},
                            result="ok")
    messages = answer(bot, slack, f"audit {SPACE}")
    text = raw(messages)
    assert len(text) > SECTION_TEXT            # once cut at 3,000 characters
    assert all(f"`SECRET_{i}_{'X' * 120}`" in text for i in range(20))
    assert len(messages[0]["blocks"]) >= 2


def test_a_digest_with_many_rows_loses_nothing(make_bot, hub, slack):
    from tests.test_fleet import DAY, MIN, Clock, watch

    bot = make_bot(SPACEOPS_OPERATORS="UOP,U1")
    spaces = [f"acme/space-with-a-long-name-{i:02d}" for i in range(45)]
    for space in spaces:
        hub.add_space(space, hardware="t4-medium", sleep=3600)
    watch(bot, "acme/* <#C7|ops>", "C1")
    assert "daily digest" in bot.command("/space digest <#C7|ops> daily 09:00", user="UOP")["text"]
    clock = Clock(time.time())
    bot.ctx.watcher.tick(clock.now)
    from bot.fleet.digests import digest_due
    _, due = digest_due({"period": "daily", "time": "09:00", "tz": "UTC"}, clock.now + DAY)
    clock.now = due + MIN
    bot.ctx.watcher.tick(clock.now)
    assert bot.ctx.fleet.digest_tick(clock.now) == 1
    [digest] = [p for p in slack.posts("C7") if "digest" in p["text"]]
    text = as_text(digest["text"], digest["blocks"])
    listed = [s for s in spaces if s in text]
    assert len(listed) == 40 and "…and 5 more Spaces" in text  # the digest's 40 rows, and it says so
    assert text_length(digest["blocks"]) > SECTION_TEXT


def test_a_post_longer_than_a_message_continues_in_its_thread(bot, slack):
    lines = [f"line {i:04d} " + "x" * 90 for i in range(300)]   # ~30,000 characters
    ts = bot.ctx.watcher.deliveries.now("test:long", "C9", "A long report", [section("\n".join(lines))])
    posts = slack.posts("C9")
    first, rest = posts[0], posts[1:]
    assert "Continued in the thread" in str(first["blocks"][-1])
    assert rest and all(p["thread_ts"] == ts for p in rest)
    text = raw(posts)
    assert all(line in text for line in lines)
    # Posted once: the same delivery again posts nothing more.
    assert bot.ctx.watcher.deliveries.now("test:long", "C9", "A long report", [section("\n".join(lines))]) is None
    assert len(slack.posts("C9")) == len(posts)


def test_an_edit_too_long_for_one_message_says_what_is_not_shown(bot, slack):
    ts = bot.ctx.watcher.deliveries.now("test:edit", "C9", "short", [section("short")])
    lines = [f"line {i:04d} " + "x" * 90 for i in range(300)]
    bot.ctx.watcher.deliveries.update("C9", ts, "long", [section("\n".join(lines))])
    blocks = slack.messages[("C9", ts)]["blocks"]
    assert "more lines not shown" in str(blocks[-1])


# ---------------------------------------------------------------- the splitting itself, pure


def test_split_text_keeps_every_line_and_code_blocks_balanced():
    text = "Last log lines:\n```" + "\n".join(f"log {i} " + "y" * 70 for i in range(200)) + "```\nend"
    pieces = split_text(text)
    assert len(pieces) > 1 and all(len(p) <= SECTION_TEXT for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)             # each piece closes what it opens
    joined = "\n".join(pieces).replace("```", "")
    assert all(f"log {i} " in joined for i in range(200)) and joined.endswith("end")


def test_a_line_longer_than_a_section_is_split_not_cut():
    line = " ".join(f"word{i}" for i in range(1500))
    pieces = split_text(line)
    assert all(len(p) <= SECTION_TEXT for p in pieces)
    assert " ".join(pieces).split() == line.split()


def test_unavoidable_cuts_show_a_mark():
    assert clip("x" * 80, 75) == "x" * 74 + CUT and clip("short", 75) == "short"
    [header] = fit_blocks([{"type": "header", "text": {"type": "plain_text", "text": "h" * 200}}])
    assert header["text"]["text"].endswith(CUT) and len(header["text"]["text"]) == 150
    [actions] = fit_blocks([{"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "b" * 90}, "action_id": "a", "value": "v"}]}])
    assert actions["elements"][0]["text"]["text"].endswith(CUT)
    view = fit_view({"type": "modal", "title": {"type": "plain_text", "text": "A title far longer than 24"},
                     "blocks": [section("x")] * 130}, not_shown_in_view)
    assert view["title"]["text"].endswith(CUT) and len(view["blocks"]) == 100
    assert "31 more lines not shown" in view["blocks"][-1]["elements"][0]["text"]


def test_pages_keep_within_50_blocks_and_the_text_budget_with_unique_block_ids():
    blocks = [section(f"row {i} " + "z" * 500) for i in range(120)] + [
        {**section("w" * 7000), "block_id": "long"}]
    made = pages(blocks)
    assert all(len(page) <= MESSAGE_BLOCKS and text_length(page) <= 10_000 for page in made)
    ids = [b["block_id"] for page in made for b in page if "block_id" in b]
    assert ids == ["long", "long.1", "long.2"]
