"""Does an action raise spend, and what a schedule or a window costs: pure functions over plain data."""

from __future__ import annotations

from bot.core.flavors import DEFAULT_FLAVOR, Catalogue

DAYS_PER_MONTH = 365.25 / 12
ESTIMATE_DAYS = 28  # four whole weeks, so weekly patterns count evenly


def raises_spend(action: str, hardware: str | None, catalogue: Catalogue, flavor: str | None = None,
                 sleep_seconds: int | None = None, current_sleep: int | None = None) -> bool:
    """Whether doing `action` can make a Space cost more.

    `hardware` is the Space's flavor, None when unknown (a namespace: any of its Spaces may be paid).
    A resume or restart of paid hardware, a move to a dearer flavor, and a longer sleep on paid hardware
    (-1 = never) raise spend; a pause never does.
    """
    if action == "pause":
        return False
    if action == "hw":
        return catalogue.is_upgrade(hardware or DEFAULT_FLAVOR, flavor or DEFAULT_FLAVOR)
    paid = hardware is None or catalogue.price(hardware) != 0  # an unknown price counts as paid
    if action in ("resume", "restart"):
        return paid
    if action == "sleep":
        if not paid:
            return False
        if hardware is None:
            return True
        now = -1 if current_sleep is None or current_sleep < 0 else current_sleep
        if now == -1:
            return False  # it already never sleeps
        return sleep_seconds == -1 or (sleep_seconds or 0) > now
    return True  # an action this version does not know: ask an approver


def running_hours(starts: list[float], stops: list[float]) -> float:
    """Hours running when each start runs until the first stop after it (overlaps counted once)."""
    total = 0.0
    running_since = None
    events = sorted([(t, 1) for t in starts] + [(t, 0) for t in stops])
    for instant, is_start in events:
        if is_start and running_since is None:
            running_since = instant
        elif not is_start and running_since is not None:
            total += instant - running_since
            running_since = None
    return total / 3600


def monthly(amount_per_window: float, window_days: float = ESTIMATE_DAYS) -> float:
    return amount_per_window * DAYS_PER_MONTH / window_days


def about(amount: float) -> float:
    """Round an estimate as people say it: $575, $12.50."""
    if amount >= 100:
        return round(amount / 5) * 5
    return round(amount, 2)


def window_cost(price_per_hour: float | None, seconds: float) -> float | None:
    return None if price_per_hour is None else price_per_hour * seconds / 3600
