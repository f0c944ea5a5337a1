"""Spend charts for a channel: drawn from a snapshot (hour strips read for the rows drawn) and uploaded."""

from __future__ import annotations

import logging

from bot.core.deliver import Deliveries
from bot.fleet import chart, report
from bot.fleet.reads import FleetReads, Snapshot
from bot.fleet.report import SpaceCost

log = logging.getLogger(__name__)


class Charts:
    """`chart_png` draws; `upload` sends it through the one way out (no Slack client: the console, nothing sent)."""

    def __init__(self, reads: FleetReads, deliveries: Deliveries | None = None):
        self.reads = reads
        self.deliveries = deliveries

    def chart_png(self, title: str, snap: Snapshot, start: float, end: float, now: float) -> bytes:
        days = report.days_between(start, min(end, now) - 1)
        top = [r.space for r in snap.rows]
        strips = {}
        broken_first = sorted(snap.rows, key=lambda r: (report.broken_now(r, now) is None, -r.cost, r.space))
        drawn = broken_first[:chart.STRIP_ROWS]
        self._read_strips([r for r in drawn if not r.strips], days, start, end, now, snap.prices)
        for row in drawn:
            strips[row.space] = "".join(row.strips.get(day, "." * 24) for day in days)
        daily = {space: snap.rows[i].daily for i, space in enumerate(top)}
        return chart.render(title, days, daily, strips)

    def _read_strips(self, rows: list[SpaceCost], days: list[str], start: float, end: float, now: float,
                     prices: dict[str, float | None]) -> None:
        """Hour strips for rows summed from day summaries (which have none): the day hashes of just these."""
        if not rows:
            return
        detailed = self.reads.store.periods([r.space for r in rows], [], days)
        for row in rows:
            full, _ = report.period_row(detailed[row.space], [], days, start, end, now, prices.get(row.space))
            row.strips = full.strips

    def upload(self, channel: str, thread_ts: str | None, png: bytes, filename: str, title: str) -> bool:
        if self.deliveries is None:
            log.info("no Slack client: chart %s not uploaded", filename)
            return False
        try:
            return self.deliveries.upload(channel, thread_ts, png, filename, title)
        except Exception as err:  # noqa: BLE001 — a chart that didn't upload must not lose the report
            log.warning("chart upload to %s failed: %s", channel, type(err).__name__)
            return False
