"""Slack listeners: one module per kind of interaction, each with `register(app, ctx)`."""

from __future__ import annotations

from slack_bolt import App

from handlers import alerts, approvals, commands, dedupe, home, schedules, secrets, signin, surfaces


def register_all(app: App, ctx) -> None:
    dedupe.register(app, ctx)
    commands.register(app, ctx)
    secrets.register(app, ctx)
    home.register(app, ctx)  # before approvals: Approve/Deny clicked on the App Home are matched there first
    approvals.register(app, ctx)
    alerts.register(app, ctx)
    schedules.register(app, ctx)
    surfaces.register(app, ctx)
    signin.register(app, ctx)
