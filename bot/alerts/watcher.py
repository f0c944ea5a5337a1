"""Watches and stage-change alerts: the `watch`/`mute` commands and the scheduler that polls.

Each replica runs an APScheduler 3.11 `BackgroundScheduler` (memory job store, coalesce, one
instance at a time); the Redis lease in bot/alerts/lease.py makes only one of them poll and deliver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from huggingface_hub import HfApi

from bot.alerts import words
from bot.alerts.followthrough import EDIT_OP, FollowThrough
from bot.alerts.hot import HotPoller, HotReport, HotSet
from bot.alerts.outbox import Outbox
from bot.alerts.webhooks import WebhookReceiver
from bot.alerts.keys import HUB_FAILING
from bot.alerts.lease import Lease
from bot.alerts.poller import CycleReport, Poller
from bot.alerts.shards import SHARD_LEASE_INTERVALS, ShardLeases, shard_of
from bot.alerts.transitions import Policy, policy_of
from bot.alerts.watches import WatchStore
from bot.commands.grammar import Command
from bot.core import metrics
from bot.core.clock import local_now
from bot.core.deliver import Deliveries
from bot.core.jobs import Jobs
from bot.core.flavors import CatalogueSource
from bot.core.hub import Spaces
from bot.core.permissions import Actor, declare
from bot.core.settings import Settings
from bot.core.slack import Poster
from bot.core.store import REDIS_ERRORS, Store
from bot.core.words import Reply

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"watches"}, changes={"watch", "unwatch", "mute", "unmute"})
LEASE_INTERVALS = 2.5
DRAIN_SECONDS = 1


class Watcher:
    """Ties the watch store, poller, outbox and lease of one process together."""

    def __init__(self, settings: Settings, records: Store, poster: Poster | Deliveries, api: HfApi, spaces: Spaces,
                 catalogues: CatalogueSource, policy: Policy | None = None,
                 may_post: Callable[[str, str], bool] | None = None, prepare: Callable[[set[str]], None] | None = None,
                 privacy: Callable[[dict[str, bool]], None] | None = None,
                 reveals: Callable[[str, str], bool] | None = None,
                 may_post_in: Callable[[set[str]], Callable[[str, str], bool]] | None = None):
        """`may_post(space, channel)`: whether an alert may go there (access), `may_post_in(channels)` the same
        for a batch of alerts into these channels (their scopes read at once); `prepare(spaces)`: called before
        routing alerts about these Spaces; `privacy({space: private?})`: what each batched read saw;
        `reveals(space, channel)`: whether follow-through may show a Space's private details there."""
        self.settings = settings
        self.records = records  # the audit trail and the Redis check before a change
        self.spaces = spaces
        client = records.redis
        interval = settings.poll_seconds
        self.store = WatchStore(client)
        # The one way out to Slack for everything the bot says on its own (bot/core/deliver.py).
        self.deliveries = poster if isinstance(poster, Deliveries) else Deliveries(client, poster, clock=records.clock)
        self.outbox = Outbox(client, self.deliveries, self.store, settings.hf_endpoint, clock=records.clock,
                             may_post=may_post, prepare=prepare)
        self.poller = Poller(client, api, self.outbox, self.store, catalogues, interval,
                             policy or policy_of(settings), hub_timeout=settings.hub_timeout, privacy=privacy)
        self.lease = Lease(client, ttl=LEASE_INTERVALS * interval)
        # More than one poll shard: each replica polls the namespaces of the shards it holds; the leader lease
        # keeps everything else (mutes, delivery, hot reads, the periodic jobs) on one replica.
        self.shards = (ShardLeases(client, settings.poll_shards, SHARD_LEASE_INTERVALS * interval, self.lease.owner)
                       if settings.poll_shards > 1 else None)
        # Hot polling and command follow-through (bot/alerts/hot.py, followthrough.py).
        self.hot = HotSet(client)
        self.follow = FollowThrough(client, self.deliveries, self.hot, settings.hf_endpoint,
                                    self.poller.reader.last_log_lines, clock=records.clock,
                                    later=self.outbox.enqueue_one, reveals=reveals)
        self.hot_poller = HotPoller(self.hot, self.poller, settings.hot_seconds, listeners=[self.follow.observed])
        self.outbox.handlers[EDIT_OP] = self.follow.deliver
        self.outbox.skip = self.follow.covers
        self.outbox.skip_in = self.follow.covering
        self.outbox.may_post_in = may_post_in
        self.poller.annotate = self.hot_poller.name_commits
        self.webhooks = WebhookReceiver(client, self.hot, settings.hub_webhook_secret,
                                        lambda space: self.store.load().is_watched(space))
        self._reading = threading.Lock()  # the batched cycle and hot reads share the poller's state cache
        self.leading = False
        # Redis's clock (bot/core/clock.py): ticks, hot reads, mutes and watches all take their time from it.
        self.clock: Callable[[], float] = records.clock
        self.scheduler: BackgroundScheduler | None = None
        # Named jobs other features run on the leader's tick, with its clock, each in its own guard
        # (bot/core/jobs.py); the slow ones off the tick.
        self.periodic = Jobs()
        # Cron jobs other features add to this process's scheduler: (id, job, trigger fields). Every replica
        # runs them; the job checks the lease itself (digests).
        self.cron: list[tuple[str, Callable[[], object], dict]] = []

    # ------------------------------------------------------------------ one tick

    def server_now(self) -> float:
        """Redis's clock: the same for every replica, whatever this machine's clock says."""
        return self.clock()

    def tick(self, now: float | None = None) -> CycleReport:
        """Take or renew the lease; if ours, end due mutes, poll once, and deliver what Slack's pace allows.

        Every time here is Redis's (the one clock, bot/core/clock.py): the lease's expiry, observation times
        (the CAS fence) and the periodic jobs' `now`, so replicas with skewed clocks cannot both lead or fence
        each other out. Tests pass `now` (their stepped clock)."""
        injected = now is not None
        now = now if injected else self.clock()
        self.poller.server_clock = not injected
        if self.shards is not None:
            return self._sharded_tick(now, injected)
        if not self.lease.acquire(now):
            metrics.LEADER.set(0)
            if self.leading:
                log.info("lost the poll lease; another replica polls now")
            self.leading = False
            return CycleReport()
        metrics.LEADER.set(1)
        if not self.leading:
            # Another leader may have written states meanwhile: re-read them from Redis.
            self.poller.forget()
            self.leading = True
        self.end_mutes(now)
        leading = (lambda: self.lease.holds(now)) if injected else (lambda: self.lease.holds(self.clock()))
        started = time.monotonic()
        with self._reading:
            report = self.poller.cycle(now, leading=leading)
            self.hot_poller.after_cycle(now)
            # Announcements hear the batched read too (hot reads may be starved), and end on this tick's
            # clock even when hot ticks do not run.
            self.follow.observed_all(report.observations, now)
        metrics.POLL_CYCLE.observe(time.monotonic() - started)
        self._note_hub(report, now)
        metrics.alerts("decided", report.alerts)
        metrics.alerts("delivered", self.outbox.drain(now, leading=leading))
        self.periodic.run_tick(now, leading)
        if injected:
            self.periodic.settle()  # an injected clock: the test reads what this tick's jobs did
        return report

    def _sharded_tick(self, now: float, injected: bool) -> CycleReport:
        """`tick` with poll shards: claim shards, poll theirs; the leader lease's holder alone ends mutes,
        delivers and runs the periodic jobs (and reads hot Spaces, `hot_tick`)."""
        leader = self.lease.acquire(now)
        metrics.LEADER.set(int(leader))
        if self.leading and not leader:
            log.info("lost the leader lease; another replica runs the leader's jobs now")
        self.leading = leader
        before = self.shards.held
        held = self.shards.claim(now)
        if held != before:
            changed = before ^ held
            log.info("poll shards held: %s (was %s)", sorted(held), sorted(before))
            self.poller.forget_namespaces(lambda ns: shard_of(ns, self.shards.shards) in changed)
        self.poller.owns = self.shards.owns
        if leader:
            self.end_mutes(now)
        report = CycleReport()
        if held:
            clock = (lambda: now) if injected else self.clock
            holding = lambda: self.shards.holds(held, clock())  # noqa: E731
            started = time.monotonic()
            with self._reading:
                report = self.poller.cycle(now, leading=holding)
                self.hot_poller.after_cycle(now)
                if leader:
                    self.follow.observed_all(report.observations, now)
            metrics.POLL_CYCLE.observe(time.monotonic() - started)
            metrics.alerts("decided", report.alerts)
        if not leader:
            return report
        self._note_hub(report, now)
        leading = (lambda: self.lease.holds(now)) if injected else (lambda: self.lease.holds(self.clock()))
        metrics.alerts("delivered", self.outbox.drain(now, leading=leading))
        self.periodic.run_tick(now, leading)
        if injected:
            self.periodic.settle()
        return report

    def _note_hub(self, report: CycleReport, now: float) -> None:
        """Since when the Hub fails every read, in Redis for any replica's `/healthz` (kept from its start)."""
        if report.hub_failed:
            self.records.redis.set(HUB_FAILING, repr(now), nx=True)
        else:
            self.records.redis.delete(HUB_FAILING)

    def hot_tick(self, now: float | None = None) -> HotReport:
        """Read the hot Spaces that are due (leader only), then deliver; every `SPACEOPS_HOT_SECONDS`."""
        now = self.clock() if now is None else now
        if not self.leading or not self.lease.holds(now):
            return HotReport()
        with self._reading:
            report = self.hot_poller.tick(now)
        self.follow.sweep(now)
        self.outbox.drain(now)
        return report

    def drain(self, now: float | None = None) -> int:
        if now is None:
            now = self.clock()
            holds = lambda: self.lease.holds(self.clock())  # noqa: E731 — re-read for each delivery
        else:
            holds = lambda: self.lease.holds(now)  # noqa: E731
        delivered = self.outbox.drain(now, leading=holds) if holds() else 0
        metrics.alerts("delivered", delivered)
        return delivered

    def end_mutes(self, now: float) -> None:
        for (channel, target), until in self.store.mutes().items():
            if until <= now and self.store.unmute(channel, target):
                self._say_mute_ended(channel, target, until)

    def _say_mute_ended(self, channel: str, target: str, until: float) -> None:
        count, latest = self.store.take_held_back(channel, target)
        if count:
            self.outbox.enqueue_mute_end(channel, target, count, latest, until)

    # ------------------------------------------------------------------ scheduler

    def _scheduled(self, job) -> None:
        try:
            job()
        except REDIS_ERRORS as err:
            # One line per tick while Redis is away, not a traceback a second; the next tick retries.
            log.warning("alert scheduler tick skipped: Redis unreachable or refusing (%s: %s)",
                        type(err).__name__, err)
        except Exception:  # noqa: BLE001 — a tick must never kill the scheduler; the next one retries
            log.exception("alert scheduler tick failed")

    def start(self) -> None:
        interval = self.settings.poll_seconds
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": interval})
        scheduler.add_job(self._scheduled, "interval", args=[self.tick], seconds=interval, id="poll",
                          next_run_time=local_now())
        scheduler.add_job(self._scheduled, "interval", args=[self.drain], seconds=DRAIN_SECONDS, id="drain")
        for job_id, job, trigger in self.cron:
            scheduler.add_job(self._scheduled, "cron", args=[job], id=job_id, **trigger)
        scheduler.add_job(self._scheduled, "interval", args=[self.hot_tick], seconds=self.settings.hot_seconds,
                          id="hot")
        scheduler.start()
        self.scheduler = scheduler
        log.info("alert poller started: every %d s, lease %.0f s", interval, self.lease.ttl)

    def stop(self, release: bool = True) -> None:
        """Stop this process's scheduler; `release=False` is what a crash looks like to the others."""
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if not self.periodic.settle(timeout=5):
            log.warning("slow periodic jobs still running at shutdown: %s",
                        ", ".join(self.periodic.busy()))
        if release:
            try:
                self.lease.release()
                if self.shards is not None:
                    self.shards.release()
            except REDIS_ERRORS:
                log.warning("could not release the poll lease (Redis unreachable); it expires by itself")
        self.leading = False
        self.poller.close()

    # ------------------------------------------------------------------ commands

    def watch(self, cmd: Command, actor: Actor) -> Reply:
        channel = cmd.channel or actor.channel
        stage = None
        if not cmd.is_pattern:
            stage = self.spaces.runtime(cmd.space).stage  # a typo'd Space fails here, not silently forever
        self.records.require()
        existed = self.store.add(channel, cmd.space, cmd.only, actor.user, self.clock())
        self.records.audit(actor.user, "watch", cmd.space, {"channel": channel, "only": sorted(cmd.only)})
        fleet = self._namespace_now(cmd.space[:-2], channel) if cmd.is_pattern else None
        return words.watch_reply(cmd.space, channel, cmd.only, stage, existed, fleet)

    def _namespace_now(self, namespace: str, channel: str) -> "words.FleetNow | None":
        """What a namespace's Spaces are doing now, for the watch reply: one listing through the poller's reader
        (its budget and deadline). None when it cannot be read now (the watch holds; the alerts will tell)."""
        from bot.alerts.reader import RateLimitHit, ReadFailed, entries_of

        try:
            listed, _ = self.poller.reader.namespace(namespace, self.clock())
        except (ReadFailed, RateLimitHit) as err:
            log.info("watch of %s/*: its Spaces could not be listed now (%s)", namespace, err)
            return None
        # The reader keeps each runtime as its `fingerprint` (stage first).
        stages = {space: str(runtime[0]) for space, runtime in entries_of(listed) if runtime is not None}
        named = {space for space in stages if self._reveals(space, channel)}
        return words.FleetNow(stages, named)

    def _reveals(self, space: str, channel: str) -> bool:
        try:
            return bool(self.follow.reveals(space, channel))
        except Exception:  # noqa: BLE001 — when it can't be told, a private Space is counted, not named
            log.warning("could not tell whether %s may be named in %s", space, channel, exc_info=True)
            return False

    def unwatch(self, cmd: Command, actor: Actor) -> Reply:
        channel = cmd.channel or actor.channel
        self.records.require()
        existed = self.store.remove(channel, cmd.space)
        if existed:
            self.records.audit(actor.user, "unwatch", cmd.space, {"channel": channel})
        return words.unwatch_reply(cmd.space, channel, existed)

    def watches(self, cmd: Command, actor: Actor) -> Reply:
        channel = None if cmd.everywhere else actor.channel
        listed = [(w.channel, w.target, w.only) for w in self.store.load().watches
                  if channel is None or w.channel == channel]
        return words.watches_reply(listed, channel, self.store.mutes())

    def mute(self, cmd: Command, actor: Actor) -> Reply:
        self.records.require()
        until = self.server_now() + (cmd.seconds or 0)  # compared with the ticks' time, which is Redis's
        self.store.mute(actor.channel, cmd.space, until)
        self.records.audit(actor.user, "mute", cmd.space, {"channel": actor.channel, "seconds": cmd.seconds})
        return words.mute_reply(cmd.space, actor.channel, until)

    def unmute(self, cmd: Command, actor: Actor) -> Reply:
        self.records.require()
        existed = self.store.unmute(actor.channel, cmd.space)
        if existed:
            self.records.audit(actor.user, "unmute", cmd.space, {"channel": actor.channel})
            self._say_mute_ended(actor.channel, cmd.space, self.server_now())
        return words.unmute_reply(cmd.space, actor.channel, existed)

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        """The `/space` commands this feature answers."""
        return {name: getattr(self, name) for name in ("watch", "unwatch", "watches", "mute", "unmute")}
