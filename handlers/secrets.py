"""The secret modal's submission: the value goes to the Hub and nowhere else."""

from __future__ import annotations

import json
import logging
import re

from bot.commands.grammar import parse_space
from bot.core.errors import BadInput
from bot.core.permissions import Actor
from handlers.commands import SECRET_CALLBACK
from handlers.replies import submit

log = logging.getLogger(__name__)
MAX_SECRET = 64 * 1024
SECRET_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # what the command accepted when it opened the modal


def typed(values, block: str) -> str:
    """The text typed in one input block (block and action share its name); "" for anything else."""
    entry = values.get(block) if isinstance(values, dict) else None
    entry = entry.get(block) if isinstance(entry, dict) else None
    value = entry.get("value") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else ""


def register(app, ctx) -> None:
    @app.view(SECRET_CALLBACK)
    def secret_submitted(ack, body, view):
        state = view.get("state")
        values = state.get("values") if isinstance(state, dict) else None
        value, description = typed(values, "value"), typed(values, "description")
        if not value.strip():
            ack(response_action="errors", errors={"value": "Enter the secret's value."})
            return
        if len(value) > MAX_SECRET:
            ack(response_action="errors", errors={"value": "That value is too long (64 KB at most)."})
            return
        try:
            # Our own modal wrote this, but a forged submission can put anything here.
            meta = json.loads(view.get("private_metadata") or "{}")
            space, key = parse_space(str(meta["space"])), str(meta["key"])
            if not SECRET_KEY.match(key):
                raise ValueError(key)
        except (ValueError, KeyError, TypeError, BadInput):
            ack(response_action="errors", errors={"value": "This form is out of date: run the command again."})
            return
        ack()
        actor = Actor(user=(body.get("user") or {}).get("id", ""), channel=str(meta.get("channel", "")),
                      team=(body.get("team") or {}).get("id", ""))
        submit(ctx, lambda: ctx.ops.run_secret_set(space, key, value, actor, description),
               meta.get("response_url", ""), "secret.set")
