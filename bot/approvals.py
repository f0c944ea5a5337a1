"""Paid hardware approvals (filled in by the approvals feature)."""

from __future__ import annotations


def register(ctx) -> None:
    """Hook approval handling into `ctx.ops` (request_upgrade, approvals commands)."""
