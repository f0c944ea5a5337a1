"""Hot polling: Spaces where something is expected to happen are read every few seconds.

A Space is hot after a change made through the bot, after a push to its repository (a webhook or a
new `sha` in the batched read), and while it is in a transitional stage (building, starting). Hot
Spaces are read one by one with `get_space_runtime` every `SPACEOPS_HOT_SECONDS` until they settle or
30 minutes pass; everything else stays on the batched base interval. Hot reads spend from the poller's
`RateLimit` budget: when it runs low the hot interval stretches, the commands' reserve holds, and a 429
means reading less until the window resets.

The hot set lives in Redis (any replica may heat a Space; the leader reads them); when to read each
one next is the leader's memory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from typing import Callable

import redis

from bot.alerts.transitions import ERRORS, STARTING, Observation
from bot.core.permissions import namespace_of
from bot.core.store import key

log = logging.getLogger(__name__)

HOT = key("{poll}", "hot")      # hash space → HotEntry json
SHAS = key("{poll}", "shas")    # hash space → last commit seen in a read
PUSHES = key("{poll}", "pushes")  # hash space → {"sha", "at"}: the last push, for naming the commit in alerts
PUSH_FOR = 30 * 60              # alerts this long after a push name its commit
HOT_FOR = 30 * 60               # a Space stays hot at most this long
GRACE = 3 * 60                  # a change that has not moved the Space after this long has nothing to show
HOT_CEILING = 0.4               # hot reads stop stretching the window's use past this share of the quota
SETTLED = frozenset({"RUNNING", "PAUSED", "SLEEPING", "STOPPED"}) | ERRORS


@dataclass(frozen=True)
class HotEntry:
    space: str
    since: float
    until: float
    reason: str                 # restart, hw, push, stage…
    moved: bool = False         # seen in a transitional stage since it became hot
    sha: str | None = None      # the pushed commit, when a push made it hot
    v: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, space: str, raw: str | None) -> "HotEntry | None":
        """Tolerant: an unreadable or foreign entry is None (and gets dropped), never an exception."""
        try:
            data = json.loads(raw or "")
            return cls(space=space, since=float(data["since"]), until=float(data["until"]),
                       reason=str(data.get("reason") or "?"), moved=bool(data.get("moved")),
                       sha=data.get("sha") or None)
        except (ValueError, TypeError, KeyError):
            return None


class HotSet:
    """The hot Spaces in Redis. `heat` may be called from any thread or replica."""

    def __init__(self, client: redis.Redis, hot_for: float = HOT_FOR):
        self.redis = client
        self.hot_for = hot_for

    def heat(self, space: str, now: float, reason: str, sha: str | None = None, since: float | None = None) -> None:
        """Make a Space hot from now (or from `since`: a transitional stage entered earlier)."""
        start = now if since is None else since
        entry = HotEntry(space, start, start + self.hot_for, reason, sha=sha)
        if entry.until <= now:
            return
        self.redis.hset(HOT, space, entry.to_json())

    def entries(self) -> dict[str, HotEntry]:
        found = {}
        for space, raw in self.redis.hgetall(HOT).items():
            entry = HotEntry.decode(space, raw)
            if entry is None:
                log.warning("dropping an unreadable hot entry for %s", space)
                self.redis.hdel(HOT, space)
                continue
            found[space] = entry
        return found

    def get(self, space: str) -> HotEntry | None:
        return HotEntry.decode(space, self.redis.hget(HOT, space))

    def mark_moved(self, entry: HotEntry) -> None:
        self.redis.hset(HOT, entry.space, HotEntry(**{**asdict(entry), "moved": True}).to_json())

    def cool(self, space: str) -> None:
        self.redis.hdel(HOT, space)


def hot_interval(base: float, count: int, remaining: int | None, reserve: int, reset_in: float,
                 quota: int | None = None, commands: int = 0) -> float:
    """Seconds between reads of each hot Space (pure): `base`, stretched so that reading `count` hot Spaces
    until the window resets keeps the window's use under `HOT_CEILING` of the quota and never touches the
    commands' reserve; when nothing is left, wait for the reset (the batched read still covers them).
    The `commands` requests people's commands made this window are not counted against the ceiling: they
    have the reserve, and the changes they make are what hot reads follow."""
    if remaining is None or reset_in <= 0 or count <= 0:
        return base
    quota = quota or max(remaining, 1000)
    used = max(0, quota - remaining - max(0, commands))
    allowance = min(remaining - reserve, HOT_CEILING * quota - used)
    if allowance < 1:
        return max(base, reset_in)
    wanted = count * reset_in / base   # reads at the base interval until the reset
    return base if wanted <= allowance else base * wanted / allowance


def is_done(entry: HotEntry, stage: str, now: float) -> bool:
    """A hot Space cools when it has settled after moving, when a change did not move it within the grace
    time, or after 30 minutes."""
    if now >= entry.until:
        return True
    if stage in SETTLED:
        return entry.moved or stage in ERRORS or now - entry.since >= GRACE
    return False


@dataclass
class HotReport:
    read: int = 0
    rate_limited: bool = False
    interval: float = 0.0
    alerts: int = 0


class HotPoller:
    """Reads the due hot Spaces (leader only), feeds watched ones through the poller's CAS and outbox, and
    hands every observation to the listeners (command follow-through)."""

    def __init__(self, hot: HotSet, poller, base_seconds: float,
                 listeners: list[Callable[[Observation | str, str, float], None]] = ()):
        self.hot = hot
        self.poller = poller
        self.base = base_seconds
        self.next_read: dict[str, float] = {}
        self.listeners = list(listeners)  # told of every hot read: (result, space, now)
        self.synced_for = None  # the poller's generation when every commit it read was last synced to SHAS

    def interval(self, now: float, count: int) -> float:
        budget = self.poller.budget
        return hot_interval(self.base, count, budget.remaining, budget.reserve,
                            budget.reset_at - now if budget.remaining is not None else 0, budget.quota,
                            budget.commands_spent(now))

    def tick(self, now: float) -> HotReport:
        from bot.alerts.reader import RateLimitHit, ReadFailed, entries_of

        report = HotReport()
        entries = self.hot.entries()
        for space in set(self.next_read) - set(entries):
            self.next_read.pop(space, None)
        if not entries:
            return report
        report.interval = self.interval(now, len(entries))
        due = [s for s in entries if self.next_read.get(s, 0) <= now]
        singles, batches = self.plan(due)
        reader, pool = self.poller.reader, self.poller.pool
        futures = {space: pool.submit(reader.space, space, now) for space in singles}
        futures.update({ns: pool.submit(reader.namespace, ns, now) for ns in batches})
        results: dict[str, Observation | str] = {}
        for name, future in futures.items():
            wanted = batches.get(name, [name])
            for space in wanted:
                self.next_read[space] = now + report.interval
            try:
                value = future.result()
            except RateLimitHit:
                report.rate_limited = True
                continue
            except ReadFailed as err:
                results.update({space: err.reason for space in wanted})
                continue
            if name not in batches:
                results[name] = self.poller._observation(name, value, now)
                continue
            listed = {space: runtime for space, runtime in entries_of(value[0]) if runtime}
            for space in wanted:
                results[space] = self.poller._observation(space, listed[space], now) if space in listed else "404"
        report.read = len(results)
        watches = self.poller.watch_store.load()
        watched = {s: r for s, r in results.items() if watches.is_watched(s)}
        if watched:
            report.alerts = len(self.poller.apply(watched, now))
        for space, result in results.items():
            self._after(entries[space], result, now)
        for space, entry in entries.items():
            if space not in results and now >= entry.until:
                self.hot.cool(space)
        return report

    def plan(self, due: list[str]) -> tuple[list[str], dict[str, list[str]]]:
        """(Spaces to read alone, namespace → its due Spaces to read with one listing): a namespace whose
        listing takes fewer requests than its hot Spaces is listed, like the batched read's planner."""
        by_ns: dict[str, list[str]] = {}
        for space in due:
            by_ns.setdefault(namespace_of(space), []).append(space)
        singles, batches = [], {}
        for ns, spaces in by_ns.items():
            if len(spaces) > self.poller.pages.get(ns, 1) and ns not in self.poller.unlisted:
                batches[ns] = spaces
            else:
                singles += spaces
        return singles, batches

    def _after(self, entry: HotEntry, result: Observation | str, now: float) -> None:
        for listener in self.listeners:
            try:
                listener(result, entry.space, now)
            except Exception:  # noqa: BLE001 — one listener's bug must not stop hot polling of the others
                log.exception("hot listener failed for %s", entry.space)
        if not isinstance(result, Observation):
            if now >= entry.until:
                self.hot.cool(entry.space)
            return
        if result.stage in STARTING and not entry.moved:
            self.hot.mark_moved(entry)
        elif is_done(entry, result.stage, now):
            self.hot.cool(entry.space)
            self.next_read.pop(entry.space, None)

    # ------------------------------------------------------------------ after a batched cycle

    def after_cycle(self, now: float) -> None:
        """Heat what the batched read showed: Spaces in a transitional stage, and Spaces with a new commit."""
        hot = self.hot.entries()
        for space, (_, state) in list(self.poller.cache.items()):
            if state is not None and state.stage in STARTING and space not in hot:
                self.hot.heat(space, now, "stage", since=state.since)
        reader = self.poller.reader
        shas = reader.shas
        fresh = reader.take_fresh()
        if self.synced_for != self.poller.generation:
            # Leadership changed hands (the poller forgot its states): another replica may have written SHAS.
            self.synced_for = self.poller.generation
            fresh = set(shas.copy())
        # Only the Spaces whose commit the reads changed (a page read unchanged changes none) are asked of
        # Redis: one per push, not per Space.
        current = {s: sha for s in fresh if (sha := shas.get(s))}
        if not current:
            return
        spaces = list(current)
        try:
            known = dict(zip(spaces, self.hot.redis.hmget(SHAS, spaces)))
            changed = {s: sha for s, sha in current.items() if known.get(s) != sha}
            if changed:
                self.hot.redis.hset(SHAS, mapping=changed)
        except BaseException:
            reader.give_back(spaces)
            raise
        if not changed:
            return
        for space, sha in changed.items():
            if known.get(space) is not None:      # a first sighting is a baseline, not a push
                note_push(self.hot.redis, space, sha, now)
                self.hot.heat(space, now, "push", sha=sha)

    def name_commits(self, alerts: list) -> list:
        """Build and crash alerts within 30 min of a push name its commit (the poller's `annotate` hook): the
        same alerts, in order, the ones that can named. Two Redis reads for all of them, however many."""
        wanted = sorted({a.space for a in alerts if _nameable(a)})
        if not wanted:
            return alerts
        pipe = self.hot.redis.pipeline(transaction=False)
        pipe.hmget(PUSHES, wanted)
        pipe.hmget(SHAS, wanted)
        pushes, known = (dict(zip(wanted, values)) for values in pipe.execute())
        shas = self.poller.reader.shas
        out = []
        for alert in alerts:
            if not _nameable(alert):
                out.append(alert)
                continue
            sha = _pushed(pushes[alert.space], alert.at)
            if sha is None:
                # The push and the stage change may show in the same batched read (after_cycle comes next).
                current, seen = shas.get(alert.space), known[alert.space]
                sha = current if current and seen and current != seen else None
            out.append(replace(alert, extra={**alert.extra, "commit": sha}) if sha else alert)
        return out


def _nameable(alert) -> bool:
    """A build or crash alert: the kind that names the commit a push brought."""
    return alert.kind in ("transition", "crashloop") and alert.new in ERRORS | STARTING


def note_push(client: redis.Redis, space: str, sha: str, now: float) -> None:
    """A push seen in the batched read (no webhook): remembered for naming the commit in alerts."""
    client.hset(PUSHES, space, json.dumps({"sha": sha, "at": now}))


def _pushed(raw: str | None, now: float) -> str | None:
    """The commit of a stored push record (`note_push`) if it is less than 30 min old at `now`."""
    try:
        data = json.loads(raw or "null")
        if data and now - float(data["at"]) <= PUSH_FOR and str(data["sha"]).isalnum():
            return str(data["sha"])
    except (ValueError, TypeError, KeyError):
        pass
    return None
