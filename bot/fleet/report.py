"""Money and uptime from roll-ups: pure functions over `Facts` (no Redis, no Slack).

The stage a Space is in now has not been rolled up yet (that happens when it ends): `with_open_stint`
adds it, up to its last successful read (`until`, see rollups.open_until), at today's catalogue price. Time
nobody observed (a Space that could not be read, or was not watched) is never counted.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from bot.alerts.rollups import BILLED, DAY, DayDelta, billed_of, counted_from, day_of, merge_strip, stint
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
    cost, billed, more, unpriced = billed_of(delta.add)
    flavors = dict(day.flavors)
    for flavor, seconds in more.items():
        flavors[flavor] = flavors.get(flavor, 0) + seconds
    return Day(day.cost + cost, day.billed + billed, flavors, day.up + delta.add.get("up", 0),
               day.incidents + delta.add.get("inc", 0),
               max(day.longest_outage, delta.peak.get("out", 0)), merge_strip(day.strip, delta.strip),
               day.unpriced + unpriced)


def with_open_stint(facts: Facts, until: float | None, price: float | None) -> Facts:
    """Facts including the stage the Space is in now (from where its roll-ups end to `until`, its last
    successful read; None: nothing open), at `price`."""
    state = facts.state
    if state is None or not state.stage or until is None or until <= counted_from(state):
        return facts
    deltas = stint(state.stage, state.hardware, price, counted_from(state), until)
    days = dict(facts.days)
    months = dict(facts.months)
    unpriced = dict(facts.unpriced)
    for day, delta in deltas.items():
        days[day] = _apply(days.get(day, Day()), delta)
        cost, _, _, unknown = billed_of(delta.add)
        if day[:7] in months:
            months[day[:7]] += cost
            unpriced[day[:7]] = unpriced.get(day[:7], 0) + unknown
    return Facts(facts.space, state, days, months, unpriced)


def open_cost(state, price: float | None, start: float, until: float | None) -> float:
    """What the stage a Space is in now has cost from `start` to `until` (its last successful read; 0 unless
    billed on paid hardware)."""
    if state is None or not price or state.stage not in BILLED or until is None:
        return 0.0
    begin = max(start, counted_from(state))
    return (until - begin) / 3600 * price if until > begin else 0.0


def open_unpriced(state, price: float | None, start: float, until: float | None) -> int:
    """Billed seconds of the stage a Space is in now, from `start` to `until`, when its price is unknown."""
    if state is None or price is not None or not state.hardware or state.stage not in BILLED or until is None:
        return 0
    return max(0, int(round(until - max(start, counted_from(state)))))


@dataclass
class SpaceCost:
    """One Space over a period."""

    space: str
    cost: float = 0.0
    billed_seconds: int = 0
    flavors: list[str] = field(default_factory=list)
    up: int = 0
    observed: float = 0.0
    unpriced: int = 0  # billed seconds on flavors whose price is unknown: in no estimate
    incidents: int = 0
    longest_outage: int = 0
    first_seen: float = 0.0
    stage: str = ""
    hardware: str | None = None
    since: float = 0.0
    dev_mode: bool = False
    sleep_time: int | None = None
    error: str | None = None
    daily: dict[str, float] = field(default_factory=dict)
    strips: dict[str, str] = field(default_factory=dict)
    hidden: bool = False  # a private Space's details left out where they may not be shown
    unobserved: bool = False  # not observed any more (its reads fail, or it is deleted): not accruing

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
        out.unobserved = state.last_read is not None
    flavors: dict[str, int] = {}
    for day in days_between(start, min(end, now) - 1):
        record = facts.days.get(day)
        if record is None:
            continue
        out.cost += record.cost
        out.daily[day] = record.cost
        out.billed_seconds += record.billed
        out.unpriced += record.unpriced
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
    """Paid, set to never sleep, and running without a break for more than a day (as last observed: a Space
    that cannot be read any more is not counted, so not flagged)."""
    never_sleeps = cost.sleep_time is None or cost.sleep_time < 0
    return bool(not cost.unobserved and price and price > 0 and never_sleeps and cost.stage == "RUNNING"
                and now - cost.since > IDLE_AFTER)


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
    if state is None or not price or state.stage == "PAUSED" or state.last_read is not None:
        return so_far, so_far  # free, paused, or not observed any more (unreadable, unwatched): not accruing
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
               price: float | None, until: float | None = None) -> tuple[SpaceCost, float]:
    """(the Space over [start, end), the period before's cost) from totals summed in Redis, adding the stage
    the Space is in now, up to `until` (its last successful read), where it overlaps either period."""
    total, state = period.total, period.state
    row = SpaceCost(period.space, cost=total.cost, billed_seconds=total.billed, up=total.up,
                    incidents=total.incidents, longest_outage=total.longest_outage, unpriced=total.unpriced)
    row.daily = dict(zip(days, period.daily))
    if period.strips is not None:
        row.strips = {day: period.strips[i * 24:(i + 1) * 24] for i, day in enumerate(days)}
    flavors, previous = dict(total.flavors), period.previous
    if state is not None:
        row.first_seen, row.stage, row.hardware = state.first_seen, state.stage, state.hardware
        row.since, row.sleep_time, row.error = state.since, state.sleep_time, state.error
        row.unobserved = state.last_read is not None
        stop = min(end, now, until) if until is not None else None
        if state.stage and stop is not None and counted_from(state) < stop:
            for day, delta in stint(state.stage, state.hardware, price, counted_from(state), stop).items():
                extra = _apply(Day(), delta)
                if day in row.daily:
                    row.cost += extra.cost
                    row.daily[day] += extra.cost
                    row.billed_seconds += extra.billed
                    row.unpriced += extra.unpriced
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
