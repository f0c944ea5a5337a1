"""The shared words: `Reply`, Block Kit pieces, and how stages, durations, prices and times read.

Every feature builds its own sentences (`bot/<feature>/words.py`) from these; text from users or the
Hub is escaped where it is inserted (`bot.core.markup`).
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.blocks import MESSAGE_BLOCKS, MESSAGE_TEXT, lines_in, pages
from bot.core.flavors import Catalogue
from bot.core.markup import code, escape

STAGE_WORDS = {
    "RUNNING": "running",
    "BUILDING": "building",
    "APP_STARTING": "starting",
    "RUNNING_BUILDING": "running, rebuilding",
    "RUNNING_APP_STARTING": "running, restarting",
    "RUNTIME_ERROR": "crashed",
    "BUILD_ERROR": "build failed",
    "CONFIG_ERROR": "config error",
    "NO_APP_FILE": "no app file",
    "STOPPED": "asleep",
    "SLEEPING": "asleep",
    "PAUSED": "paused",
    "DELETING": "being deleted",
}


STAGE_EMOJI = {"RUNNING": ":large_green_circle:", "RUNTIME_ERROR": ":red_circle:", "BUILD_ERROR": ":red_circle:",
               "CONFIG_ERROR": ":red_circle:", "NO_APP_FILE": ":red_circle:", "PAUSED": ":double_vertical_bar:",
               "STOPPED": ":zzz:", "SLEEPING": ":zzz:"}


CPU_BASIC_SLEEP = 48 * 3600


@dataclass
class Reply:
    """What the user sees. `public` replies are announced in the channel; others are ephemeral."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    public: bool = False
    posted: bool = False  # already posted in the channel by the bot (a followed change): nothing to respond


def stage_words(stage: str | None) -> str:
    if not stage:
        return "unknown"
    return STAGE_WORDS.get(stage, stage.lower().replace("_", " "))


