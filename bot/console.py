"""`python -m bot console`: type `/space …` and read the reply as text, no Slack needed.

The console is a surface like Slack: the same wiring (`build_context`) and the same gate. Commands go
through `ops.run`; a pressed button passes the same checks as its Slack listener (an approval's click
check, then the approvals flow; an alert's button runs its command)."""

from __future__ import annotations

import getpass
import re
import sys

from bot.approvals.words import APPROVE_ACTION, DENY_ACTION
from bot.commands.grammar import Command, parse_command, parse_space
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import state_errors
from bot.core.words import as_text, error_reply
from bot.signin.words import CHECK_ACTION
from bot.alerts.buttons import ALERT_COMMANDS as ALERT_BUTTONS  # what an alert's buttons run, as in Slack

PROMPT = "space-ops> "


BUTTON = re.compile(r"^\[([^\]]+)\]\s*(\S*)\s*$")
AS_USER = re.compile(r"^/?as\s+@?([A-Za-z0-9._-]+)\s*$")


def press(ctx, label: str, value: str, actor: Actor) -> str:
    """`[Approve] ID` → what clicking that button in Slack does, as the console's user."""
    shown = getattr(ctx.poster, "buttons", {})
    found = [(channel, ts, element) for (channel, ts), elements in shown.items() for element in elements
             if element["text"]["text"].lower() == label.lower() and str(element.get("value", "")).startswith(value)]
    if not found:
        return f"No [{label}] button{' for ' + value if value else ''} is showing."
    if len({element.get("value") for _, _, element in found}) > 1 and not value:
        return f"Several [{label}] buttons are showing; say which: [{label}] ID"
    channel, ts, element = found[-1]
    action, target = element["action_id"], str(element.get("value", ""))
    clicker = Actor(actor.user, channel, actor.team)
    try:
        with state_errors():
            if action in (APPROVE_ACTION, DENY_ACTION) and getattr(ctx, "access", None) is not None:
                request = ctx.approvals.store.get(target)
                ctx.access.check_click(clicker, request.space if request else None)  # as the Slack listener
            if action == APPROVE_ACTION:
                reply = ctx.approvals.approve(target, actor.user, channel, ts)
            elif action == DENY_ACTION:
                reply = ctx.approvals.deny(target, actor.user, channel, ts)
            elif action in ALERT_BUTTONS:
                reply = ctx.ops.run(ALERT_BUTTONS[action](parse_space(target)), clicker)
            elif action == CHECK_ACTION:  # "I've approved it", as the Slack listener runs it
                reply = ctx.ops.run(Command("login.check", request_id=target), clicker)
            else:
                return f"The console cannot press [{label}]."
    except SpaceOpsError as err:
        reply = error_reply(err.sentence)
    return as_text(reply.text, reply.blocks)


def answer(ctx, line: str, actor: Actor, read_secret=getpass.getpass) -> str:
    """One console line → the text a Slack user would read."""
    text = line.strip()
    button = BUTTON.match(text)
    if button:
        return press(ctx, button.group(1).strip(), button.group(2), actor)
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


def main(ctx, stdin=sys.stdin, stdout=sys.stdout, user: str = "console") -> int:
    actor = Actor(user=user, channel="console")
    interactive = stdin.isatty()
    if interactive:
        print(f"Space Ops console against {ctx.settings.hf_endpoint}. Type `/space help`, Ctrl-D to quit.",
              file=stdout)
    while True:
        if interactive:
            print(PROMPT if actor.user == "console" else f"space-ops (@{actor.user})> ", end="", file=stdout,
                  flush=True)
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        switch = AS_USER.match(line.strip())
        if switch:
            # Slack knows who clicked; the console is told: `as alice`, then `[Approve] ID` is alice's click.
            actor = Actor(user=switch.group(1), channel="console")
            print(f"You are now @{actor.user}.", file=stdout, flush=True)
            continue
        print(answer(ctx, line, actor), file=stdout, flush=True)
