"""The sign-in message's buttons: the link to the Hub's page (Slack opens it), and "I've approved it"."""

from __future__ import annotations

from bot.commands.grammar import Command
from bot.core.permissions import Actor
from bot.signin.words import CHECK_ACTION, OPEN_ACTION
from handlers.approvals import team_of
from handlers.replies import submit


def register(app, ctx) -> None:
    @app.action(OPEN_ACTION)
    def open_link(ack):
        ack()  # a link button: Slack opens the Hub's verification page; nothing to do but acknowledge

    @app.action(CHECK_ACTION)
    def check(ack, body, action):
        ack()
        # Run as a command, so it passes the same gate; the sign-in it names must be the clicker's own.
        cmd = Command("login.check", request_id=str(action.get("value") or "")[:64])
        actor = Actor(user=(body.get("user") or {}).get("id", ""), channel=(body.get("channel") or {}).get("id", ""),
                      team=team_of(body))
        submit(ctx, lambda: ctx.ops.run(cmd, actor), body.get("response_url", ""), "sign-in check", replace=False)
