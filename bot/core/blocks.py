"""Block Kit within Slack's limits, nothing cut silently (slack-notes §2.1).

Long text is split across blocks at line boundaries (a code block split in two is closed and reopened);
blocks are split across messages (`pages`) within 50 blocks and a budget of text per message. Where a cut
cannot be avoided (a header, a button's label, a modal's title) the text ends with CUT, so it shows.
The sentences that say a reply continues elsewhere are the caller's (bot/core/words.py).
"""

from __future__ import annotations

from typing import Any

SECTION_TEXT = 3000
FIELD_TEXT = 2000
SECTION_FIELDS = 10
HEADER_TEXT = 150
MARKDOWN_TEXT = 12_000
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
OPTION_TEXT = 75
PLACEHOLDER = 150
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
ID_CHARS = 255
MODAL_TEXT = 24
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# Slack refuses a message whose blocks hold more than about 12-13k characters of text in total
# (`msg_blocks_too_long`, undocumented: slackapi/bolt-js#2509); a page keeps well under it.
MESSAGE_TEXT = 10_000
CUT = "…"
FENCE = "```"


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters; when cut, it ends with CUT (so the cut shows)."""
    return text if len(text) <= limit else text[: max(limit - len(CUT), 0)].rstrip() + CUT


def split_text(text: str, limit: int = SECTION_TEXT) -> list[str]:
    """Pieces of at most `limit` characters, split at line boundaries (a line longer than that at a space);
    a code block that spans two pieces is closed at the end of one and reopened at the start of the next."""
    if len(text) <= limit:
        return [text]
    room = limit - 2 * len(FENCE)  # a piece may need to close and reopen a fence
    lines = [part for line in text.split("\n") for part in _wrap(line, room)]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    fenced = False       # inside a code block at the end of `current`
    opened = False       # `current` starts inside a code block
    for line in lines:
        toggles = line.count(FENCE) % 2 == 1
        extra = len(line) + (1 if current else 0)
        if current and size + extra + (len(FENCE) if fenced != toggles else 0) > limit:
            pieces.append(("\n".join(current)) + (FENCE if fenced else ""))
            opened, current, size = fenced, [], 0
            extra = len(line)
        if not current and opened:
            line = FENCE + line
            extra += len(FENCE)
        current.append(line)
        size += extra
        fenced = fenced != toggles
    if current:
        pieces.append("\n".join(current))
    return [piece for piece in pieces if piece.strip()] or [clip(text, limit)]


def _wrap(line: str, width: int) -> list[str]:
    parts = []
    while len(line) > width:
        cut = line.rfind(" ", width // 2, width)
        cut = cut if cut > 0 else width
        parts.append(line[:cut])
        line = line[cut:].lstrip(" ")
    return parts + [line]


def _text(obj: Any, limit: int) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return {**obj, "text": clip(obj["text"], limit) or " "}
    return obj


def _element(element: dict) -> dict:
    """An interactive element with its labels within Slack's limits (cut visibly)."""
    element = dict(element)
    if element.get("type") == "button":
        element["text"] = _text(element.get("text"), BUTTON_TEXT)
    if isinstance(element.get("placeholder"), dict):
        element["placeholder"] = _text(element["placeholder"], PLACEHOLDER)
    if isinstance(element.get("options"), list):
        element["options"] = [{**o, "text": _text(o.get("text"), OPTION_TEXT)} for o in element["options"]]
    if isinstance(element.get("confirm"), dict):
        element["confirm"] = {k: _text(v, CONFIRM.get(k, 3000)) for k, v in element["confirm"].items()}
    return element


def _block_id(block: dict, n: int) -> dict:
    """The n-th (from 0) block made from `block`: block ids stay unique."""
    if n and block.get("block_id"):
        suffix = f".{n}"
        return {**block, "block_id": block["block_id"][: ID_CHARS - len(suffix)] + suffix}
    return block


