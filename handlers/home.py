"""The App Home tab and the fleet's buttons: publish on `app_home_opened`, page, and act from the dashboard.

Dashboard buttons run as commands (`ctx.ops.run`), through the same gate and cost gates; the outcome goes
to the user's messages with the bot (once: a followed change is announced there by the follow-through
already), and the Home is published again. Approve/Deny clicked on the Home are matched here first (their
container is a view, not a message), pass the same click check as on the request's own message, and are
decided by the approvals feature. Every job here logs its exceptions.
"""

from __future__ import annotations

import logging
import re

from bot.approvals.words import APPROVE_ACTION, DENY_ACTION
from bot.commands.grammar import Command, parse_space
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import state_errors
from bot.core.words import error_reply
from bot.fleet.words import BUDGET_ACTIONS, HOME_ACTIONS
from handlers.approvals import team_of
from handlers.replies import submit

log = logging.getLogger(__name__)

HOME_COMMANDS = {
    HOME_ACTIONS["restart"]: lambda space: Command("restart", space=space),
    HOME_ACTIONS["pause"]: lambda space: Command("pause", space=space),
    HOME_ACTIONS["resume"]: lambda space: Command("resume", space=space),
    HOME_ACTIONS["sleep"]: lambda space: Command("sleep", space=space, seconds=3600),
}


def _user(body: dict) -> str:
    return (body.get("user") or {}).get("id", "")


def _from_home(body: dict) -> bool:
    return (body.get("container") or {}).get("type") == "view"


def logged(what: str, job):
    """A job for the pool whose exceptions are logged (the pool's futures are never looked at)."""
    def run() -> None:
        try:
            job()
        except Exception:  # noqa: BLE001 — a bug in a button's job: logged, the next click tries again
            log.exception("%s failed", what)
    return run


def register(app, ctx) -> None:
    fleet = ctx.fleet

    def publish(user: str, page: int = 0, opened: bool = False, team: str = "") -> None:
        try:
            fleet.publish_home(user, page, opened=opened, team=team)
        except Exception:  # noqa: BLE001 — a failed publish is logged; the next open or change retries
            log.exception("App Home not published for %s", user)

    @app.event("app_home_opened")
    def home_opened(event, body):
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        ctx.pool.submit(publish, event["user"], 0, True, str(body.get("team_id") or ""))

    def page(ack, body, action):
        ack()
        raw = str(action.get("value") or "0")
        ctx.pool.submit(publish, _user(body), int(raw) if raw.isascii() and raw.isdigit() else 0, False,
                        team_of(body))

    app.action(HOME_ACTIONS["page"])(page)
    app.action(HOME_ACTIONS["next"])(page)  # "Next" beside "Previous": one block, so an action id of its own

    @app.action(re.compile(r"^home:open:"))
    def open_link(ack):
        ack()  # a link button: Slack opens the URL; nothing to do but acknowledge

    def run_from_home(make):
        def clicked(ack, body, action):
            ack()
            try:
                cmd = make(parse_space(str(action.get("value") or "")))
            except BadInput:
                return
            # The Home is the user's own place: its answers go to their DM with the bot.
            actor = Actor(user=_user(body), channel=_user(body), team=team_of(body))
            click = _click(body)

            def work():
                reply = ctx.ops.run(cmd, actor)
                if not reply.posted:  # a followed change was announced in this DM already (and is edited)
                    # A DM named by the click (its trigger): posted once, looked for after a lost answer.
                    ctx.watcher.deliveries.now(f"home:{click}", actor.user, reply.text, reply.blocks)
                publish(actor.user, team=actor.team)
            ctx.pool.submit(logged(f"home button {cmd.name}", work))
        return clicked

    for action_id, make in HOME_COMMANDS.items():
        app.action(action_id)(run_from_home(make))

    def decide_from_home(decide):
        def clicked(ack, body, action):
            ack()
            request_id, user, team = str(action.get("value") or ""), _user(body), team_of(body)
            click = _click(body)

            def work():
                try:
                    with state_errors():
                        request = ctx.approvals.store.get(request_id)
                        # The Home's button stands for the request's own message, so the same checks apply:
                        # the click check of that message's place (workspace, scope), then the approver's.
                        channel, ts = (request.channel, request.ts) if request else ("", "")
                        if ctx.access is not None:
                            ctx.access.check_click(Actor(user, channel, team), request.space if request else None)
                        reply = decide(request_id, user, channel, ts)
                except SpaceOpsError as err:
                    reply = error_reply(err.sentence)
                ctx.watcher.deliveries.now(f"home:{click}", user, reply.text, reply.blocks)
                publish(user, team=team)
            ctx.pool.submit(logged(f"home {decide.__name__}", work))
        return clicked

    app.action(APPROVE_ACTION, matchers=[_from_home])(decide_from_home(ctx.approvals.approve))
    app.action(DENY_ACTION, matchers=[_from_home])(decide_from_home(ctx.approvals.deny))

    @app.action(BUDGET_ACTIONS["pause"])
    def budget_pause(ack, body, action):
        ack()
        try:
            cmd = Command("pause", space=parse_space(str(action.get("value") or "")))
        except BadInput:
            return
        actor = Actor(user=_user(body), channel=(body.get("channel") or {}).get("id", ""), team=team_of(body))
        submit(ctx, lambda: _private(ctx.ops.run(cmd, actor)), body.get("response_url", ""), "budget pause")


def _click(body: dict) -> str:
    """What names one click: its trigger id (unique per interaction), else the action's own timestamp."""
    actions = body.get("actions") or [{}]
    return str(body.get("trigger_id") or f"{_user(body)}:{actions[0].get('action_ts', '')}")


def _private(reply):
    reply.public = False
    return reply
