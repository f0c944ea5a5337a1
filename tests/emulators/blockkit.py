"""What Slack refuses in a message's or a view's blocks, with Slack's own error codes.

The limits are those of ../shared/slack-notes.md §2.1 (docs.slack.dev's Block Kit reference and slack_sdk's
`slack_sdk/models/blocks`, `views` validators); a problem reads like Slack's own
`response_metadata.messages` entry: "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]".

Messages: `invalid_blocks` (a block breaks a rule), `invalid_blocks_format` (blocks not a list of objects),
`msg_blocks_too_long` (the blocks' text in total), `no_text` (neither text nor blocks). Views: `invalid_arguments`
(a block or the view breaks a rule) and `view_too_large`.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# Slack's cumulative limit is undocumented: refused from about 13.2k characters (slackapi/bolt-js#2509), where
# Slack's engineer speaks of "12,000 text characters with a buffer for block containers". The emulator refuses
# above 12,000 characters of text across a message's blocks.
MESSAGE_TEXT_TOTAL = 12_000
VIEW_BYTES = 250_000            # view_too_large (slack-notes §8: "above ~250 KB")
TEXT = 3000                     # a section's text, a context's text element, a text object in general
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
MARKDOWN_TEXT = 12_000
ACTIONS_ELEMENTS = 25
CONTEXT_ELEMENTS = 10
ID_CHARS = 255                  # block_id, action_id, callback_id, external_id
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
URL_CHARS = 3000
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTIONS = 100
OVERFLOW_OPTIONS = (1, 5)
PLACEHOLDER = 150
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
LABEL = 2000
MODAL_TEXT = 24                 # a modal's title, submit and close
PRIVATE_METADATA = 3000
BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "input", "rich_text", "markdown",
               "file", "video"}
INTERACTIVE = {"button", "static_select", "external_select", "users_select", "conversations_select",
               "channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
               "multi_conversations_select", "multi_channels_select", "overflow", "datepicker", "timepicker",
               "datetimepicker", "checkboxes", "radio_buttons", "plain_text_input", "email_text_input",
               "url_text_input", "number_input", "rich_text_input", "file_input"}


def _longer(limit: int) -> str:
    return f"must be less than {limit + 1} characters"


class _Check:
    def __init__(self):
        self.problems: list[str] = []

    def say(self, what: str, pointer: str) -> None:
        self.problems.append(f"[ERROR] {what} [json-pointer:{pointer}]")

    def text(self, obj: Any, pointer: str, limit: int, plain_only: bool = False, required: bool = True) -> None:
        if obj is None:
            if required:
                self.say("missing required field: text", pointer)
            return
        if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
            self.say("must be a text object (plain_text or mrkdwn)", pointer)
            return
        if plain_only and obj["type"] != "plain_text":
            self.say("must be a plain_text object", pointer + "/type")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            self.say("must be more than 0 characters", pointer + "/text")
        elif len(value) > limit:
            self.say(_longer(limit), pointer + "/text")

    def length(self, value: Any, pointer: str, limit: int) -> None:
        if value is not None and len(str(value)) > limit:
            self.say(_longer(limit), pointer)

    def confirm(self, obj: Any, pointer: str) -> None:
        if obj is None:
            return
        for name, limit in CONFIRM.items():
            self.text(obj.get(name), f"{pointer}/{name}", limit, plain_only=name != "text",
                      required=name in ("title", "text"))

    def options(self, options: Any, pointer: str, most: int = OPTIONS, fewest: int = 1) -> None:
        if not isinstance(options, list):
            return
        if len(options) > most:
            self.say(f"must be less than {most + 1} items", pointer)
        if len(options) < fewest:
            self.say(f"must provide at least {fewest} items", pointer)
        for i, option in enumerate(options):
            self.text(option.get("text"), f"{pointer}/{i}/text", OPTION_TEXT)
            self.length(option.get("value"), f"{pointer}/{i}/value", OPTION_VALUE)
            if option.get("description") is not None:
                self.text(option["description"], f"{pointer}/{i}/description", OPTION_TEXT)

    def element(self, element: Any, pointer: str) -> str | None:
        """Check one interactive element; its action_id (for the duplicate check)."""
        if not isinstance(element, dict) or element.get("type") not in INTERACTIVE:
            self.say("must be a known element type", pointer + "/type")
            return None
        kind = element["type"]
        self.length(element.get("action_id"), pointer + "/action_id", ID_CHARS)
        if kind == "button":
            self.text(element.get("text"), pointer + "/text", BUTTON_TEXT, plain_only=True)
            self.length(element.get("value"), pointer + "/value", BUTTON_VALUE)
            self.length(element.get("url"), pointer + "/url", URL_CHARS)
            if element.get("style") not in (None, "primary", "danger"):
                self.say("must be one of primary, danger", pointer + "/style")
        if kind == "overflow":
            self.options(element.get("options"), pointer + "/options", *reversed(OVERFLOW_OPTIONS))
        elif "options" in element:
            self.options(element.get("options"), pointer + "/options")
        for i, group in enumerate(element.get("option_groups") or []):
            self.text(group.get("label"), f"{pointer}/option_groups/{i}/label", OPTION_TEXT, plain_only=True)
            self.options(group.get("options"), f"{pointer}/option_groups/{i}/options")
        if element.get("placeholder") is not None:
            self.text(element["placeholder"], pointer + "/placeholder", PLACEHOLDER, plain_only=True)
        self.confirm(element.get("confirm"), pointer + "/confirm")
        return element.get("action_id")

    def block(self, block: Any, pointer: str) -> None:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            self.say("must be a known block type", pointer + "/type")
            return
        kind = block["type"]
        self.length(block.get("block_id"), pointer + "/block_id", ID_CHARS)
        action_ids: list[str] = []
        if kind == "section":
            if block.get("text") is None and not block.get("fields"):
                self.say("must provide either text or fields", pointer)
            if block.get("text") is not None:
                self.text(block["text"], pointer + "/text", TEXT)
            fields = block.get("fields") or []
            if len(fields) > SECTION_FIELDS:
                self.say(f"must be less than {SECTION_FIELDS + 1} items", pointer + "/fields")
            for i, item in enumerate(fields):
                self.text(item, f"{pointer}/fields/{i}", FIELD_TEXT)
            if block.get("accessory") is not None and block["accessory"].get("type") != "image":
                action_ids.append(self.element(block["accessory"], pointer + "/accessory"))
        elif kind == "header":
            self.text(block.get("text"), pointer + "/text", HEADER_TEXT, plain_only=True)
        elif kind == "markdown":
            value = block.get("text")
            if not isinstance(value, str) or not value:
                self.say("must be more than 0 characters", pointer + "/text")
            elif len(value) > MARKDOWN_TEXT:
                self.say(_longer(MARKDOWN_TEXT), pointer + "/text")
        elif kind == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > CONTEXT_ELEMENTS:
                self.say(f"must provide between 1 and {CONTEXT_ELEMENTS} items", pointer + "/elements")
            for i, item in enumerate(elements):
                if isinstance(item, dict) and item.get("type") == "image":
                    continue
                self.text(item, f"{pointer}/elements/{i}", TEXT)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > ACTIONS_ELEMENTS:
                self.say(f"must provide between 1 and {ACTIONS_ELEMENTS} items", pointer + "/elements")
            for i, item in enumerate(elements):
                action_ids.append(self.element(item, f"{pointer}/elements/{i}"))
        elif kind == "input":
            self.text(block.get("label"), pointer + "/label", LABEL, plain_only=True)
            if block.get("hint") is not None:
                self.text(block["hint"], pointer + "/hint", LABEL, plain_only=True)
            action_ids.append(self.element(block.get("element"), pointer + "/element"))
        elif kind == "image":
            self.length(block.get("image_url"), pointer + "/image_url", URL_CHARS)
            self.length(block.get("alt_text"), pointer + "/alt_text", LABEL)
            if block.get("title") is not None:
                self.text(block["title"], pointer + "/title", LABEL, plain_only=True)
        named = [a for a in action_ids if a]
        for duplicate in sorted({a for a in named if named.count(a) > 1}):
            self.say(f"duplicate action_id {duplicate!r}", pointer)

    def blocks(self, blocks: Any, pointer: str, most: int) -> None:
        if len(blocks) > most:
            self.say(f"must be less than {most + 1} items", pointer)
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"{pointer}/{i}")
            block_id = block.get("block_id") if isinstance(block, dict) else None
            if block_id is not None:
                if block_id in seen:
                    self.say(f"duplicate block_id {block_id!r}", f"{pointer}/{i}/block_id")
                seen.add(block_id)


def text_length(value: Any) -> int:
    """Characters of text in blocks, as Slack's cumulative limit counts them (every `text` string)."""
    if isinstance(value, list):
        return sum(text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else text_length(v) for k, v in value.items())
    return 0


