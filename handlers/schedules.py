"""Buttons on a timed upgrade's reminder: Extend 1 h and Revert now, under the usual roles."""

from __future__ import annotations

from bot.core.errors import SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import state_errors
from bot.core.words import error_reply
from bot.schedules.words import EXTEND_ACTION, REVERT_ACTION
from handlers.approvals import team_of
from handlers.replies import submit


def register(app, ctx) -> None:
    schedules = ctx.schedules

    def on_click(act, what: str):
        def listener(ack, body, action):
            ack()
            timed_id = str(action.get("value") or "")[:16]
            actor = Actor(user=(body.get("user") or {}).get("id", ""),
                          channel=(body.get("channel") or {}).get("id", ""),
                          team=team_of(body))  # the clicker's own workspace (Slack Connect), as every button

            def work():
                try:
                    with state_errors():
                        return act(timed_id, actor)
                except SpaceOpsError as err:
                    return error_reply(err.sentence)

            submit(ctx, work, body.get("response_url", ""), what)
        return listener

    app.action(EXTEND_ACTION)(on_click(schedules.extend_clicked, "timed.extend"))
    app.action(REVERT_ACTION)(on_click(schedules.revert_clicked, "timed.revert"))
