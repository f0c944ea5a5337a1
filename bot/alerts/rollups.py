"""Daily roll-ups of what the poller observed, for uptime and spend reports (pure functions).

Per Space and UTC day: billed seconds per flavor with the price per hour of the time (`b|t4-medium|0.6`),
uptime seconds (`up`), incidents opened (`inc`), the longest outage that ended that day (`out`) and an
hour strip (`h`, 24 letters, the worst stage seen in each hour). Per Space and month: the billed fields
again, so a month's spend is one read, and one summary field per day (`d|05`: micro-dollars, billed
seconds, uptime seconds, incidents, longest outage), so a report over many Spaces reads one hash per
Space and month instead of one per day. The poller's CAS writes them when a stage ends; reports add the
stage a Space is in now with the same functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.alerts.transitions import ASLEEP, ERRORS, UP
from bot.core.store import key

# The Hub bills per minute while starting or running on paid hardware; not while building, asleep,
# paused or in error (hub-docs spaces-gpus.md "Billing").
BILLED = frozenset({"APP_STARTING", "RUNNING_APP_STARTING", "RUNNING", "RUNNING_BUILDING"})
TTL = 400 * 86400
# Hour strip letters, lowest rank first: the worst stage seen in an hour wins.
UNKNOWN, ASLEEP_MARK, PAUSED_MARK, UP_MARK, STARTING_MARK, BROKEN_MARK = ".", "s", "p", "r", "u", "b"
STRIP_RANK = ".spurb"
DAY = 86400


def day_key(space: str, day: str) -> str:
    return key("space", "{" + space + "}", "d", day)


def month_key(space: str, month: str) -> str:
    return key("space", "{" + space + "}", "m", month)


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def summary_field(day: str) -> str:
    """The month hash's field for one day: `d|05` for 2026-11-05."""
    return "d|" + day[8:10]


def billed_of(add: dict[str, int]) -> tuple[float, int, dict[str, int]]:
    """(USD, billed seconds, billed seconds per flavor) of a day's `add` fields (`b|t4-medium|0.6` → seconds
    at $0.60/h); other fields are not billing."""
    cost, billed, flavors = 0.0, 0, {}
    for name, seconds in add.items():
        parsed = parse_billed(name)
        if parsed:
            cost += seconds / 3600 * parsed[1]
            billed += seconds
            flavors[parsed[0]] = flavors.get(parsed[0], 0) + seconds
    return cost, billed, flavors


def summary_of(delta: "DayDelta") -> list[int]:
    """[micro-dollars, billed seconds, uptime seconds, incidents, longest outage] that a day delta adds;
    the CAS adds the first four to the stored summary and keeps the larger fifth."""
    cost, billed, _ = billed_of(delta.add)
    return [int(round(cost * 1_000_000)), billed, delta.add.get("up", 0), delta.add.get("inc", 0),
            delta.peak.get("out", 0)]


def format_summary(numbers: list[int]) -> str:
    """The stored `d|DD` value: always five numbers (`"1800000 10800 10800 0 0"`), so a reader splits all the
    days of a period at once."""
    return " ".join(str(n) for n in (list(numbers) + [0] * 5)[:5])


def parse_summary(text: str | None) -> list[int] | None:
    """A stored `d|DD` value → its five numbers; None when absent or mangled (the reader then sums the day hash)."""
    if not text:
        return None
    parts = text.split(" ")
    if len(parts) > 5:
        return None
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return None
    if any(n < 0 for n in numbers):
        return None
    return numbers + [0] * (5 - len(numbers))


def billed_field(flavor: str | None, price: float) -> str:
    return f"b|{flavor or 'none'}|{price:g}"


def parse_billed(name: str) -> tuple[str, float] | None:
    """`b|t4-medium|0.6` → ("t4-medium", 0.6); None for other fields or a mangled one."""
    parts = name.split("|")
    if len(parts) != 3 or parts[0] != "b":
        return None
    try:
        return parts[1], float(parts[2])
    except ValueError:
        return None


def mark(stage: str | None) -> str:
    if not stage:
        return UNKNOWN
    if stage in ERRORS:
        return BROKEN_MARK
    if stage in UP:
        return UP_MARK
    if stage == "PAUSED":
        return PAUSED_MARK
    if stage in ASLEEP:
        return ASLEEP_MARK
    return STARTING_MARK


def worse(a: str, b: str) -> str:
    return a if STRIP_RANK.find(a) >= STRIP_RANK.find(b) else b


