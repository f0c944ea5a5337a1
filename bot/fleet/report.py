"""Money and uptime from roll-ups: pure functions over `Facts` (no Redis, no Slack).

The stage a Space is in now has not been rolled up yet (that happens when it ends): `with_open_stint`
adds it, up to `now`, at today's catalogue price.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from bot.alerts.rollups import BILLED, DAY, DayDelta, billed_of, day_of, merge_strip, stint
from bot.alerts.transitions import ERRORS, STUCK_STAGES, UP
from bot.fleet.store import Day, Facts, Period

IDLE_AFTER = 86400


def days_between(start: float, end: float) -> list[str]:
    """UTC days from the one holding `start` to the one holding `end`, inclusive."""
    out, at = [], int(start) // DAY * DAY
    while at <= end:
        out.append(day_of(at))
        at += DAY
    return out


def month_bounds(month: str) -> tuple[float, float]:
    year, mon = int(month[:4]), int(month[5:7])
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    days = calendar.monthrange(year, mon)[1]
    return float(start), float(start + days * DAY)


def month_of(ts: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(ts))


def _apply(day: Day, delta: DayDelta) -> Day:
    cost, billed, more = billed_of(delta.add)
    flavors = dict(day.flavors)
    for flavor, seconds in more.items():
        flavors[flavor] = flavors.get(flavor, 0) + seconds
    return Day(day.cost + cost, day.billed + billed, flavors, day.up + delta.add.get("up", 0),
               day.incidents + delta.add.get("inc", 0),
               max(day.longest_outage, delta.peak.get("out", 0)), merge_strip(day.strip, delta.strip))


def with_open_stint(facts: Facts, now: float, price: float | None) -> Facts:
    """Facts including the stage the Space is in now (from `state.since` to `now`), at `price`."""
    state = facts.state
    if state is None or not state.stage or now <= state.since:
        return facts
    deltas = stint(state.stage, state.hardware, price, state.since, now)
    days = dict(facts.days)
    months = dict(facts.months)
    for day, delta in deltas.items():
        days[day] = _apply(days.get(day, Day()), delta)
        if day[:7] in months:
            months[day[:7]] += billed_of(delta.add)[0]
    return Facts(facts.space, state, days, months)


def open_cost(state, price: float | None, start: float, now: float) -> float:
    """What the stage a Space is in now has cost since `start` (0 unless billed on paid hardware)."""
    if state is None or not price or state.stage not in BILLED or now <= state.since:
        return 0.0
    return (now - max(start, state.since)) / 3600 * price if now > start else 0.0


@dataclass
class SpaceCost:
    """One Space over a period."""

    space: str
    cost: float = 0.0
    billed_seconds: int = 0
    flavors: list[str] = field(default_factory=list)
    up: int = 0
    observed: float = 0.0
    incidents: int = 0
    longest_outage: int = 0
    first_seen: float = 0.0
    stage: str = ""
    hardware: str | None = None
    since: float = 0.0
    sleep_time: int | None = None
    error: str | None = None
    daily: dict[str, float] = field(default_factory=dict)
    strips: dict[str, str] = field(default_factory=dict)
    hidden: bool = False  # a private Space's details left out where they may not be shown

    @property
    def uptime(self) -> float | None:
        return self.up / self.observed if self.observed > 0 else None


def summarise(facts: Facts, start: float, end: float, now: float) -> SpaceCost:
    """Spend, billed hours, flavors, uptime and incidents of one Space from `start` to `end`."""
    state = facts.state
    out = SpaceCost(facts.space)
    if state is not None:
        out.first_seen, out.stage, out.hardware = state.first_seen, state.stage, state.hardware
        out.since, out.sleep_time, out.error = state.since, state.sleep_time, state.error
    flavors: dict[str, int] = {}
    for day in days_between(start, min(end, now) - 1):
        record = facts.days.get(day)
        if record is None:
            continue
        out.cost += record.cost
        out.daily[day] = record.cost
        out.billed_seconds += record.billed
        for flavor, seconds in record.flavors.items():
            flavors[flavor] = flavors.get(flavor, 0) + seconds
        out.up += record.up
        out.incidents += record.incidents
        out.longest_outage = max(out.longest_outage, record.longest_outage)
        out.strips[day] = record.strip
    if state is not None and state.incident is not None:
        out.longest_outage = max(out.longest_outage, int(now - state.incident))
    out.flavors = sorted(flavors, key=lambda f: -flavors[f])
    if state is not None and state.first_seen:
        out.observed = max(0.0, min(end, now) - max(start, state.first_seen))
    return out


def is_idle_spend(cost: SpaceCost, price: float | None, now: float) -> bool:
    """Paid, set to never sleep, and running without a break for more than a day."""
    never_sleeps = cost.sleep_time is None or cost.sleep_time < 0
    return bool(price and price > 0 and never_sleeps and cost.stage == "RUNNING" and now - cost.since > IDLE_AFTER)


def duty(facts: Facts, now: float, window: float = 7 * DAY) -> float:
    """Share of the recent observed time that was billed (how much of the time it runs)."""
    state = facts.state
    if state is None or not state.first_seen:
        return 0.0
    start = max(now - window, state.first_seen)
    billed = sum(d.billed for day, d in facts.days.items() if day >= day_of(start))
    observed = max(1.0, now - start)
    return min(1.0, billed / observed)


def month_projection(facts: Facts, now: float, price: float | None) -> tuple[float, float]:
    """(this month so far, projected month total) at today's hardware and sleep settings."""
    month = month_of(now)
    so_far = facts.months.get(month, 0.0)
    state = facts.state
    _, end = month_bounds(month)
    if state is None or not price or state.stage == "PAUSED":
        return so_far, so_far
    never_sleeps = state.sleep_time is None or state.sleep_time < 0
    if never_sleeps and state.stage not in ERRORS and state.stage not in ("SLEEPING", "STOPPED"):
        share = 1.0  # it runs until someone stops it
    else:
        share = duty(facts, now)
    return so_far, so_far + (end - now) / 3600 * price * share


