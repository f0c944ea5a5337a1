"""The Slack emulator refuses what Slack refuses: one case per Block Kit limit (slack-notes §2.1), through the
real slack_sdk clients, with Slack's own error codes; where slack_sdk's Block Kit models know the limit,
they refuse the same payload."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import Block, BlockElement, Option
from slack_sdk.models.views import View
from slack_sdk.webhook import WebhookClient

from tests.emulators import blockkit


def text(n: int, kind: str = "mrkdwn") -> dict:
    return {"type": kind, "text": "x" * n}


def section(n: int = 10, **extra) -> dict:
    return {"type": "section", "text": text(n), **extra}


def button(label: int = 5, action: str = "a", **extra) -> dict:
    return {"type": "button", "text": text(label, "plain_text"), "action_id": action, **extra}


def actions(*elements, **extra) -> dict:
    return {"type": "actions", "elements": list(elements), **extra}


def options(n: int, label: int = 5, value: int = 5) -> list[dict]:
    return [{"text": text(label, "plain_text"), "value": f"{i}".ljust(value, "v")} for i in range(n)]


def select(opts: list[dict]) -> dict:
    return {"type": "static_select", "action_id": "pick", "placeholder": text(4, "plain_text"), "options": opts}


def modal(blocks=None, **extra) -> dict:
    return {"type": "modal", "title": text(10, "plain_text"), "blocks": blocks or [section()], **extra}


def sdk_option(option: dict) -> None:
    Option(text=option["text"]["text"], value=option["value"]).validate_json()


# (case, blocks that break one limit, the same blocks just within it, slack_sdk's check or None)
MESSAGE_CASES = [
    ("blocks per message", [section()] * 51, [section()] * 50, None),
    ("section text", [section(3001)], [section(3000)], lambda b: Block.parse(b[0]).validate_json()),
    ("empty section text", [section(0)], [section(1)], None),
    ("section fields", [{"type": "section", "fields": [text(5)] * 11}],
     [{"type": "section", "fields": [text(5)] * 10}], lambda b: Block.parse(b[0]).validate_json()),
    ("field text", [{"type": "section", "fields": [text(2001)]}], [{"type": "section", "fields": [text(2000)]}],
     None),
    ("header text", [{"type": "header", "text": text(151, "plain_text")}],
     [{"type": "header", "text": text(150, "plain_text")}], lambda b: Block.parse(b[0]).validate_json()),
    ("header in mrkdwn", [{"type": "header", "text": text(5)}], [{"type": "header", "text": text(5, "plain_text")}],
     None),
    ("markdown block", [{"type": "markdown", "text": "x" * 12_001}], [{"type": "markdown", "text": "x" * 11_999}],
     lambda b: Block.parse(b[0]).validate_json()),
    ("context text", [{"type": "context", "elements": [text(3001)]}], [{"type": "context", "elements": [text(3000)]}],
     None),
    ("context elements", [{"type": "context", "elements": [text(5)] * 11}],
     [{"type": "context", "elements": [text(5)] * 10}], lambda b: Block.parse(b[0]).validate_json()),
    ("actions elements", [actions(*[button(action=f"a{i}") for i in range(26)])],
     [actions(*[button(action=f"a{i}") for i in range(25)])], lambda b: Block.parse(b[0]).validate_json()),
    ("button text", [actions(button(76))], [actions(button(75))],
     lambda b: BlockElement.parse(b[0]["elements"][0]).validate_json()),
    ("button value", [actions(button(value="v" * 2001))], [actions(button(value="v" * 2000))],
     lambda b: BlockElement.parse(b[0]["elements"][0]).validate_json()),
    ("button url", [actions(button(url="https://x/" + "u" * 2991))], [actions(button(url="https://x/" + "u" * 2990))],
     lambda b: BlockElement.parse(b[0]["elements"][0]).validate_json()),
    ("button style", [actions(button(style="green"))], [actions(button(style="danger"))], None),
    ("action_id length", [actions(button(action="a" * 256))], [actions(button(action="a" * 255))],
     lambda b: BlockElement.parse(b[0]["elements"][0]).validate_json()),
    ("duplicate action_id", [actions(button(action="same"), button(action="same"))],
     [actions(button(action="same"), button(action="other"))], None),
    ("block_id length", [section(block_id="b" * 256)], [section(block_id="b" * 255)],
     lambda b: Block.parse(b[0]).validate_json()),
    ("duplicate block_id", [section(block_id="one"), section(block_id="one")],
     [section(block_id="one"), section(block_id="two")], None),
    ("option text", [actions(select(options(2, label=76)))], [actions(select(options(2, label=75)))],
     lambda b: sdk_option(b[0]["elements"][0]["options"][0])),
    ("option value", [actions(select(options(2, value=151)))], [actions(select(options(2, value=150)))],
     lambda b: sdk_option(b[0]["elements"][0]["options"][0])),
    ("options per select", [actions(select(options(101)))], [actions(select(options(100)))],
     lambda b: BlockElement.parse(b[0]["elements"][0]).validate_json()),
    ("confirm title", [actions(button(confirm={"title": text(101, "plain_text"), "text": text(5),
                                               "confirm": text(3, "plain_text"), "deny": text(3, "plain_text")}))],
     [actions(button(confirm={"title": text(100, "plain_text"), "text": text(5),
                              "confirm": text(3, "plain_text"), "deny": text(3, "plain_text")}))], None),
    ("confirm text", [actions(button(confirm={"title": text(5, "plain_text"), "text": text(301)}))],
     [actions(button(confirm={"title": text(5, "plain_text"), "text": text(300)}))], None),
    ("accessory button", [section(accessory=button(76))], [section(accessory=button(75))], None),
    ("unknown block type", [{"type": "sectoin", "text": text(5)}], [{"type": "section", "text": text(5)}], None),
]


@pytest.fixture
def web(slack):
    return WebClient(token=slack.token, base_url=f"{slack.base}/api/")


@pytest.mark.parametrize("case, broken, within, sdk", MESSAGE_CASES, ids=[c[0] for c in MESSAGE_CASES])
def test_a_message_breaking_a_block_limit_is_refused_with_invalid_blocks(web, slack, case, broken, within, sdk):
    for method in (lambda b: web.chat_postMessage(channel="C1", text="fallback", blocks=b),
                   lambda b: web.chat_postEphemeral(channel="C1", user="U1", text="fallback", blocks=b)):
        with pytest.raises(SlackApiError) as refused:
            method(broken)
        assert refused.value.response["error"] == "invalid_blocks"
        assert "json-pointer:/blocks" in refused.value.response["response_metadata"]["messages"][0]
        method(within)
    posted = web.chat_postMessage(channel="C1", text="fallback", blocks=within)
    with pytest.raises(SlackApiError) as refused:
        web.chat_update(channel="C1", ts=posted["ts"], text="fallback", blocks=broken)
    assert refused.value.response["error"] == "invalid_blocks"
    assert [r[1] for r in slack.take_refused()] == ["invalid_blocks"] * 3
    assert len(slack.posts()) == 2  # the refused posts were not posted
    if sdk:
        with pytest.raises(SlackObjectFormationError):
            sdk(broken)
        sdk(within)


def test_response_url_refuses_broken_blocks_in_plain_text(slack):
    hook = WebhookClient(f"{slack.base}/respond/r1")
    answer = hook.send_dict({"text": "fallback", "blocks": [section(3001)]})
    assert (answer.status_code, answer.body) == (400, "invalid_blocks")
    assert hook.send_dict({"text": "fallback", "blocks": [section(3000)]}).status_code == 200
    assert hook.send_dict({"delete_original": True}).status_code == 200
    assert slack.responses("r1") == [{"text": "fallback", "blocks": [section(3000)]}, {"delete_original": True}]
    assert [r[1] for r in slack.take_refused()] == ["invalid_blocks"]


def test_too_much_text_across_blocks_is_msg_blocks_too_long(web, slack):
    just_within = [section(3000)] * 4
    too_long = just_within + [section(1)]
    with pytest.raises(SlackApiError) as refused:
        web.chat_postMessage(channel="C1", text="fallback", blocks=too_long)
    assert refused.value.response["error"] == "msg_blocks_too_long"
    web.chat_postMessage(channel="C1", text="fallback", blocks=just_within)
    assert WebhookClient(f"{slack.base}/respond/r2").send_dict(
        {"text": "fallback", "blocks": too_long}).body == "msg_blocks_too_long"
    assert [r[1] for r in slack.take_refused()] == ["msg_blocks_too_long"] * 2


def test_neither_text_nor_blocks_is_no_text(web, slack):
    with pytest.raises(SlackApiError) as refused:
        web.chat_postMessage(channel="C1", text="")
    assert refused.value.response["error"] == "no_text"
    slack.take_refused()


def test_blocks_without_a_fallback_text_are_posted_with_slacks_warning_and_fail_the_test(web, slack):
    with pytest.warns(UserWarning):  # slack_sdk itself warns about the missing top-level text
        answer = web.chat_postMessage(channel="C1", blocks=[section()])
    assert answer["ok"] and answer["warning"] == "missing_text_or_fallback_or_attachments"
    assert slack.take_refused() == [("chat.postMessage", "missing_text_or_fallback_or_attachments", [])]


VIEW_CASES = [
    ("blocks per view", modal([section()] * 101), modal([section()] * 100), lambda v: View(**v).validate_json()),
    ("modal title", modal(title=text(25, "plain_text")), modal(title=text(24, "plain_text")),
     lambda v: View(**v).validate_json()),
    ("modal submit", modal(submit=text(25, "plain_text")), modal(submit=text(24, "plain_text")),
     lambda v: View(**v).validate_json()),
    ("modal close", modal(close=text(25, "plain_text")), modal(close=text(24, "plain_text")),
     lambda v: View(**v).validate_json()),
    ("private_metadata", modal(private_metadata="m" * 3001), modal(private_metadata="m" * 3000),
     lambda v: View(**v).validate_json()),
    ("callback_id", modal(callback_id="c" * 256), modal(callback_id="c" * 255), lambda v: View(**v).validate_json()),
    ("input needs submit", modal([{"type": "input", "label": text(5, "plain_text"),
                                   "element": {"type": "plain_text_input", "action_id": "v"}}]),
     modal([{"type": "input", "label": text(5, "plain_text"),
             "element": {"type": "plain_text_input", "action_id": "v"}}], submit=text(4, "plain_text")), None),
    ("a block in a view", modal([section(3001)]), modal([section(3000)]), None),
    ("duplicate block_id in a view", modal([section(block_id="x"), section(block_id="x")]),
     modal([section(block_id="x"), section(block_id="y")]), None),
    ("home blocks", {"type": "home", "blocks": [section()] * 101}, {"type": "home", "blocks": [section()] * 100},
     None),
]


@pytest.mark.parametrize("case, broken, within, sdk", VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_a_view_breaking_a_limit_is_refused_with_invalid_arguments(web, slack, case, broken, within, sdk):
    calls = [lambda v: web.views_publish(user_id="U1", view=v)] if broken["type"] == "home" else [
        lambda v: web.views_open(trigger_id="t", view=v), lambda v: web.views_update(view_id="V1", view=v),
        lambda v: web.views_push(trigger_id="t", view=v)]
    for call in calls:
        with pytest.raises(SlackApiError) as refused:
            call(broken)
        assert refused.value.response["error"] == "invalid_arguments"
        call(within)
    assert {r[1] for r in slack.take_refused()} == {"invalid_arguments"}
    if sdk:
        with pytest.raises(SlackObjectFormationError):
            sdk(broken)
        sdk(within)


def test_a_view_over_250_kb_is_view_too_large(web, slack):
    huge = {"type": "home", "blocks": [section(2900, block_id=f"b{i}") for i in range(90)]}
    with pytest.raises(SlackApiError) as refused:
        web.views_publish(user_id="U1", view=huge)
    assert refused.value.response["error"] == "view_too_large"
    assert slack.take_refused()[0][1] == "view_too_large"


def test_an_unfurl_breaking_a_block_limit_is_refused(web, slack):
    slack.share("C1", "1.000001", ["https://huggingface.co/spaces/acme/chat"])
    with pytest.raises(SlackApiError) as refused:
        web.chat_unfurl(channel="C1", ts="1.000001",
                        unfurls={"https://huggingface.co/spaces/acme/chat": {"blocks": [section(3001)]}})
    assert refused.value.response["error"] == "invalid_blocks"
    web.chat_unfurl(channel="C1", ts="1.000001",
                    unfurls={"https://huggingface.co/spaces/acme/chat": {"blocks": [section(3000)]}})
    assert slack.take_refused()[0][:2] == ("chat.unfurl", "invalid_blocks")


def test_the_limits_are_those_of_the_notes():
    """slack-notes §2.1, as numbers: a change here is a change of what Slack is said to refuse."""
    assert (blockkit.MESSAGE_BLOCKS, blockkit.VIEW_BLOCKS, blockkit.TEXT, blockkit.HEADER_TEXT,
            blockkit.BUTTON_TEXT, blockkit.BUTTON_VALUE, blockkit.OPTION_TEXT, blockkit.OPTION_VALUE,
            blockkit.ID_CHARS, blockkit.MODAL_TEXT, blockkit.SECTION_FIELDS, blockkit.ACTIONS_ELEMENTS,
            blockkit.CONTEXT_ELEMENTS) == (50, 100, 3000, 150, 75, 2000, 75, 150, 255, 24, 10, 25, 10)