def merge_strip(current: str, overlay: str) -> str:
    current = (current or "").ljust(24, UNKNOWN)[:24]
    overlay = (overlay or "").ljust(24, UNKNOWN)[:24]
    if not overlay.strip(UNKNOWN) or current == overlay:
        return current
    if not current.strip(UNKNOWN):
        return overlay
    return "".join(worse(a, b) for a, b in zip(current, overlay))


@dataclass
class DayDelta:
    """What one stint (or event) adds to one day's hash."""

    add: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    strip: str = UNKNOWN * 24

    def merge(self, other: "DayDelta") -> "DayDelta":
        add = dict(self.add)
        for name, value in other.add.items():
            add[name] = add.get(name, 0) + value
        peak = dict(self.peak)
        for name, value in other.peak.items():
            peak[name] = max(peak.get(name, 0), value)
        return DayDelta(add, peak, merge_strip(self.strip, other.strip))


def stint(stage: str, hardware: str | None, price: float | None, start: float, end: float) -> dict[str, DayDelta]:
    """A stage held from `start` to `end`, split at UTC midnights: uptime, billed seconds, hour strip."""
    out: dict[str, DayDelta] = {}
    if not stage or end <= start:
        return out
    letter = mark(stage)
    billed = stage in BILLED and price is not None and price > 0
    at = start
    while at < end:
        midnight = (int(at) // DAY + 1) * DAY
        piece_end = min(end, midnight)
        seconds = int(round(piece_end - at))
        day = day_of(at)
        delta = out.setdefault(day, DayDelta())
        if seconds > 0:
            if stage in UP:
                delta.add["up"] = delta.add.get("up", 0) + seconds
            if billed:
                name = billed_field(hardware, price)
                delta.add[name] = delta.add.get(name, 0) + seconds
        day_start = int(at) // DAY * DAY
        first = int((at - day_start) // 3600)
        last = min(23, int((max(piece_end - 1e-6, at) - day_start) // 3600))
        # Each day piece of one stint is fresh, so its strip is this stage's letter over the hours it touched.
        delta.strip = UNKNOWN * first + letter * (last - first + 1) + UNKNOWN * (23 - last)
        at = piece_end
    return out


def add_deltas(into: dict[str, DayDelta], more: dict[str, DayDelta]) -> dict[str, DayDelta]:
    for day, delta in more.items():
        into[day] = into[day].merge(delta) if day in into else delta
    return into


def transition_rollup(prev, state, price: float | None) -> dict[str, DayDelta]:
    """Day deltas when `state` replaces `prev` (two `SpaceState`s): the stint that ended, an incident
    that opened (counted on its day), an outage that ended (its length, kept as the day's longest)."""
    if prev is None or not prev.stage:
        return {}
    out: dict[str, DayDelta] = {}
    if state.stage != prev.stage:
        add_deltas(out, stint(prev.stage, prev.hardware, price, prev.since, state.since))
    if prev.incident is None and state.incident is not None:
        add_deltas(out, {day_of(state.incident): DayDelta(add={"inc": 1})})
    if prev.incident is not None and state.incident is None:
        outage = int(round(state.since - prev.incident))
        if outage > 0:
            add_deltas(out, {day_of(state.since): DayDelta(peak={"out": outage})})
    return out


def cas_rollup(space: str, deltas: dict[str, DayDelta]) -> tuple[list[str], list[dict]]:
    """(extra keys, entries) for the poller's CAS: one entry per day hash, one per month hash (its billed
    fields and each day's summary). Each entry: {"k": index into the extra keys (1-based), "add": {...},
    "peak": {...}, "h": strip, "sum": {"d|05": [five numbers, see `summary_of`]}}."""
    keys: list[str] = []
    entries: list[dict] = []
    months: dict[str, dict[str, int]] = {}
    summaries: dict[str, dict[str, list[int]]] = {}
    for day, delta in sorted(deltas.items()):
        keys.append(day_key(space, day))
        entry: dict = {"k": len(keys)}
        if delta.add:
            entry["add"] = delta.add
        if delta.peak:
            entry["peak"] = delta.peak
        if delta.strip.strip(UNKNOWN):
            entry["h"] = delta.strip
        entries.append(entry)
        month = months.setdefault(day[:7], {})
        for name, value in delta.add.items():
            if name.startswith("b|"):
                month[name] = month.get(name, 0) + value
        summaries.setdefault(day[:7], {})[summary_field(day)] = summary_of(delta)
    for month, billed in sorted(months.items()):
        keys.append(month_key(space, month))
        entry = {"k": len(keys), "sum": summaries[month]}
        if billed:
            entry["add"] = billed
        entries.append(entry)
    return keys, entries
