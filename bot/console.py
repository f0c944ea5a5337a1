"""`python -m bot console`: type `/space …` and read the reply as text, no Slack needed.

The console is a surface like Slack: the same wiring (`build_context`) and the same gate. Commands go
through `ops.run`; a pressed button passes the same checks as its Slack listener (an approval's click
check, then the approvals flow; an alert's button runs its command)."""

from __future__ import annotations

import getpass
import re
import sys
import threading

from bot.approvals.words import APPROVE_ACTION, DENY_ACTION
from bot.commands.grammar import Command, parse_command, parse_space
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import state_errors
from bot.core.render import PLAIN, TERMINAL, Style, render
from bot.core.words import error_reply
from bot.signin.words import CHECK_ACTION
from bot.alerts.buttons import ALERT_COMMANDS as ALERT_BUTTONS  # what an alert's buttons run, as in Slack

PROMPT = "space-ops> "


BUTTON = re.compile(r"^\[([^\]]+)\]\s*(\S*)\s*$")
AS_USER = re.compile(r"^/?as\s+@?([A-Za-z0-9._-]+)\s*$")


class Screen:
    """The console's terminal: replies after the prompt, and messages that arrive on their own (an alert, an
    edit, a follow-through) drawn above a fresh prompt, so the prompt is always the last line."""

    def __init__(self, out, interactive: bool):
        self.out = out
        self.interactive = interactive
        self.prompt_text = ""
        self.waiting = False  # the prompt is the last thing shown, waiting for a line
        self._lock = threading.Lock()

    def prompt(self, text: str) -> None:
        with self._lock:
            self.prompt_text = text
            if self.interactive:
                self.out.write(text)
                self.out.flush()
            self.waiting = True

    def answered(self) -> None:
        """A line was read: what follows is its reply."""
        with self._lock:
            self.waiting = False

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def message(self, text: str) -> None:
        """A message the bot posted or edited meanwhile."""
        with self._lock:
            if self.waiting and self.interactive:
                # Clear the prompt line, show the message, then the prompt again (with what was typed so far).
                self.out.write("\r\033[K" + text + "\n\n" + self.prompt_text + _typed())
            else:
                self.out.write("\n" + text + "\n\n")
            self.out.flush()


def _typed() -> str:
    """What was typed at the prompt so far, when the terminal has line editing (readline)."""
    module = sys.modules.get("readline")
    try:
        return module.get_line_buffer() if module is not None else ""
    except Exception:  # noqa: BLE001 — a line editor without a buffer: the prompt alone
        return ""


def press(ctx, label: str, value: str, actor: Actor, style: Style = PLAIN) -> str:
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
    return reader_text(reply, actor, style)


def reader_text(reply, actor: Actor, style: Style = PLAIN) -> str:
    """A reply as its reader sees it; one posted in the channel is labelled like every channel post."""
    if reply.posted:
        return ""  # the console poster showed the announcement already
    where = f"[#{actor.channel}] " if reply.public else ""
    return where + render(reply.text, reply.blocks, style)


def answer(ctx, line: str, actor: Actor, read_secret=getpass.getpass, style: Style = PLAIN) -> str:
    """One console line → the text a Slack user would read."""
    text = line.strip()
    button = BUTTON.match(text)
    if button:
        return press(ctx, button.group(1).strip(), button.group(2), actor, style)
    if text.startswith("/space"):
        text = text[len("/space"):]
    try:
        cmd = parse_command(text, ctx.ops.catalogue)
    except BadInput as err:
        return reader_text(error_reply(err.sentence), actor, style)
    if cmd.name == "secret.set":
        value = read_secret(f"value for {cmd.key} (not echoed): ")
        reply = ctx.ops.run_secret_set(cmd.space, cmd.key, value, actor)
    else:
        reply = ctx.ops.run(cmd, actor)
    return reader_text(reply, actor, style)


def banner(endpoint: str, user: str) -> str:
    return (f"Space Ops console against {endpoint}. Type `/space help`; `as alice` acts as @alice (Slack knows who "
            f"clicks, the console is told), `as {user}` switches back; Ctrl-D quits.")


def main(ctx, stdin=sys.stdin, stdout=sys.stdout, user: str = "console", style: Style | None = None) -> int:
    actor = Actor(user=user, channel="console")
    interactive = stdin.isatty()
    tty = getattr(stdout, "isatty", None)
    style = style or (TERMINAL if interactive and tty is not None and tty() else PLAIN)
    screen = Screen(stdout, interactive)
    if hasattr(ctx.poster, "screen"):
        ctx.poster.screen = screen  # messages posted meanwhile redraw the prompt
        ctx.poster.style = style
    if interactive:
        screen.say(banner(ctx.settings.hf_endpoint, user))
    try:
        while True:
            screen.prompt(PROMPT if actor.user == user else f"space-ops (@{actor.user})> ")
            line = stdin.readline()
            screen.answered()
            if not line:
                return 0
            if not line.strip():
                continue
            switch = AS_USER.match(line.strip())
            if switch:
                # Slack knows who clicked; the console is told: `as alice`, then `[Approve] ID` is alice's click.
                actor = Actor(user=switch.group(1), channel="console")
                screen.say(f"You are now @{actor.user}." + (f" `as {user}` switches back." if actor.user != user
                                                            else ""))
                continue
            text = answer(ctx, line, actor, style=style)
            if text:
                screen.say(text)
    finally:
        if hasattr(ctx.poster, "screen"):
            ctx.poster.screen = None
