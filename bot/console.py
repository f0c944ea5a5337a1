"""`python -m bot console`: type `/space …` and read the reply as text, no Slack needed."""

from __future__ import annotations

import getpass
import sys

from bot.commands.grammar import parse_command
from bot.core.errors import BadInput
from bot.core.permissions import Actor
from bot.core.words import as_text, error_reply

PROMPT = "space-ops> "


def answer(ctx, line: str, actor: Actor, read_secret=getpass.getpass) -> str:
    """One console line → the text a Slack user would read."""
    text = line.strip()
    if text.startswith("/space"):
        text = text[len("/space"):]
    try:
        cmd = parse_command(text, ctx.ops.catalogue)
    except BadInput as err:
        reply = error_reply(err.sentence)
        return as_text(reply.text, reply.blocks)
    if cmd.name == "secret.set":
        value = read_secret(f"value for {cmd.key} (not echoed): ")
        reply = ctx.ops.run_secret_set(cmd.space, cmd.key, value, actor)
    else:
        reply = ctx.ops.run(cmd, actor)
    if reply.posted:
        return ""  # the console poster printed the announcement already
    where = "[in channel] " if reply.public else ""
    return where + as_text(reply.text, reply.blocks)


def main(ctx, stdin=sys.stdin, stdout=sys.stdout) -> int:
    actor = Actor(user="console", channel="console")
    interactive = stdin.isatty()
    if interactive:
        print(f"Space Ops console against {ctx.settings.hf_endpoint}. Type `/space help`, Ctrl-D to quit.",
              file=stdout)
    while True:
        if interactive:
            print(PROMPT, end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        print(answer(ctx, line, actor), file=stdout, flush=True)
