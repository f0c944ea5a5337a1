"""Buttons on alerts (filled in by the alerts feature)."""


def register(app, ctx) -> None:
    pass