def duration_words(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def sleep_words(sleep_time: int | None, hardware: str | None) -> str:
    if (hardware or "cpu-basic") == "cpu-basic":
        return f"cpu-basic: sleeps after {duration_words(sleep_time or CPU_BASIC_SLEEP)} idle"
    if sleep_time is None or sleep_time < 0:
        return "never sleeps"
    return f"sleeps after {duration_words(sleep_time)} idle"


def price_words(price: float | None) -> str:
    if price is None:
        return "price unknown"
    if price == 0:
        return "free"
    return f"${price:,.2f}/h"


def money_words(amount: float | None, signed: bool = False) -> str:
    if amount is None:
        return "unknown"
    return f"{'+' if signed and amount > 0 else ''}{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def flavor_words(name: str | None, catalogue: Catalogue) -> str:
    if not name:
        return "none"
    return f"{code(name)} ({price_words(catalogue.price(name))})"


def space_link(space: str, hub_url: str) -> str:
    return f"<{hub_url}/spaces/{space}|{escape(space)}>"


def section(text: str) -> dict[str, Any]:
    """A section of any length: split across blocks and messages where it is sent (bot/core/blocks.py)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def continued_in_thread() -> dict[str, Any]:
    """The last block of a message whose rest follows in its thread."""
    return context(":arrow_down: Continued in the thread.")


def continued_text(text: str) -> str:
    """The fallback text of a continuation message."""
    first = (text or "").split("\n", 1)[0]
    return "(continued) " + (first if len(first) <= 200 else first[:199] + "…")


def not_shown(lines: int, where: str = "one answer") -> dict[str, Any]:
    """The last block of a reply too long for Slack: says how much is missing and what to do."""
    return context(f":scissors: {lines} more line{'s' if lines != 1 else ''} not shown: that is more than Slack "
                   f"shows in {where}. Narrow the command (one Space, fewer days) to see the rest.")


def message_pages(text: str, blocks: list[dict] | None, most: int, where: str = "one answer",
                  in_thread: bool = False) -> list[tuple[str, list[dict] | None]]:
    """A reply's text and blocks as up to `most` messages Slack takes (bot/core/blocks.py), each with room
    for a note: beyond `most`, the last says how much is not shown; `in_thread`, the first says the rest
    follows in its thread."""
    if not blocks:
        return [(text, blocks)]
    found = pages(blocks, MESSAGE_BLOCKS - 1, MESSAGE_TEXT - 500)
    if len(found) > most:
        rest = [block for page in found[most:] for block in page]
        found = found[:most]
        found[-1] = found[-1] + [not_shown(lines_in(rest), where)]
    if in_thread and len(found) > 1:
        found[0] = found[0] + [continued_in_thread()]
    return [(text if n == 0 else continued_text(text), page) for n, page in enumerate(found)]


def not_shown_in_view(lines: int) -> dict[str, Any]:
    return not_shown(lines, "one view")


def when_words(ts: float) -> str:
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(ts))}>"


def button(text: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action, "value": value}
    if style:
        button["style"] = style
    return button


def change_reply(user: str, action: str, space: str, outcome: str = "") -> Reply:
    """A change announced in the channel, naming who did it."""
    text = f"<@{escape(user)}> {action} {code(space)}" + (f": {outcome}" if outcome else ".")
    return Reply(text, [section(text)], public=True)


def error_reply(sentence: str) -> Reply:
    """`sentence` is one of our errors: outside text in it was escaped where it was inserted."""
    text = f":warning: {sentence}"
    return Reply(text, [section(text)])


def notice_reply(sentence: str) -> Reply:
    return Reply(sentence, [section(sentence)])


def internal_error_reply() -> Reply:
    return error_reply("Something went wrong on our side; nothing was changed that was not confirmed. "
                       "The error was logged. Try again, or check `/space status`.")


def as_text(reply_text: str, blocks: list[dict[str, Any]] | None = None) -> str:
    """Plain-text rendering for the console: mrkdwn links and dates made readable."""
    parts = []
    for block in blocks or []:
        if block.get("type") == "section" and block.get("text"):
            parts.append(block["text"]["text"])
        elif block.get("type") == "context":
            parts.append(" ".join(e.get("text", "") for e in block.get("elements", [])))
        elif block.get("type") == "actions":
            parts.append("  ".join(f"[{e['text']['text']}]" for e in block.get("elements", []) if e.get("text")))
        elif block.get("type") == "header":
            parts.append(block["text"]["text"].upper())
    text = "\n".join(parts) if parts else reply_text
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    # A link labelled with a Space id reads as the id; a sentence label keeps its URL.
    text = re.sub(r"<(https?://[^|>]+)\|([^>\s]+)>", r"\2", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2: \1", text)
    text = re.sub(r"<@([^>|\s]+)(?:\|[^>]*)?>", r"@\1", text)
    text = re.sub(r"<!subteam\^[A-Z0-9]+\|(@?)([^>]+)>", lambda m: "@" + m.group(2), text)
    text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", r"@\1", text)
    text = re.sub(r":[a-z_]+: ?", "", text)  # emoji codes
    text = re.sub(r"<#([^>|\s]+)(?:\|([^>]*))?>", lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = text.replace("```", "\n    ").replace("`", "")
    text = re.sub(r"(?<![\w/])\*([^*\n]+)\*(?!\w)", r"\1", text)  # *bold*, not acme/*
    return html.unescape(text)


def budget_used(retry_after: int, everyone: bool) -> str:
    if everyone:
        return f"The Hub's rate limit for the bot's token is used up; nothing was changed. Try again in {retry_after} s."
    return (f"You have used your share of the bot's Hub requests for now (so the alerts and everyone else keep "
            f"theirs); nothing was changed. Try again in {retry_after} s.")


def waiting_reply() -> Reply:
    return notice_reply(":hourglass_flowing_sand: Waiting for the Hub…")


def hub_silent_reply(change: bool) -> Reply:
    """The Hub has not answered within the command's deadline."""
    if change:
        return error_reply("The Hub did not answer in time, so this is not confirmed; check `/space status` "
                           "before retrying.")
    return error_reply("The Hub did not answer in time; nothing was changed. Try again in a minute.")


def busy_reply() -> Reply:
    return error_reply("Space Ops is busy right now and did not start this; nothing was changed. "
                       "Try again in a minute.")
