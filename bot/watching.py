"""Watches and stage-change alerts (filled in by the alerts feature)."""

from __future__ import annotations


def register(ctx) -> None:
    """Hook watch commands into `ctx.ops`."""


def start_scheduler(ctx) -> None:
    """Start the poller in this process (serve/socket/worker)."""
