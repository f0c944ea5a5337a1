"""Slack may deliver one request twice (event retries, Socket Mode redelivery): run it once."""

from __future__ import annotations

from slack_bolt import BoltResponse


def delivery_id(body: dict) -> str | None:
    """The id Slack keeps across redeliveries of the same request."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def register(app, ctx) -> None:
    @app.middleware
    def run_once(body, next):  # noqa: A002 — Bolt injects by this name
        key = delivery_id(body)
        if key and not ctx.store.once(key, ttl=3600):
            return BoltResponse(status=200, body="")
        return next()
