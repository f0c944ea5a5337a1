"""The cost rule, as plain functions: does a change raise what a Space may cost per day, by how much, and
does it need an approver? Nothing here calls the Hub, Slack or Redis.

An action needs an approver when it raises the Space's daily ceiling (what it may cost in a day at most)
by at least `SPACEOPS_APPROVAL_FREE_BELOW` dollars, or by an amount nobody knows (a flavor without a price).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.flavors import DEFAULT_FLAVOR, Catalogue
from bot.core.markup import code, escape
from bot.core.words import duration_words, money_words, sleep_words

DAY = 86400


@dataclass(frozen=True)
class CostChange:
    """What a change does to a Space's daily ceiling. `increase` is USD per day, None when unknown."""

    increase: float | None
    note: str  # mrkdwn: the cost of the new ceiling, for the approval message

    @property
    def raises(self) -> bool:
        return self.increase is None or self.increase > 0


def needs_approval(change: CostChange, free_below: float) -> bool:
    """Unknown increases always need an approver; known ones from `free_below` USD per day up."""
    if change.increase is None:
        return True
    return change.increase > 0 and change.increase >= free_below


def is_paid(flavor: str | None, catalogue: Catalogue) -> bool:
    """Paid hardware: a price above zero, or no known price (an unknown flavor is treated as paid)."""
    if flavor is None:
        return False  # a static Space has no hardware
    price = catalogue.price(flavor)
    return price is None or price > 0


def _rate(flavor: str, catalogue: Catalogue) -> str:
    price = catalogue.price(flavor)
    if price is None:
        return f"{code(flavor)} (price unknown: not in the Hub's price list)"
    return f"{code(flavor)} ({money_words(price)}/h · up to {money_words(price * 24)}/day)"


def hardware_change(current: str | None, flavor: str, catalogue: Catalogue) -> CostChange:
    """`hw`: the difference per hour, for a whole day."""
    new, old = catalogue.price(flavor), catalogue.price(current or DEFAULT_FLAVOR)
    if new is None:
        return CostChange(None, f"{_rate(flavor, catalogue)}; approve only if you know what it costs")
    increase = (new - (old or 0.0)) * 24
    return CostChange(round(increase, 4), f"{_rate(flavor, catalogue)}, now {_rate(current or DEFAULT_FLAVOR, catalogue)}")


def resume_change(space: str, flavor: str | None, catalogue: Catalogue) -> CostChange:
    """`resume`/`restart` of a paused Space: billing starts again, up to a whole day at the flavor's price."""
    if not is_paid(flavor, catalogue):
        return CostChange(0.0, "")
    price = catalogue.price(flavor)
    increase = None if price is None else price * 24
    return CostChange(increase, f"{code(space)} runs on {_rate(flavor, catalogue)}")


def _idle_seconds(sleep_seconds: int | None) -> int:
    """How long a Space may run idle in a day: its sleep time, capped at a day; never sleeping = all day."""
    if sleep_seconds is None or sleep_seconds < 0:
        return DAY
    return min(sleep_seconds, DAY)


def sleep_change(flavor: str | None, current: int | None, new: int, catalogue: Catalogue) -> CostChange:
    """`sleep`: a longer sleep time (or never) on paid hardware raises what an idle Space costs per day.

    `current` and `new` are sleep times in seconds; None or -1 means never sleeps.
    """
    if not is_paid(flavor, catalogue):
        return CostChange(0.0, "")
    extra = _idle_seconds(new) - _idle_seconds(current)
    if extra <= 0:
        return CostChange(0.0, "")
    price = catalogue.price(flavor)
    today = sleep_words(current, flavor)
    if new < 0:
        ceiling = f"never sleeps: up to {money_words(price * 24)}/day" if price is not None else \
            "never sleeps: runs all day at an unknown price"
    else:
        cost = f"{money_words(price * new / 3600)} per idle spell" if price is not None else "an unknown price"
        ceiling = f"sleeps after {duration_words(new)} idle: up to {cost}"
    note = f"{ceiling}; today it {escape(today)}" + (f" (on {code(flavor)})" if flavor else "")
    return CostChange(None if price is None else round(price * extra / 3600, 4), note)
