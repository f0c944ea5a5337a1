"""The poll leader's tick for schedules: due occurrences (each claimed once), missed runs, retries, and
the reminders and reverts of timed upgrades. Every stored record is handled on its own, so one broken
record or one Hub error never stops the others.

No APScheduler job per schedule: each tick computes what is due from the records in Redis with the
tick's clock, so a restart, a Redis restart or a new leader rebuilds everything from Redis.
"""

from __future__ import annotations

import json
import logging
from typing import Callable

from huggingface_hub import HfApi

from bot.core.blocks import clip
from bot.core import hub
from bot.core.budget import Budget, RateLimitHit
from bot.core.changes import Changes, Why
from bot.core.errors import BadInput, HubUnavailable, SpaceOpsError
from bot.core.flavors import DEFAULT_FLAVOR, CatalogueSource
from bot.core.hub import CallAborted, Spaces, observed
from bot.core.jobs import Deadline, LeaseLost
from bot.core.markup import code, escape
from bot.core.store import REDIS_ERRORS, Store
from bot.core.words import Reply, section
from bot.schedules import words
from bot.schedules.store import Schedule, ScheduleStore, Timed, spaces_of
from bot.schedules.when import next_after, occurrences, parse_when, zone

log = logging.getLogger(__name__)
RETRY_AFTER = 60
ASLEEP = ("PAUSED", "SLEEPING", "STOPPED")
Say = Callable[[str, Reply, str], None]  # (channel, reply, delivery id)


def say_text(text: str) -> Reply:
    return Reply(text, [section(text)])


class Pace:
    """One run's limits: the poll lease (checked before each Hub write), its deadline, the Hub budget
    (a request per Space for its runtime; the way out charges the change)."""

    def __init__(self, now: float, leading: Callable[[], bool] | None = None, deadline: Deadline | None = None,
                 budget: Budget | None = None):
        self.now = now
        self.leading = leading
        self.deadline = deadline
        self.budget = budget

    def before_write(self) -> None:
        if self.leading is not None and not self.leading():
            raise LeaseLost()

    def stop_reason(self) -> str | None:
        """Why the next Space waits for the next run (None: go on)."""
        if self.deadline is not None and self.deadline.passed():
            return words.NOT_REACHED_DEADLINE
        if self.budget is not None:
            try:
                self.budget.spend(self.now)  # the runtime read; the change is charged by the way out (changes.py)
            except RateLimitHit:
                return words.NOT_REACHED_BUDGET
        return None


