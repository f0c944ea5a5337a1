"""`/space cost`: spend of a Space, a namespace or a channel's watched Spaces over days or a month."""

from __future__ import annotations

from typing import Callable

from bot.alerts.rollups import DAY, day_of
from bot.commands.grammar import Command
from bot.core.permissions import Actor
from bot.core.words import Reply
from bot.fleet import report, words
from bot.fleet.reads import FleetReads, Snapshot
from bot.fleet.uploads import Charts


class CostCommand:
    def __init__(self, reads: FleetReads, charts: Charts, clock: Callable[[], float], hub_url: str):
        self.reads = reads
        self.charts = charts
        self.clock = clock
        self.hub_url = hub_url

    def cost(self, cmd: Command, actor: Actor) -> Reply:
        now = self.clock()
        if cmd.space:
            scope, spaces = cmd.space, self.reads.in_scope(cmd.space)
        else:
            scope, spaces = self.reads.channel_scope(actor.channel)
            if not spaces:
                return words.nothing_watched_here(actor.channel)
        if not spaces:
            return words.nothing_to_report(scope)
        month_label = "This month"
        if cmd.month is not None:
            month = cmd.month or report.month_of(now)
            start, end = report.month_bounds(month)
            period = f"{month}" + (" (so far)" if start <= now < end else "")
        else:
            days = cmd.days or 7
            start = (int(now) // DAY - days + 1) * DAY
            end = now
            period = f"last {days} day{'s' if days != 1 else ''} ({day_of(start)} → {day_of(now)}, UTC)"
        snap = self.reads.snapshot(spaces, start, end, now)
        if not any(f.state for f in snap.facts.values()):
            return words.nothing_to_report(scope)
        reply = words.cost_reply(scope, period, snap.rows, snap.total, report.scope_projection(snap.month),
                                 self.reads.idle(snap, now),
                                 snap.prices, snap.first_seen(), now, self.hub_url, month_label)
        if cmd.chart:
            self._chart_after(actor.channel, f"Spend of {scope}, {period}", snap, start, end, now)
        return reply

    def _chart_after(self, channel: str, title: str, snap: Snapshot, start: float, end: float, now: float) -> None:
        """`--chart`: the same picture as the digest, uploaded to the channel."""
        png = self.charts.chart_png(title, snap, start, end, now)
        self.charts.upload(channel, None, png, "spend.png", title)