def message_refusal(text: Any, blocks: Any) -> tuple[str, list[str]] | None:
    """(Slack's error code, its messages) for a message Slack would refuse; None when it would take it."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format", ["[ERROR] must be a JSON array [json-pointer:/blocks]"]
    if blocks in (None, []):
        return None if text else ("no_text", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return "invalid_blocks_format", ["[ERROR] must be an array of objects [json-pointer:/blocks]"]
    check = _Check()
    check.blocks(blocks, "/blocks", MESSAGE_BLOCKS)
    if check.problems:
        return "invalid_blocks", check.problems
    if text_length(blocks) > MESSAGE_TEXT_TOTAL:
        return "msg_blocks_too_long", []
    return None


def missing_fallback(text: Any, blocks: Any) -> bool:
    """Blocks without a top-level `text`: Slack posts it with the warning `missing_text_or_fallback_or_attachments`
    (notifications and screen readers have nothing to read)."""
    return bool(blocks) and not (isinstance(text, str) and text.strip())


def view_refusal(view: Any) -> tuple[str, list[str]] | None:
    """(Slack's error code, its messages) for a view Slack would refuse (views.publish/open/update/push)."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            return "invalid_arguments", ["[ERROR] must be a JSON object [json-pointer:/view]"]
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return "invalid_arguments", ["[ERROR] must be one of modal, home [json-pointer:/view/type]"]
    if len(json.dumps(view)) > VIEW_BYTES:
        return "view_too_large", []
    check = _Check()
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        check.say("missing required field: blocks", "/view/blocks")
    else:
        check.blocks(blocks, "/view/blocks", VIEW_BLOCKS)
    if view["type"] == "modal":
        check.text(view.get("title"), "/view/title", MODAL_TEXT, plain_only=True)
        for name in ("submit", "close"):
            check.text(view.get(name), f"/view/{name}", MODAL_TEXT, plain_only=True, required=False)
        if any(isinstance(b, dict) and b.get("type") == "input" for b in blocks or []) and not view.get("submit"):
            check.say("must provide submit when input blocks are present", "/view/submit")
    check.length(view.get("private_metadata"), "/view/private_metadata", PRIVATE_METADATA)
    check.length(view.get("callback_id"), "/view/callback_id", ID_CHARS)
    check.length(view.get("external_id"), "/view/external_id", ID_CHARS)
    if check.problems:
        return "invalid_arguments", check.problems
    return None
