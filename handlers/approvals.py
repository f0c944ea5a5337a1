"""Approve / Deny buttons: ack at once, decide on the work pool, answer the clicker ephemerally."""

from __future__ import annotations

from bot.approvals.words import APPROVE_ACTION, DENY_ACTION
from bot.core.errors import SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import state_errors
from bot.core.words import error_reply
from handlers.replies import submit


def clicked(body: dict) -> tuple[str, str, str, str]:
    """(request id, user, channel, message ts) from a block_actions payload."""
    action = (body.get("actions") or [{}])[0]
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return str(action.get("value") or ""), (body.get("user") or {}).get("id", ""), channel, ts


def team_of(body: dict) -> str:
    """The clicking user's own workspace (Slack Connect: not the channel's), else the payload's team."""
    return (body.get("user") or {}).get("team_id") or (body.get("team") or {}).get("id", "")


def register(app, ctx) -> None:
    approvals = ctx.approvals

    def on_click(decide, what: str):
        def listener(ack, body):
            ack()
            request_id, user, channel, ts = clicked(body)
            actor = Actor(user=user, channel=channel, team=team_of(body))

            def work():
                try:
                    with state_errors():
                        if ctx.access is not None:  # the workspace boundary and the channel's scope
                            request = approvals.store.get(request_id)
                            ctx.access.check_click(actor, request.space if request else None)
                        return decide(request_id, user, channel, ts)
                except SpaceOpsError as err:
                    return error_reply(err.sentence)

            submit(ctx, work, body.get("response_url", ""), what, replace=False)
        return listener

    app.action(APPROVE_ACTION)(on_click(approvals.approve, "approval.approve"))
    app.action(DENY_ACTION)(on_click(approvals.deny, "approval.deny"))
