"""The shared words: `Reply`, Block Kit pieces, and how stages, durations, prices and times read.

Every feature builds its own sentences (`bot/<feature>/words.py`) from these; text from users or the
Hub is escaped where it is inserted (`bot.core.markup`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.blocks import MESSAGE_BLOCKS, MESSAGE_TEXT, lines_in, pages
from bot.core.flavors import DEFAULT_FLAVOR, Catalogue
from bot.core.markup import code, escape
from bot.core.render import BARE, render

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


def held_words(seconds: float, whole: bool = True) -> str:
    """"45 s", or "at least 45 s" when the time counts from the bot's first sighting rather than from the
    start of what it measures (never a duration longer than observed stated as the whole)."""
    return duration_words(max(0.0, seconds)) if whole else f"at least {duration_words(max(0.0, seconds))}"


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


def rate_words(name: str, catalogue: Catalogue) -> str:
    """"`a10g-small` ($1.00/h · $24.00/day)", "`cpu-basic` (free)"."""
    price = catalogue.price(name)
    if not price:
        return flavor_words(name, catalogue)
    return f"{code(name)} ({price_words(price)} · {money_words(price * 24)}/day)"


def _never(seconds: int | None) -> bool:
    return seconds is None or seconds < 0


def hub_reports_words(runtime, catalogue: Catalogue) -> str:
    """What the Hub reports right after a change (its answer to the write, read back): hardware, price, sleep.
    "The Hub now reports `a10g-small` ($1.00/h · $24.00/day) requested, on `cpu-basic` (free) until it moves;
    never sleeps." """
    current, requested = runtime.hardware, runtime.requested_hardware
    if current is None and requested is None:
        return "The Hub now reports no hardware (a static Space)."
    if requested and current and requested != current:
        hardware = f"{rate_words(requested, catalogue)} requested, on {flavor_words(current, catalogue)} until it moves"
    else:
        hardware = rate_words(requested or current, catalogue)
    return f"The Hub now reports {hardware}; {sleep_words(runtime.sleep_time, requested or current)}."


def differs_words(runtime, flavor: str | None, sleep_seconds: int | None, said: str) -> str:
    """" :warning: Not what the approval said: sleeps after 2 d idle, not never sleeps." or "" when the Hub reports
    the hardware (`flavor`) and sleep time (`sleep_seconds`, -1 never) that `said` promised (None: not promised)."""
    diffs = []
    actual = runtime.requested_hardware or runtime.hardware
    if flavor and actual != flavor:
        diffs.append(f"hardware {code(actual or 'none')}, not {code(flavor)}")
    if sleep_seconds is not None and (actual or DEFAULT_FLAVOR) != DEFAULT_FLAVOR:
        got = runtime.sleep_time
        if _never(got) != _never(sleep_seconds) or (not _never(got) and got != sleep_seconds):
            diffs.append(f"{sleep_words(got, actual)}, not {sleep_words(sleep_seconds, actual)}")
    return f" :warning: Not what {said}: {'; '.join(diffs)}." if diffs else ""


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


def hub_identity_words(hub: dict | None) -> str:
    """` (hf: alice-ml, write in acme)` for an audit entry or a decider with a Hub identity; "" without one."""
    if not hub or not hub.get("user"):
        return ""
    role, namespace = hub.get("role"), hub.get("namespace")
    where = f", {escape(role)} {'of' if role == 'admin' else 'in'} {escape(namespace)}" if role and namespace else ""
    return f" (hf: {escape(hub['user'])}{where})"


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
    """The words of a message without marks (code, emoji and links as text): what tests compare. The console
    draws the same message with `bot.core.render` itself."""
    return render(reply_text, blocks, BARE)


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