class Runner:
    def __init__(self, store: ScheduleStore, records: Store, api: HfApi, spaces: Spaces,
                 catalogues: CatalogueSource, say: Say, grace: float, lease: float, changes: Changes,
                 budget: Budget | None = None):
        self.budget = budget
        self.pace = Pace(0.0)
        self.store = store
        self.records = records
        self.api = api
        self.spaces = spaces
        self.changes = changes  # the one way a change reaches the Hub: its audit entry is written first
        self.catalogues = catalogues
        self.say = say
        self.grace = grace
        self.lease = lease

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float, leading: Callable[[], bool] | None = None, deadline: Deadline | None = None) -> int:
        """Run what is due at `now`; returns how many occurrences, reminders and reverts acted.

        Off the leader's tick (a slow job): `leading()` is asked before each Hub write (a replica that lost
        the lease stops; the new leader takes the occurrence over, Space by Space), and a namespace's
        Spaces are paced by the deadline and the Hub budget (those not reached are retried a minute later)."""
        acted = 0
        self.pace = Pace(now, leading, deadline, self.budget)
        for record in self.store.all():
            try:
                if isinstance(record, Timed):
                    acted += self._timed(record, now)
                else:
                    acted += self._schedule(record, now)
            except (LeaseLost, *REDIS_ERRORS):
                raise  # the whole tick waits for Redis or the next leader
            except Exception:  # noqa: BLE001 — one record's bug must not stop the others
                log.exception("schedule %s: tick failed", record.id)
        return acted

    # ------------------------------------------------------------------ schedules

    def _schedule(self, s: Schedule, now: float) -> int:
        if s.status != "active":
            return 0
        try:
            when, tz = parse_when(s.when), zone(s.tz)
        except BadInput:
            log.warning("schedule %s: stored WHEN %r or zone %r unreadable; skipped", s.id, s.when, s.tz)
            return 0
        acted = 0
        if s.retry_at and s.retry_at <= now:
            acted += self._retry(s, now)
        due = occurrences(when, tz, s.cursor, now, s.created_at)
        if not due:
            return acted
        late = [fire for fire in due if now - fire <= self.grace]
        fire = late[-1] if late else None
        skipped = [f for f in due if f != fire]
        if skipped and self.store.once(f"{s.id}:skip:{skipped[-1]!r}"):
            self.say(s.channel, say_text(words.skipped_words(s, len(skipped), skipped[-1], tz, self.grace)),
                     f"schedule.skip:{s.id}:{skipped[-1]!r}")
            self.records.audit(s.creator, f"schedule.{s.action}", s.target,
                               {"schedule": s.id, "skipped": len(skipped)}, result="skipped: missed while away")
        if fire is not None:
            acted += self._occur(s, fire, now)
        changes = {"cursor": now}
        if when.once and next_after(when, tz, now, s.created_at) is None:
            changes["status"] = "finished"
        if fire is None:
            changes.update(last_fire=skipped[-1], last_outcome="skipped (missed while away)")
        # The cursor only moves forward: a slower replica's tick can't bring back handled runs.
        current = self.store.get(s.id)
        if current is not None and current.cursor < now:
            self.store.update(s.id, **changes)
            if changes.get("status") == "finished":
                self.store.finish(s.id)
        return acted

    def _occur(self, s: Schedule, fire: float, now: float) -> int:
        name = f"{s.id}:{fire!r}"
        claim = self.store.claim(name, now, self.lease)
        if claim in ("done", "busy"):
            return 0
        done, failures = self._act_on(s, [s.target], claim == "takeover", {"schedule": s.id}, name, now)
        self._report(s, fire, now, done, failures, retry=True)
        self.store.done(name)
        return 1

    def _retry(self, s: Schedule, now: float) -> int:
        """The one retry, a minute after a Hub failure, of the Spaces that failed."""
        name = f"{s.id}:{s.retry_fire!r}:retry"
        claim = self.store.claim(name, now, self.lease)
        self.store.update(s.id, retry_at=0.0, retry_fire=0.0, retry_spaces="")
        if claim in ("done", "busy"):
            return 0
        done, failures = self._act_on(s, spaces_of(s.retry_spaces), claim == "takeover",
                                      {"schedule": s.id, "retry": True}, name, now)
        self._report(s, s.retry_fire, now, done, failures, retry=False)
        self.store.done(name)
        return 1

    def _act_on(self, s: Schedule, targets: list[str], confirm_only: bool, params: dict, name: str, now: float):
        """Act on each Space (a namespace is listed first); ([(space, detail)], [(space, reason)]).

        Each Space of the occurrence is claimed on its own, so a leader that takes over an occurrence cut
        short by a handover acts only on the Spaces the last one did not finish."""
        done: list[tuple[str, str]] = []
        failures: list[tuple[str, str]] = []
        spaces: list[str] = []
        for target in targets:
            try:
                spaces += self._targets(target)
            except SpaceOpsError as err:
                failures.append((target, err.sentence))
        why = Why(s.creator, f"schedule.{s.action}", params, person=False)
        for index, space in enumerate(spaces):
            one = f"{name}:{space}"
            claim = self.store.claim(one, now, self.lease)
            if claim in ("done", "busy"):
                continue  # the last leader did it (or is doing it): not charged again
            reason = self.pace.stop_reason()
            if reason is not None:
                failures += [(later, reason) for later in spaces[index:]]
                break
            try:
                detail = self._act_one(s, space, why, confirm_only or claim == "takeover")
            except SpaceOpsError as err:
                failures.append((space, err.sentence))
            else:
                if detail is not None:
                    done.append((space, detail))
            self.store.done(one)  # (a lost lease raises past this: the next leader takes the Space over)
        return done, failures

    def _act_one(self, s: Schedule, space: str, why: Why, confirm_only: bool) -> str | None:
        """Plan and make the change on one Space: its detail words, or None when there was nothing to do.
        A Space that cannot be read is audited here (no change was tried); a change, by the way out."""
        try:
            planned = self._plan(s, space, confirm_only)
        except SpaceOpsError as err:
            self.records.audit(why.user, why.action, space, why.params, result=f"error: {clip(err.sentence, 200)}")
            raise
        if planned is None:
            return None
        detail, change = planned
        self.pace.before_write()
        change(why)  # audited before the Hub hears of it, and its outcome after
        return detail

    def _report(self, s: Schedule, fire: float, now: float, done, failures, retry: bool) -> None:
        self.pace.before_write()  # a leader that lost the lease mid-run leaves the report and retry to the next
        if done:
            self.say(s.channel, say_text(words.ran_words(s, done)), f"schedule.ran:{s.id}:{fire!r}:{retry}")
        if failures:
            self.say(s.channel, say_text(words.failed_words(s, failures, retry)),
                     f"schedule.failed:{s.id}:{fire!r}:{retry}")
        outcome = ("failed: " + clip(failures[0][1], 120)) if failures else (
            words.DONE_VERBS.get(s.action, s.action) if done else "nothing to do")
        changes: dict = {"last_fire": fire, "last_outcome": outcome}
        if failures and retry:
            changes.update(retry_fire=fire, retry_at=now + RETRY_AFTER,
                           retry_spaces=json.dumps([space for space, _ in failures]))
        self.store.update(s.id, **changes)

    def _targets(self, target: str) -> list[str]:
        if not target.endswith("/*"):
            return [target]
        namespace = target[:-2]
        try:
            # Under observed(): the first 429/5xx ends the read, instead of the client's sleep-and-retry
            # of up to half a minute inside the leader's tick.
            with observed():
                return hub.call(lambda: [info.id for info in self.api.list_spaces(author=namespace)])
        except CallAborted as err:
            raise HubUnavailable(f"The Hub could not list the Spaces of {code(namespace)} ({escape(err.reason)}).") \
                from err

    def _plan(self, s: Schedule, space: str, confirm_only: bool = False) -> tuple[str, Callable[[Why], object]] | None:
        """What the schedule's action does to one Space, from its runtime: (detail words, the change to make
        through `Changes`), or None when there is nothing to do (people win).

        `confirm_only`: a replica died holding this occurrence; act only if the Hub does not show it done.
        """
        runtime = self.spaces.runtime(space)
        stage = runtime.stage
        hardware = runtime.requested_hardware or runtime.hardware
        changes = self.changes
        if s.action == "pause":
            if stage in ASLEEP:
                return None  # already paused or asleep: nothing to do, nothing to say
            return "", lambda why: changes.pause(why, space)
        if s.action == "resume":
            if stage not in ASLEEP:
                return None  # someone started it already
            return "", lambda why: changes.restart(why, space)
        if s.action == "restart":
            if confirm_only and stage in ("BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"):
                return None
            return "", lambda why: changes.restart(why, space)
        if s.action == "hw":
            if hardware is None or hardware == s.flavor:
                return None
            return f"{hardware} → {s.flavor}", lambda why: changes.hardware(why, space, s.flavor)
        if s.action == "sleep":
            wanted = s.sleep_seconds if s.sleep_seconds is not None else -1
            current = -1 if runtime.sleep_time is None else runtime.sleep_time
            if hardware in (None, DEFAULT_FLAVOR) or current == wanted:
                return None
            return ("never" if wanted < 0 else words.duration_words(wanted),
                    lambda why: changes.sleep_time(why, space, wanted))
        raise SpaceOpsError(f"This version cannot run `{s.action}` schedules.")

    # ------------------------------------------------------------------ timed upgrades

    def _timed(self, t: Timed, now: float) -> int:
        if t.status == "reverting" and t.lease_until < now:
            # A replica died mid-revert: take it over and settle it from the Hub.
            if self.store.swap(t.id, "lease_until", repr(t.lease_until), status="active"):
                t = self.store.get(t.id) or t
        if t.status != "active":
            return 0
        if now >= t.ends_at and now >= t.next_try:
            self.pace.before_write()
            return self.revert(t, now)
        if now >= t.remind_at and t.reminded_for != t.ends_at and self.store.once(f"{t.id}:remind:{t.ends_at!r}"):
            self.store.update(t.id, reminded_for=t.ends_at)
            catalogue = self.catalogues.current
            extend = None
            if catalogue.is_upgrade(t.revert_flavor, t.flavor):
                extend = catalogue.price(t.flavor)
            self.say(t.channel, words.reminder(t, catalogue, extend), f"timed.remind:{t.id}:{t.ends_at!r}")
            return 1
        return 0

    def revert(self, t: Timed, now: float, by: str = "") -> int:
        """Put the Space back; once (a Lua swap on the status), whoever calls it."""
        if not self.store.swap(t.id, "status", "active", status="reverting", lease_until=now + self.lease):
            return 0
        catalogue = self.catalogues.current
        user = by or t.requester
        try:
            runtime = self.spaces.runtime(t.space)
            on = runtime.requested_hardware or runtime.hardware
            if on == t.revert_flavor and on != t.flavor:
                # Already back (a replica that died mid-revert had done it, or someone did it by hand).
                self.store.update(t.id, status="reverted", outcome=f"back on {t.revert_flavor}")
                self.store.finish(t.id)
                self.records.audit(user, "hw-for.revert", t.space, {"id": t.id},
                                   result="ok (already back)")
                self.say(t.channel, say_text(words.reverted(t, catalogue, by)), f"timed.end:{t.id}")
                return 1
            if on != t.flavor:
                self.store.update(t.id, status="overridden", outcome=f"changed by hand to {on}")
                self.store.finish(t.id)
                self.records.audit(user, "hw-for.revert", t.space, {"id": t.id, "now": on},
                                   result="skipped: hardware changed by hand")
                self.say(t.channel, say_text(words.overridden(t, on or "")), f"timed.end:{t.id}")
                return 1
            sleep = None
            if t.revert_flavor != DEFAULT_FLAVOR and t.revert_sleep is not None:
                current = -1 if runtime.sleep_time is None else runtime.sleep_time
                sleep = t.revert_sleep if current != t.revert_sleep else None
        except SpaceOpsError as err:  # the Space could not be read: no change was tried
            return self._revert_failed(t, now, user, err, audit=True)
        why = Why(user, "hw-for.revert", {"id": t.id, "flavor": t.revert_flavor, "from": t.flavor},
                  person=bool(by))
        try:
            self.changes.hardware(why, t.space, t.revert_flavor, sleep)  # audited before and after
        except SpaceOpsError as err:
            return self._revert_failed(t, now, user, err, audit=False)
        self.store.update(t.id, status="reverted", outcome=f"back on {t.revert_flavor}")
        self.store.finish(t.id)
        self.say(t.channel, say_text(words.reverted(t, catalogue, by)), f"timed.end:{t.id}")
        return 1

    def _revert_failed(self, t: Timed, now: float, user: str, err: SpaceOpsError, audit: bool) -> int:
        """Try again in a minute; the channel hears of the first failure only."""
        self.store.update(t.id, status="active", next_try=now + RETRY_AFTER, failures=t.failures + 1,
                          lease_until=0.0)
        if audit:
            self.records.audit(user, "hw-for.revert", t.space, {"id": t.id, "flavor": t.revert_flavor},
                               result=f"error: {clip(err.sentence, 200)}")
        if t.failures == 0:
            self.say(t.channel, say_text(words.revert_failed(t, err.sentence)), f"timed.fail:{t.id}")
        return 1
