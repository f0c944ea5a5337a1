"""One way out to Slack: no module but the delivery path posts, edits or uploads (a static check with `ast`).

Everything the bot says on its own goes through `bot.core.deliver` (claimed, marked with its delivery id,
looked for in the channel's history before a retry). The direct answer to the person who acted never uses
these methods: it is the ack, `respond()` (the request's response_url), an ephemeral message or a view, so
the check needs no list of exceptions beyond the path itself and the raw client wrapper it drives.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The one path, and the thin wrapper over slack_sdk that only it calls (SlackPoster.post/update).
THE_PATH = {"bot/core/deliver.py", "bot/core/slack.py"}
# Slack Web API methods that put something in a channel or change it (slack_sdk's names).
SENDING = {"chat_postMessage", "chat_update", "chat_scheduleMessage", "chat_meMessage", "files_upload_v2",
           "files_upload", "files_completeUploadExternal"}
# Building the raw poster: the wiring makes the one the path wraps; nobody else needs one.
RAW_POSTER_BUILT_IN = {"bot/app.py", "bot/__main__.py", "bot/core/deliver.py"}


def _receiver(node: ast.expr) -> str:
    """`self.ctx.poster` → "poster"; `poster` → "poster"; anything else → ""."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def offences(source: str) -> list[str]:
    """What in this source posts to Slack other than through the path: `line: call`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in SENDING:
            found.append(f"{node.lineno}: .{func.attr}()")
        elif (isinstance(func, ast.Attribute) and func.attr in ("post", "update")
              and _receiver(func.value).lower().endswith("poster")):
            found.append(f"{node.lineno}: {_receiver(func.value)}.{func.attr}()")
        elif isinstance(func, ast.Name) and func.id == "say":
            found.append(f"{node.lineno}: say()")  # Bolt's `say` is chat.postMessage without an id
        elif isinstance(func, ast.Name) and func.id in ("SlackPoster", "ConsolePoster"):
            found.append(f"{node.lineno}: {func.id}()")
    return found


def sources() -> dict[str, str]:
    paths = list((ROOT / "bot").rglob("*.py")) + list((ROOT / "handlers").rglob("*.py"))
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


@pytest.mark.slow
def test_nothing_outside_the_one_path_posts_edits_or_uploads():
    found = {}
    for name, source in sources().items():
        if name in THE_PATH:
            continue
        bad = [o for o in offences(source)
               if not (name in RAW_POSTER_BUILT_IN and o.endswith(("SlackPoster()", "ConsolePoster()")))]
        if bad:
            found[name] = bad
    assert found == {}, "post through bot.core.deliver (Deliveries.now/send/edit, or the outbox): " + repr(found)


def test_the_check_sees_each_way_around_the_path():
    planted = """
def f(ctx, client, say, self):
    client.chat_postMessage(channel="C1", text="x")
    ctx.web.chat_update(channel="C1", ts="1", text="y")
    self.slack.files_upload_v2(channel="C1", content=b"")
    ctx.poster.post("C1", "z")
    self.poster.update("C1", "1", "z")
    say("hello")
    SlackPoster(client).post("C1", "w")
    respond("the answer to the person who acted")
    client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    ctx.deliveries.now("id", "C1", "fine")
"""
    assert [o.split(": ")[1] for o in offences(planted)] == [
        ".chat_postMessage()", ".chat_update()", ".files_upload_v2()", "poster.post()", "poster.update()", "say()",
        "SlackPoster()"]


def test_the_path_marks_every_post_with_its_delivery_id():
    """The one `chat_postMessage` carries metadata: what the history lookup finds a lost post by."""
    tree = ast.parse((ROOT / "bot/core/slack.py").read_text())
    posts = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "chat_postMessage"]
    assert len(posts) == 1 and "metadata" in {k.arg for k in posts[0].keywords}
