"""The fleet's read side: which Spaces a scope covers, and their figures from the roll-ups (every report reads here).

Reports cover watched Spaces only, and count what was observed while they were watched: the stage a Space is
in now counts up to its last successful read (bot/alerts/rollups.py `open_until`), not up to now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from bot.alerts.keys import LAST_OK
from bot.alerts.rollups import DAY, day_of, open_until
from bot.alerts.watches import WatchStore
from bot.core.flavors import CatalogueSource
from bot.core.permissions import namespace_of
from bot.core.store import Store, bulk_decoding
from bot.fleet import report
from bot.fleet.report import SpaceCost
from bot.fleet.store import Facts, FleetStore


@dataclass
class Snapshot:
    """Spaces in a scope with their period figures, month figures and prices (what every report needs)."""

    rows: list[SpaceCost]
    facts: dict[str, Facts]
    prices: dict[str, float | None]
    month: dict[str, tuple[float, float]]  # space → (so far, projected)
    today: dict[str, float]
    # space → billed seconds this month on a flavor whose price is unknown (in no estimate), where any
    unpriced: dict[str, int] = field(default_factory=dict)

    def first_seen(self) -> tuple[float, str] | None:
        seen = [(r.first_seen, r.space) for r in self.rows if r.first_seen]
        return min(seen) if seen else None

    @property
    def total(self) -> float:
        return sum(r.cost for r in self.rows)


class FleetReads:
    """Scopes and figures over the roll-ups; no Slack, no Hub."""

    def __init__(self, records: Store, watch_store: WatchStore, catalogues: CatalogueSource):
        self.records = records
        self.watches = watch_store
        self.catalogues = catalogues
        self.store = FleetStore(records.redis)

    def watched(self) -> list[str]:
        watch_set = self.watches.load()
        spaces = set(watch_set.explicit_spaces())
        spaces |= {s for s in self.store.known() if watch_set.is_watched(s)}
        return sorted(spaces)

    def in_scope(self, target: str) -> list[str]:
        """The watched Spaces `target` (a Space or `namespace/*`) names: reports cover nothing else."""
        watch_set = self.watches.load()
        if not target.endswith("/*"):
            return [target] if watch_set.is_watched(target) else []
        return [s for s in self._in_namespaces({target[:-2]}, self.store.known(), watch_set.explicit_spaces())
                if watch_set.is_watched(s)]

    @staticmethod
    def _in_namespaces(namespaces: set[str], *sources: Iterable[str]) -> list[str]:
        return sorted({s for source in sources for s in source if namespace_of(s) in namespaces})

    def channel_scope(self, channel: str) -> tuple[str, list[str]]:
        """What a channel watches (`acme/*, other/chat`), and the known Spaces its watches cover."""
        watch_set = self.watches.load()
        mine = [w for w in watch_set.watches if w.channel == channel]
        namespaces = {w.target[:-2] for w in mine if w.is_pattern}
        spaces = set(self._in_namespaces(namespaces, self.store.known(), watch_set.explicit_spaces()))
        singles = {w.target for w in mine if not w.is_pattern and namespace_of(w.target) not in namespaces}
        spaces |= singles
        label = ", ".join([f"{ns}/*" for ns in sorted(namespaces)] + sorted(singles))
        return label, sorted(spaces)

    def last_ok(self) -> float | None:
        """The poller's last good cycle: where the stage each watched Space is in stops counting."""
        raw = self.records.redis.get(LAST_OK)
        try:
            return float(raw) if raw else None
        except ValueError:
            return None

    def snapshot(self, spaces: list[str], start: float, end: float, now: float, project: bool = True) -> Snapshot:
        """Figures of `spaces` for [start, end), with this month's and today's, including the current stints;
        `project` also reads the last 7 days, which the month's projection needs."""
        days = report.days_between(start, min(end, now) - 1)
        if project:  # the last 7 days, however long ago the period was: the month's projection needs them
            days = sorted(set(days) | set(report.days_between(now - 7 * DAY, now - 1)))
        month = report.month_of(now)
        with bulk_decoding():
            return self._snapshot(spaces, days, month, start, end, now, project)

    def _snapshot(self, spaces: list[str], days: list[str], month: str, start: float, end: float, now: float,
                  project: bool) -> Snapshot:
        facts = self.store.facts(spaces, days, [month])
        catalogue = self.catalogues.current
        last_ok = self.last_ok()
        rows, prices, months, today, unpriced = [], {}, {}, {}, {}
        today_day = day_of(now)
        for space in spaces:
            item = facts[space]
            price = catalogue.price(item.state.hardware) if item.state else None
            item = report.with_open_stint(item, open_until(item.state, last_ok, now), price)
            facts[space] = item
            prices[space] = price
            rows.append(report.summarise(item, start, end, now))
            months[space] = report.month_projection(item, now, price) if project else \
                (item.months.get(month, 0.0),) * 2
            day = item.days.get(today_day)
            today[space] = day.cost if day else 0.0
            if item.unpriced.get(month):
                unpriced[space] = item.unpriced[month]
        rows.sort(key=lambda r: (-r.cost, r.space))
        return Snapshot(rows, facts, prices, months, today, unpriced)

    def glance(self, spaces: list[str], now: float) -> Snapshot:
        """What the App Home needs, cheaply: each Space's state, today's and this month's spend."""
        today, month = day_of(now), report.month_of(now)
        today_start = float(int(now) // DAY * DAY)
        month_start, _ = report.month_bounds(month)
        with bulk_decoding():
            facts = self.store.facts(spaces, [today], [month])
        catalogue = self.catalogues.current
        last_ok = self.last_ok()
        rows, prices, months, todays = [], {}, {}, {}
        for space in spaces:
            item = facts[space]
            state = item.state
            price = catalogue.price(state.hardware) if state else None
            until = open_until(state, last_ok, now)
            row = SpaceCost(space)
            if state is not None:
                row.first_seen, row.stage, row.hardware = state.first_seen, state.stage, state.hardware
                row.since, row.sleep_time, row.error = state.since, state.sleep_time, state.error
                row.dev_mode = state.dev_mode
            day = item.days.get(today)
            todays[space] = (day.cost if day else 0.0) + report.open_cost(state, price, today_start, until)
            so_far = item.months.get(month, 0.0) + report.open_cost(state, price, month_start, until)
            months[space] = (so_far, so_far)
            row.cost = todays[space]
            prices[space] = price
            rows.append(row)
        return Snapshot(rows, facts, prices, months, todays)

    def period(self, spaces: list[str], start: float, end: float, length: int, now: float) -> tuple[Snapshot, float]:
        """The Spaces over whole past days [start, end) and the total of the `length` days before."""
        days = report.days_between(start, end - 1)
        previous_days = report.days_between(start - length * DAY, start - 1)
        catalogue = self.catalogues.current
        last_ok = self.last_ok()
        rows, prices, previous = [], {}, 0.0
        with bulk_decoding():
            for space, item in self.store.summaries(spaces, previous_days, days).items():
                price = catalogue.price(item.state.hardware) if item.state else None
                row, before = report.period_row(item, previous_days, days, start, end, now, price,
                                                open_until(item.state, last_ok, now))
                rows.append(row)
                prices[space] = price
                previous += before
        rows.sort(key=lambda r: (-r.cost, r.space))
        return Snapshot(rows, {}, prices, {}, {}), previous

    def idle(self, snap: Snapshot, now: float) -> list[SpaceCost]:
        return [r for r in snap.rows if report.is_idle_spend(r, snap.prices.get(r.space), now)]
