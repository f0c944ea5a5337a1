"""Daily and weekly digests of a channel's watched Spaces: set with `/space digest`, posted once per period by the leader."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from bot.alerts.rollups import DAY, day_of
from bot.commands.grammar import Command
from bot.core.permissions import Actor
from bot.core.deliver import Deliveries
from bot.core.store import Store
from bot.core.words import Reply
from bot.fleet import report, words
from bot.fleet.reads import FleetReads
from bot.fleet.report import SpaceCost
from bot.fleet.uploads import Charts

log = logging.getLogger(__name__)

DIGEST_LATE_LIMIT = 7 * DAY


class NotPosted(Exception):
    """The digest itself did not reach Slack (its claim is freed so the next minute tries again)."""


def digest_due(config: dict, now: float) -> tuple[str, float] | None:
    """(period id, due time) of the latest digest due at or before `now` in the config's time zone (pure)."""
    try:
        tz = ZoneInfo(config.get("tz") or "UTC")
        hour, minute = (int(x) for x in str(config.get("time") or "09:00").split(":"))
    except (ValueError, KeyError):
        return None
    local = datetime.fromtimestamp(now, tz)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due > local:
        due -= timedelta(days=1)
    if config.get("period") == "weekly":
        due -= timedelta(days=due.weekday())  # Mondays
        year, week, _ = due.isocalendar()
        period = f"{year}-W{week:02d}"
    else:
        period = due.strftime("%Y-%m-%d")
    return period, due.timestamp()


