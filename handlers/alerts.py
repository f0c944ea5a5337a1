"""Buttons on alerts: Restart, Resume, Set 1 h sleep. They run as commands, under the same permission rules."""

from __future__ import annotations

import dataclasses

from bot.alerts.buttons import ALERT_COMMANDS
from bot.commands.grammar import parse_space
from bot.core.errors import BadInput
from bot.core.permissions import Actor
from handlers.approvals import team_of
from handlers.replies import submit

COMMANDS = ALERT_COMMANDS


def register(app, ctx) -> None:
    for action_id, make in COMMANDS.items():
        app.action(action_id)(_clicked(ctx, make))


def _clicked(ctx, make):
    def clicked(ack, body, action):
        ack()
        try:
            cmd = make(parse_space(str(action.get("value") or "")))  # a forged payload may send any JSON
        except BadInput:
            return  # not a value we put on a button
        actor = Actor(user=(body.get("user") or {}).get("id", ""),
                      channel=(body.get("channel") or {}).get("id", ""),
                      team=team_of(body))
        # Whoever clicked hears back privately; the alert itself stays as it is.
        submit(ctx, lambda: dataclasses.replace(ctx.ops.run(cmd, actor), public=False, posted=False),
               body.get("response_url", ""), f"alert button {cmd.name}", replace=False)
    return clicked