def fit_block(block: dict) -> list[dict]:
    """One block as one or more blocks that Slack takes (long text split, labels cut visibly)."""
    kind = block.get("type")
    if kind == "section":
        made = []
        text = block.get("text")
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            limit = SECTION_TEXT
            made = [{"type": "section", "text": {**text, "text": piece}} for piece in split_text(text["text"], limit)]
        fields = [_text(f, FIELD_TEXT) for f in block.get("fields") or []]
        for start in range(0, len(fields), SECTION_FIELDS):
            made.append({"type": "section", "fields": fields[start:start + SECTION_FIELDS]})
        if not made:
            return [block]
        extra = {k: v for k, v in block.items() if k not in ("type", "text", "fields", "accessory")}
        made[0] = {**made[0], **extra}
        if block.get("accessory") is not None:
            accessory = block["accessory"]
            made[0]["accessory"] = _element(accessory) if accessory.get("type") != "image" else accessory
        if len(made) > 1:
            made[1:] = [{**piece, **({"block_id": block["block_id"]} if block.get("block_id") else {})}
                        for piece in made[1:]]
        return [_block_id(piece, n) for n, piece in enumerate(made)]
    if kind == "header":
        return [{**block, "text": _text(block.get("text"), HEADER_TEXT)}]
    if kind == "markdown" and isinstance(block.get("text"), str) and len(block["text"]) > MARKDOWN_TEXT:
        return [_block_id({**block, "text": piece}, n) for n, piece in enumerate(split_text(block["text"], MARKDOWN_TEXT))]
    if kind == "context":
        elements = [_text(e, SECTION_TEXT) for e in block.get("elements") or []]
        return [_block_id({**block, "elements": elements[start:start + CONTEXT_ELEMENTS]}, n)
                for n, start in enumerate(range(0, len(elements), CONTEXT_ELEMENTS))] or [block]
    if kind == "actions":
        elements = [_element(e) for e in block.get("elements") or []]
        return [_block_id({**block, "elements": elements[start:start + ACTIONS_ELEMENTS]}, n)
                for n, start in enumerate(range(0, len(elements), ACTIONS_ELEMENTS))] or [block]
    return [block]


def fit_blocks(blocks: list[dict] | None) -> list[dict]:
    return [piece for block in blocks or [] for piece in fit_block(block)]


def text_length(value: Any) -> int:
    """Characters of text in blocks, counted as Slack's cumulative limit is (every `text` string)."""
    if isinstance(value, list):
        return sum(text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_length(v) for k, v in value.items())
    return 0


def pages(blocks: list[dict] | None, most_blocks: int = MESSAGE_BLOCKS, most_text: int = MESSAGE_TEXT) -> list[list[dict]]:
    """The blocks (fitted) as messages, each within `most_blocks` blocks and `most_text` characters of text,
    in order; one page (possibly empty) when they fit in one message."""
    out: list[list[dict]] = [[]]
    size = 0
    for block in fit_blocks(blocks):
        length = text_length(block)
        if out[-1] and (len(out[-1]) >= most_blocks or size + length > most_text):
            out.append([])
            size = 0
        out[-1].append(block)
        size += length
    return out


def lines_in(blocks: list[dict]) -> int:
    """How many lines of text the blocks hold (to say how much was not shown)."""
    total = 0
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            total += str(text.get("text", "")).count("\n") + 1
        elif isinstance(text, str):
            total += text.count("\n") + 1
        total += len(block.get("fields") or [])
        total += len(block.get("elements") or []) if block.get("type") == "context" else 0
    return total or len(blocks)


def within(blocks: list[dict] | None, most_blocks: int, note) -> list[dict]:
    """The fitted blocks in one message or view of at most `most_blocks` blocks (and MESSAGE_TEXT of text for
    a message); when they do not fit, the last block is `note(lines_not_shown)`."""
    fitted = pages(blocks, most_blocks - 1, MESSAGE_TEXT - 500) if most_blocks == MESSAGE_BLOCKS else \
        [fit_blocks(blocks)]
    every = [b for page in fitted for b in page]
    if len(fitted) == 1 and len(every) <= most_blocks:
        return every
    shown = fitted[0][: most_blocks - 1]
    return shown + [note(lines_in(every[len(shown):]))]


def fit_view(view: dict, note) -> dict:
    """A modal or Home tab within Slack's limits: blocks fitted, at most VIEW_BLOCKS of them (the last saying
    how much was not shown), title/submit/close cut visibly."""
    fitted = {**view, "blocks": within(view.get("blocks"), VIEW_BLOCKS, note)}
    for name in ("title", "submit", "close"):
        if isinstance(fitted.get(name), dict):
            fitted[name] = _text(fitted[name], MODAL_TEXT)
    return fitted
