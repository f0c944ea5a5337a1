"""Slack messages as a terminal shows them: Block Kit and mrkdwn rendered the way Slack displays them.

The one renderer of the console (`python -m bot console`, `make demo`) and of the tests' `as_text`. Pure:
text and blocks in, text out. What Slack does, and so what this does:
- `*bold*`, `_italics_`, `~strike~` only at word edges (`acme/*` and `snake_case` stay as typed), never inside
  `code` or a ```block```; code keeps its text as it is (a `*` in `/space watch acme/*` is kept);
- `<url|label>` shows its label, `<!date^…|fallback>` its fallback, `<@U1|ann>` as @ann, `<#C1|ops>` as #ops,
  `<!here>` as @here, `<!subteam^S1|@ops>` as @ops; `&lt;` `&gt;` `&amp;` as the characters;
- `:emoji:` as the picture (a few known ones) or its name;
- sections, fields, context, buttons, headers and dividers, one after the other.
Styles: `ansi` draws bold, italics, strike and code with terminal escapes; otherwise code keeps its backticks
(`code_marks`) so a flavor id never runs into its name (`t4-small` Nvidia T4 small).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

EMOJI = {
    "large_green_circle": "🟢", "red_circle": "🔴", "large_blue_circle": "🔵", "zzz": "💤",
    "double_vertical_bar": "⏸", "hourglass": "⌛", "hourglass_flowing_sand": "⏳", "warning": "⚠️",
    "white_check_mark": "✅", "moneybag": "💰", "rotating_light": "🚨", "grey_question": "❔", "gear": "⚙️",
    "hammer_and_wrench": "🛠", "bar_chart": "📊", "chart_with_upwards_trend": "📈", "no_entry": "⛔",
    "rewind": "⏪", "arrow_down": "⬇️", "leftwards_arrow_with_hook": "↩️", "lock": "🔒", "mag": "🔍",
    "calendar": "📅", "bell": "🔔", "no_bell": "🔕", "x": "❌", "heavy_check_mark": "✔️", "clock1": "🕐",
    "money_with_wings": "💸", "information_source": "ℹ️", "heavy_multiplication_x": "✖️", "fast_forward": "⏩",
    "alarm_clock": "⏰", "cut": "✂️",
}


@dataclass(frozen=True)
class Style:
    """How marks are drawn: `ansi` escapes, or plain text (code in backticks when `code_marks`); emoji as
    "glyph" (their picture, else the name), "name" (`:zzz:`) or "drop" (left out)."""

    ansi: bool = False
    code_marks: bool = True
    emoji: str = "glyph"


PLAIN = Style()
TERMINAL = Style(ansi=True)
BARE = Style(code_marks=False, emoji="drop")  # text only: what tests compare

_BOLD, _ITALIC, _STRIKE, _CODE, _RESET = "\033[1m", "\033[3m", "\033[9m", "\033[36m", "\033[0m"
_FENCE = re.compile(r"```(.*?)```", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_ANGLE = re.compile(r"<([^<>\n]+)>")
_EMOJI = re.compile(r":([a-z][a-z0-9_+-]*):")
# Slack's edges: a mark opens after the start, a space or punctuation and before a non-space; it closes after
# a non-space and before the end, a space or punctuation. A word character or `/` next to it is no edge.
_EDGE_BEFORE = r"(?:(?<=^)|(?<=[\s(\[{\"'.,;:!?—–-]))"
_EDGE_AFTER = r"(?=$|[\s)\]}\"'.,;:!?—–-])"


def _marked(mark: str) -> re.Pattern:
    m = re.escape(mark)
    return re.compile(_EDGE_BEFORE + m + r"(?=\S)([^" + m + r"\n]*?\S)" + m + _EDGE_AFTER, re.M)


_MARKS = [(_marked("*"), _BOLD), (_marked("_"), _ITALIC), (_marked("~"), _STRIKE)]


def _angle(match: re.Match) -> str:
    """One `<…>` of Slack's: a link, a date, a mention, a channel, a special mention."""
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("!date^"):
        return label or target
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!subteam^"):
        return "@" + (label.lstrip("@") or target.split("^", 1)[1])
    if target.startswith("!"):
        return "@" + (label or target[1:]).lstrip("@")
    if label:
        # A link whose label is a name (a Space id, a commit) reads as the name; a sentence keeps its address.
        return label if " " not in label else f"{label} ({target})"
    return target.removeprefix("mailto:")


