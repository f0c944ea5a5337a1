"""Link previews (`link_shared` → `chat.unfurl`), their buttons, and the Workflow Builder steps
(`app.function`). Each asks the gate through `ctx.previews` / `ctx.steps`; none decides on its own.

`chat.unfurl` is the direct answer to the event that asked for it (like an ack or `respond()`): it goes
out here, not through `bot.core.deliver`, which is for what the bot posts on its own."""

from __future__ import annotations

import dataclasses
import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.commands.grammar import LOG_LINES_DEFAULT, Command, parse_space
from bot.core.blocks import MESSAGE_BLOCKS, within
from bot.core.errors import BadInput
from bot.core.permissions import Actor
from bot.core.words import busy_reply, not_shown_in_view
from bot.core.work import PoolFull
from bot.surfaces.steps import STEPS, Outcome
from bot.surfaces.words import LOGS_ACTION, PREVIEW_STATUS_ACTION
from handlers.approvals import team_of
from handlers.replies import submit

log = logging.getLogger(__name__)
UNFURL_SECONDS = 5.0
STEP_BUG = "Space Ops hit an unexpected error running this step; nothing more was done. The logs have the details."


def register(app, ctx) -> None:
    @app.event("link_shared")
    def link_shared(event, body):
        actor = Actor(user=str(event.get("user") or ""), channel=str(event.get("channel") or ""),
                      team=str(body.get("team_id") or ""))
        urls = [str(link.get("url") or "") for link in event.get("links") or [] if isinstance(link, dict)]
        try:
            ctx.pool.submit(_unfurl, ctx, actor, urls, event)
        except PoolFull:
            log.warning("work pool full: link previews skipped")  # a preview is a nicety: none this time

    # The preview's Status and Logs buttons answer as `/space status` and `/space logs` would, privately.
    app.action(PREVIEW_STATUS_ACTION)(_status_clicked(ctx, "status"))
    app.action(LOGS_ACTION)(_status_clicked(ctx, "logs"))

    for callback in STEPS:
        app.function(callback)(_step(ctx, callback))


def _unfurl(ctx, actor: Actor, urls: list[str], event: dict) -> None:
    unfurls = ctx.previews.unfurls(actor, urls)
    if not unfurls or ctx.client is None:
        return
    where = {"ts": event["message_ts"]} if event.get("message_ts") else \
        {"unfurl_id": event.get("unfurl_id", ""), "source": event.get("source", "composer")}
    unfurls = {url: {**unfurl, "blocks": within(unfurl.get("blocks"), MESSAGE_BLOCKS, not_shown_in_view)}
               if unfurl.get("blocks") else unfurl for url, unfurl in unfurls.items()}
    client = WebClient(token=ctx.client.token, base_url=ctx.client.base_url, timeout=UNFURL_SECONDS,
                       headers=ctx.client.headers)
    try:
        client.chat_unfurl(channel=actor.channel, unfurls=unfurls, **where)
    except SlackApiError as err:
        log.warning("Slack refused chat.unfurl: %s", err.response.get("error"))
    except (SlackClientError, OSError) as err:
        log.warning("chat.unfurl failed: %s", type(err).__name__)  # a preview is not retried: the link stays


def _status_clicked(ctx, name: str):
    def clicked(ack, body, action):
        ack()
        try:
            space = parse_space(str(action.get("value") or ""))
        except BadInput:
            return  # not a value we put on a button
        actor = Actor(user=(body.get("user") or {}).get("id", ""), channel=(body.get("channel") or {}).get("id", ""),
                      team=team_of(body))
        submit(ctx, lambda: dataclasses.replace(ctx.ops.run(_button_command(name, space), actor), public=False,
                                                posted=False),
               body.get("response_url", ""), "preview status", replace=False)
    return clicked


def _step(ctx, callback: str):
    def step(event, body):
        execution = str(event.get("function_execution_id") or "")
        inputs = event.get("inputs") or {}
        team = str(body.get("team_id") or "")

        def work() -> None:
            try:
                outcome = ctx.steps.run(callback, execution, inputs, team)
            except Exception:  # noqa: BLE001 — a bug fails the step with a sentence, never leaves it hanging
                log.exception("workflow step %s failed unexpectedly", callback)
                outcome = Outcome(error=STEP_BUG)
            ctx.steps.finish(execution, outcome)
        try:
            ctx.pool.submit(work)
        except PoolFull:
            ctx.steps.finish(execution, Outcome(error=busy_reply().text.removeprefix(":warning:").strip()))
    step.__name__ = f"step_{callback}"
    return step


def _button_command(name: str, space: str) -> Command:
    """What a preview button runs: the command as typed with its defaults (`logs`: the last 30 run lines)."""
    if name == "logs":
        return Command("logs", space=space, lines=LOG_LINES_DEFAULT)
    return Command(name, space=space)
