"""The secret modal's submission: the value goes to the Hub and nowhere else."""

from __future__ import annotations

import json
import logging

from bot.grammar import parse_space
from bot.operations import Actor
from handlers.commands import SECRET_CALLBACK
from handlers.replies import submit

log = logging.getLogger(__name__)
MAX_SECRET = 64 * 1024


def register(app, ctx) -> None:
    @app.view(SECRET_CALLBACK)
    def secret_submitted(ack, body, view):
        values = view.get("state", {}).get("values", {})
        value = ((values.get("value") or {}).get("value") or {}).get("value") or ""
        description = ((values.get("description") or {}).get("description") or {}).get("value") or ""
        if not value.strip():
            ack(response_action="errors", errors={"value": "Enter the secret's value."})
            return
        if len(value) > MAX_SECRET:
            ack(response_action="errors", errors={"value": "That value is too long (64 KB at most)."})
            return
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            space, key = parse_space(meta["space"]), meta["key"]
        except (ValueError, KeyError, TypeError):
            ack(response_action="errors", errors={"value": "This form is out of date: run the command again."})
            return
        ack()
        actor = Actor(user=body.get("user", {}).get("id", ""), channel=meta.get("channel", ""),
                      team=body.get("team", {}).get("id", ""))
        submit(ctx, lambda: ctx.ops.run_secret_set(space, key, value, actor, description),
               meta.get("response_url", ""), "secret.set")