def broken_now(cost: SpaceCost, now: float, stuck_after: float = 30 * 60) -> str | None:
    """"crashed", "stuck building" or None."""
    if cost.stage in ERRORS:
        return "broken"
    if cost.stage in STUCK_STAGES and now - cost.since > stuck_after:
        return "stuck"
    return None


def is_up(stage: str) -> bool:
    return stage in UP



def period_row(period: Period, previous_days: list[str], days: list[str], start: float, end: float, now: float,
               price: float | None) -> tuple[SpaceCost, float]:
    """(the Space over [start, end), the period before's cost) from totals summed in Redis, adding the stage
    the Space is in now where it overlaps either period."""
    total, state = period.total, period.state
    row = SpaceCost(period.space, cost=total.cost, billed_seconds=total.billed, up=total.up,
                    incidents=total.incidents, longest_outage=total.longest_outage)
    row.daily = dict(zip(days, period.daily))
    if period.strips is not None:
        row.strips = {day: period.strips[i * 24:(i + 1) * 24] for i, day in enumerate(days)}
    flavors, previous = dict(total.flavors), period.previous
    if state is not None:
        row.first_seen, row.stage, row.hardware = state.first_seen, state.stage, state.hardware
        row.since, row.sleep_time, row.error = state.since, state.sleep_time, state.error
        if state.stage and state.since < min(end, now):
            for day, delta in stint(state.stage, state.hardware, price, state.since, min(end, now)).items():
                extra = _apply(Day(), delta)
                if day in row.daily:
                    row.cost += extra.cost
                    row.daily[day] += extra.cost
                    row.billed_seconds += extra.billed
                    row.up += extra.up
                    if day in row.strips:
                        row.strips[day] = merge_strip(row.strips[day], extra.strip)
                    for flavor, seconds in extra.flavors.items():
                        flavors[flavor] = flavors.get(flavor, 0) + seconds
                elif day in previous_days:
                    previous += extra.cost
        if state.incident is not None:
            row.longest_outage = max(row.longest_outage, int(now - state.incident))
        if state.first_seen:
            row.observed = max(0.0, min(end, now) - max(start, state.first_seen))
    row.flavors = sorted(flavors, key=lambda f: -flavors[f])
    return row, previous