class Digests:
    def __init__(self, records: Store, reads: FleetReads, charts: Charts, deliveries: Deliveries,
                 leading: Callable[[float], bool], clock: Callable[[], float], hub_url: str,
                 reveals: Callable[[str, Actor], bool] = lambda space, actor: True,
                 prefetch: Callable[[set[str]], None] = lambda spaces: None,
                 check: Callable[[Command, Actor], None] | None = None,
                 hidden: Callable[[list[str], str], set[str]] | None = None):
        self.records = records
        self.reads = reads
        self.charts = charts
        self.deliveries = deliveries  # the one way out to Slack (bot/core/deliver.py)
        self.leading = leading
        self.clock = clock
        self.hub_url = hub_url
        self.reveals = reveals  # whether a private Space's details (its error text) may be shown to a channel
        self.prefetch = prefetch  # looks visibilities up, several at once
        self.check = check  # the gate, as a command passes it (raises NotAllowed)
        # Of some Spaces, those whose private details (error text, spend) may not show in a channel (the gate's
        # rule, bot/access); None: ask `reveals` one by one.
        self.hidden = hidden

    def _check_other(self, cmd: Command, actor: Actor) -> None:
        """`digest #other …` from here: every namespace #other watches must be one this place may act on,
        and one the actor may act on in #other (the gate, asked for both places)."""
        if self.check is None or not cmd.channel or cmd.channel == actor.channel:
            return
        scope, _ = self.reads.channel_scope(cmd.channel)
        for pattern in [p for p in scope.split(", ") if p]:
            self.check(replace(cmd, space=pattern), actor)
            self.check(replace(cmd, space=pattern), Actor(actor.user, cmd.channel, actor.team))

    def digest(self, cmd: Command, actor: Actor) -> Reply:
        self._check_other(cmd, actor)
        self.records.require()
        existed = cmd.channel in self.reads.store.digests()
        self.reads.store.set_digest(cmd.channel, {"period": cmd.period, "time": cmd.at, "tz": cmd.tz, "by": actor.user,
                                            "at": self.clock()})
        self.records.audit(actor.user, "digest", "", {"channel": cmd.channel, "period": cmd.period, "time": cmd.at,
                                                      "tz": cmd.tz})
        return words.digest_set_reply(actor.user, cmd.channel, cmd.period, cmd.at, cmd.tz, existed)

    def digest_off(self, cmd: Command, actor: Actor) -> Reply:
        self._check_other(cmd, actor)
        self.records.require()
        existed = self.reads.store.remove_digest(cmd.channel)
        if existed:
            self.records.audit(actor.user, "digest.off", "", {"channel": cmd.channel})
        return words.digest_off_reply(cmd.channel, existed)

    def digests(self, cmd: Command, actor: Actor) -> Reply:
        return words.digests_reply(self.reads.store.digests())

    def digest_tick(self, now: float | None = None) -> int:
        """Post every digest that is due and not yet posted (on the poll leader only); returns how many."""
        now = self.clock() if now is None else now
        if not self.leading(now):
            return 0
        posted = 0
        for channel, config in self.reads.store.digests().items():
            due = digest_due(config, now)
            if due is None:
                continue
            period, due_at = due
            if due_at < float(config.get("at") or 0) or now - due_at > DIGEST_LATE_LIMIT:
                continue  # set after this one was due, or missed so long ago it would mislead
            if not self.reads.store.claim_digest(channel, period):
                continue
            try:
                self.post_digest(channel, config, due_at, now, period)
                posted += 1
            except NotPosted:  # not posted: free the claim so the next minute tries again
                self.reads.store.unclaim_digest(channel, period)
                log.exception("digest for %s (%s) not posted; will retry", channel, period)
        return posted

    def post_digest(self, channel: str, config: dict, due_at: float, now: float, period: str | None = None) -> str:
        """Post the digest (named by channel and period: once), then its chart in the thread; whatever
        fails after the post never posts the digest again (the thread says the chart is missing).
        Raises NotPosted when the digest itself was not posted."""
        if period is None:
            due = digest_due(config, due_at)
            period = due[0] if due else str(int(due_at))
        delivery_id = f"digest:{channel}:{period}"
        try:
            return self._post(channel, config, due_at, now, delivery_id)
        except NotPosted:
            raise
        except Exception as err:  # noqa: BLE001 — a bug or an outage before the post: the next minute retries
            raise NotPosted(str(err)) from err

    def _post(self, channel: str, config: dict, due_at: float, now: float, delivery_id: str) -> str:
        weekly = config.get("period") == "weekly"
        length = 7 if weekly else 1
        end = int(due_at) // DAY * DAY  # whole UTC days before the day it is due
        start = end - length * DAY
        _, spaces = self.reads.channel_scope(channel)
        snap, previous = self.reads.period(spaces, start, end, length, now)
        label = "Weekly" if weekly else "Daily"
        title = (f"{label} digest — {day_of(start)}" + (f" → {day_of(end - 1)}" if weekly else "") + " (UTC)")
        hidden = self._hidden(spaces, channel)
        # A private Space this channel may not see the details of: named, with its uptime, but its spend and
        # error text left out (and out of the top spenders, idle spend and the chart); the total still counts it.
        rows = [replace(r, error=None, hidden=True) if r.space in hidden else r for r in snap.rows]
        shown = replace(snap, rows=[r for r in rows if not r.hidden])
        broken = [r for r in rows if report.broken_now(r, now)][:words.MAX_ROWS]
        try:
            self.prefetch({r.space for r in broken if r.error})
        except Exception:  # noqa: BLE001 — each one is then looked up (or hidden) on its own
            log.warning("visibilities of broken Spaces not prefetched", exc_info=True)
        broken = [self._shown_to(r, channel) for r in broken]
        reply = words.digest_message(title, rows, snap.total, previous, self.reads.idle(shown, now), broken,
                                     snap.prices, snap.first_seen(), now, self.hub_url,
                                     late=now - due_at > 15 * 60)
        ts = self.deliveries.now(delivery_id, channel, reply.text, reply.blocks, budget=0.0)
        if ts is None:
            return ""  # posted already (or being posted by another replica): nothing more to do
        try:
            uploaded = self.charts.upload(channel, ts, self.charts.chart_png(title, shown, start, end, now),
                                          "digest.png", title)
        except Exception:  # noqa: BLE001 — the digest is posted; a chart that can't be drawn must not repost it
            log.exception("chart of the digest %s not drawn", delivery_id)
            uploaded = False
        if not uploaded and getattr(self.deliveries.poster, "client", None) is not None:  # (the console has none)
            note = words.digest_chart_missing()
            try:
                self.deliveries.send(f"{delivery_id}:no-chart", channel, note.text, note.blocks, thread_ts=ts)
            except Exception:  # noqa: BLE001 — a note about a missing chart is a nicety
                log.warning("note about the missing chart of %s not posted", delivery_id, exc_info=True)
        return ts

    def _hidden(self, spaces: list[str], channel: str) -> set[str]:
        if self.hidden is None:
            return set()
        try:
            return self.hidden(spaces, channel)
        except Exception:  # noqa: BLE001 — when privacy can't be known, every private detail stays hidden
            log.warning("could not tell which Spaces are private for %s; all their spend is left out", channel,
                        exc_info=True)
            return set(spaces)

    def _shown_to(self, row: SpaceCost, channel: str) -> SpaceCost:
        """The row as `channel` may see it: a private Space's error text only where its namespace is in
        scope (or in a DM), as `/space status` shows it."""
        if not row.error or row.hidden:
            return row
        try:
            if self.reveals(row.space, Actor("", channel)):
                return row
        except Exception:  # noqa: BLE001 — when privacy can't be known, the details stay hidden
            log.warning("could not tell whether %s is private; its error text is left out", row.space)
        return replace(row, error=None, hidden=True)
