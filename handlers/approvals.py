"""Approve / Deny buttons (filled in by the approvals feature)."""


def register(app, ctx) -> None:
    pass
