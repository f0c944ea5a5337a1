"""The `/space` slash command: parse and ack at once, then run on the work pool and respond."""

from __future__ import annotations

import json
import logging

from bot.commands.grammar import parse_command
from bot.commands.words import secret_modal
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.permissions import Actor
from bot.core.words import error_reply
from handlers.replies import submit

log = logging.getLogger(__name__)
SECRET_CALLBACK = "secret_set"


def actor_of(command: dict) -> Actor:
    return Actor(user=command.get("user_id", ""), channel=command.get("channel_id", ""),
                 team=command.get("team_id", ""))


def register(app, ctx) -> None:
    @app.command("/space")
    def space_command(ack, command, client):
        try:
            cmd = parse_command(command.get("text", ""), ctx.ops.catalogue)
        except BadInput as err:
            reply = error_reply(err.sentence)
            ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
            return
        actor = actor_of(command)
        if cmd.name == "secret.set":
            open_secret_modal(ack, client, ctx, cmd, actor, command)
            return
        ack()
        submit(ctx, lambda: ctx.ops.run(cmd, actor), command.get("response_url", ""), cmd.name)


def open_secret_modal(ack, client, ctx, cmd, actor, command) -> None:
    # trigger_id is only valid for 3 s: the permission check and views.open happen here, not on the pool.
    try:
        ctx.ops.check(cmd, actor)  # the same checks as every command: roles, channel scope, workspace, guests
    except SpaceOpsError as err:
        reply = error_reply(err.sentence)
        ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
        return
    ack()
    metadata = json.dumps({"space": cmd.space, "key": cmd.key, "channel": actor.channel,
                           "response_url": command.get("response_url", "")})
    client.views_open(trigger_id=command["trigger_id"],
                      view=secret_modal(cmd.space, cmd.key, SECRET_CALLBACK, metadata))
