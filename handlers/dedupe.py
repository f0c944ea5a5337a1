"""Slack may deliver one request twice (event retries, Socket Mode redelivery): run it once.

Every request is claimed by its delivery id before its listener runs, except a `/space` command: its ack
is the same empty 200 whether it is a first delivery or a repeat, so it is claimed where its work starts
(on the work pool, handlers/replies.py; before the form opens for `secret set`), and its ack waits for no
Redis round trip (bench/ack.py, issue #22)."""

from __future__ import annotations

from slack_bolt import BoltResponse

TTL = 3600  # Slack retries within minutes; a replayed signature is refused after 5


def delivery_id(body: dict) -> str | None:
    """The id Slack keeps across redeliveries of the same request."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def claimed_later(body: dict) -> bool:
    """A `/space` command: claimed where its work starts, not before its ack."""
    return body.get("command") == "/space"


def register(app, ctx) -> None:
    @app.middleware
    def run_once(body, next):  # noqa: A002 — Bolt injects by this name
        key = delivery_id(body)
        if key and not claimed_later(body) and not ctx.store.once(key, ttl=TTL):
            return BoltResponse(status=200, body="")
        return next()
