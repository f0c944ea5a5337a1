"""The `/space` slash command: parse and ack at once, then run on the work pool and respond."""

from __future__ import annotations

import json
import logging
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.commands.grammar import parse_command
from bot.commands.words import secret_modal
from bot.core.blocks import fit_view
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.permissions import Actor
from bot.core.words import busy_reply, error_reply, not_shown_in_view
from handlers.dedupe import TTL as DEDUPE_TTL, delivery_id
from handlers.replies import deliver, submit

log = logging.getLogger(__name__)
SECRET_CALLBACK = "secret_set"
MODAL_SECONDS = 1.8  # trigger_id lives 3 s: views.open gets what is left after the ack, not the client's 10 s
ROLE_SECONDS = 1.0  # the role check before the ack; then views.open gets MODAL_SECONDS
ROLE_UNCHECKED = ("Your role could not be checked in time (Slack did not list a user group's members); nothing "
                  "was changed. Try again in a minute.")
MODAL_FAILED = ("The private form for the secret could not be opened (Slack did not take it in time); nothing "
                "was changed. Run the command again.")


def actor_of(command: dict) -> Actor:
    return Actor(user=command.get("user_id", ""), channel=command.get("channel_id", ""),
                 team=command.get("team_id", ""))


def register(app, ctx) -> None:
    @app.command("/space")
    def space_command(ack, command, client):
        try:
            cmd = parse_command(command.get("text", ""), lambda: ctx.ops.catalogue)  # read only for a flavor
        except BadInput as err:
            reply = error_reply(err.sentence)
            ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
            return
        actor = actor_of(command)
        # The delivery id is claimed where something would happen (handlers/dedupe.py): a parse error or a
        # busy answer runs nothing, and the ack of a queued command is the same for a repeat.
        claim = delivery_id(command)
        if cmd.name == "secret.set":
            if claim and not ctx.store.once(claim, ttl=DEDUPE_TTL):
                ack()  # a repeat: the first delivery opens the form
                return
            open_secret_modal(ack, client, ctx, cmd, actor, command)
            return
        if ctx.pool.full():
            reply = busy_reply()
            ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
            return
        ack()
        submit(ctx, lambda: ctx.ops.run(cmd, actor), command.get("response_url", ""), cmd.name, claim=claim)


def open_secret_modal(ack, client, ctx, cmd, actor, command) -> None:
    # trigger_id is only valid for 3 s: the permission check and views.open happen here, not on the pool,
    # each with a deadline (resolving a role's user group asks Slack, which may hang). The same checks as
    # every command: roles, channel scope, workspace, guests.
    refusal = within(ROLE_SECONDS, lambda: ctx.ops.check(cmd, actor))
    if refusal is not None:
        reply = error_reply(refusal)
        ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
        return
    ack()
    metadata = json.dumps({"space": cmd.space, "key": cmd.key, "channel": actor.channel,
                           "response_url": command.get("response_url", "")})
    try:
        answer = short_deadline(client).views_open(trigger_id=command.get("trigger_id", ""),
                                                   view=fit_view(secret_modal(cmd.space, cmd.key, SECRET_CALLBACK,
                                                                             metadata), not_shown_in_view))
        opened = bool(answer.get("ok"))
    except (SlackApiError, SlackClientError, OSError) as err:
        log.warning("views.open failed: %s", type(err).__name__)
        opened = False
    if not opened:
        deliver(command.get("response_url", ""), error_reply(MODAL_FAILED), slack_api_url=ctx.settings.slack_api_url)


def within(seconds: float, check) -> str | None:
    """Run a permission check for at most `seconds`: None when it passed, else the sentence to show.
    A check still running at the deadline goes on in the background (it fills the group cache)."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            check()
            outcome.append(None)
        except SpaceOpsError as err:
            outcome.append(err.sentence)

    thread = threading.Thread(target=run, daemon=True, name="spaceops-role-check")
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else ROLE_UNCHECKED


def short_deadline(client: WebClient) -> WebClient:
    """The same client with a deadline that fits in what is left of trigger_id's 3 seconds, no retries."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=MODAL_SECONDS, headers=client.headers,
                     retry_handlers=[])