class _Held:
    """Code and links taken out of the text while the marks are drawn, then put back as they are."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def hold(self, text: str) -> str:
        self.items.append(text)
        return f"\x00{len(self.items) - 1}\x00"

    def restore(self, text: str) -> str:
        return re.sub(r"\x00(\d+)\x00", lambda m: self.items[int(m.group(1))], text)


def mrkdwn(text: str, style: Style = PLAIN) -> str:
    """One mrkdwn string as Slack shows it."""
    held = _Held()

    def fence(match: re.Match) -> str:
        body = match.group(1).strip("\n")
        lines = [("    " + line) if line else "" for line in html.unescape(body).split("\n")]
        block = "\n".join(lines)
        if style.ansi:
            block = _CODE + block + _RESET
        return "\n" + held.hold(block) + "\n"

    def inline(match: re.Match) -> str:
        body = html.unescape(match.group(1))
        if style.ansi:
            return held.hold(_CODE + body + _RESET)
        return held.hold(f"`{body}`" if style.code_marks else body)

    text = _FENCE.sub(fence, text)
    text = _INLINE_CODE.sub(inline, text)
    text = _ANGLE.sub(lambda m: held.hold(html.unescape(_angle(m))), text)
    for pattern, escape in _MARKS:
        text = pattern.sub((lambda m, e=escape: f"{e}{m.group(1)}{_RESET}") if style.ansi else r"\1", text)
    text = _EMOJI.sub(lambda m: _emoji(m.group(1), style), text)
    text = html.unescape(text)
    text = held.restore(text)
    # A block set on its own lines leaves no blank line before or after it, as in Slack.
    text = re.sub(r"\n{2,}(    )", r"\n\1", text)
    text = re.sub(r"^\n", "", text)
    return re.sub(r"[ \t]+\n", "\n", text).strip("\n")


def _emoji(name: str, style: Style) -> str:
    if style.emoji == "drop":
        return "\x01"  # removed with the space after it, below
    if style.emoji == "glyph" and name in EMOJI:
        return EMOJI[name]
    return f":{name}:"


def _text_of(obj: Any, style: Style) -> str:
    if not isinstance(obj, dict):
        return ""
    text = str(obj.get("text", ""))
    out = mrkdwn(text, style) if obj.get("type") == "mrkdwn" else html.unescape(text)
    return _EMOJI.sub(lambda m: _emoji(m.group(1), style), out) if obj.get("type") != "mrkdwn" else out


def _button(element: dict, style: Style) -> str:
    label = _text_of(element.get("text"), style)
    return f"{_BOLD}[{label}]{_RESET}" if style.ansi else f"[{label}]"


def block_text(block: dict, style: Style = PLAIN) -> str:
    """One block as lines of text ("" for a block with nothing to read)."""
    kind = block.get("type")
    if kind == "section":
        parts = [_text_of(block.get("text"), style)] if block.get("text") else []
        parts += [_text_of(field, style) for field in block.get("fields") or []]
        accessory = block.get("accessory") or {}
        line = "\n".join(p for p in parts if p)
        if accessory.get("type") == "button":
            line += ("  " if line else "") + _button(accessory, style)
        return line
    if kind == "header":
        text = _text_of(block.get("text"), style)
        return f"{_BOLD}{text}{_RESET}" if style.ansi else text.upper()
    if kind == "context":
        return " ".join(t for t in (_text_of(e, style) if e.get("type") != "image" else f"[{e.get('alt_text', '')}]"
                                    for e in block.get("elements", [])) if t)
    if kind == "actions":
        return "  ".join(_button(e, style) for e in block.get("elements", []) if e.get("type") == "button")
    if kind == "divider":
        return "─" * 40
    if kind == "image":
        return f"[image: {block.get('alt_text', '')}]"
    return ""


def render(text: str, blocks: list[dict] | None = None, style: Style = PLAIN) -> str:
    """A message as Slack shows it: its blocks one after the other, or its text when it has none."""
    if blocks:
        out = "\n".join(t for t in (block_text(b, style) for b in blocks) if t)
    else:
        out = mrkdwn(text or "", style)
    if style.emoji == "drop":
        out = re.sub("\x01 ?", "", out)
    return out
