"""The schedules feature: its `/space` commands, its approval kinds, its buttons and its tick."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from typing import Callable

from huggingface_hub import HfApi

from bot.approvals.flow import ApprovalKind, Approvals
from bot.approvals.store import ApprovalRequest
from bot.commands.grammar import Command
from bot.commands.operations import Upgrade, UpgradeRequests
from bot.core.budget import Budget
from bot.core.changes import Changes, Why
from bot.core.deliver import Deliveries
from bot.core.errors import BadInput, NotAllowed, NotFound, SpaceOpsError
from bot.core.flavors import DEFAULT_FLAVOR, CatalogueSource
from bot.core.hub import Spaces, call_lease
from bot.core.jobs import Deadline
from bot.core.markup import code, escape
from bot.core.permissions import Actor, Roles, declare
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store
from bot.core.words import Reply, error_reply, notice_reply, section
from bot.schedules import cost, words
from bot.schedules.runner import Runner
from bot.schedules.store import Schedule, ScheduleStore, Timed, from_redis
from bot.schedules.when import next_after, next_runs, occurrences, parse_when, zone

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"schedules"}, changes={"schedule", "unschedule", "schedule.pause", "schedule.resume"})
SAY_OP = "schedule.say"
EXTEND_SECONDS = 3600
# Queue a Slack delivery for later: (delivery id, channel, op, payload); the alerts outbox implements it.
Later = Callable[[str, str, str, str], None]
TimezoneOf = Callable[[str], "str | None"]


class Schedules:
    def __init__(self, settings: Settings, records: Store, api: HfApi, spaces: Spaces, roles: Roles,
                 deliveries: Deliveries, catalogues: CatalogueSource, approvals: UpgradeRequests | None = None,
                 timezone_of: TimezoneOf | None = None, later: Later | None = None,
                 clock: Callable[[], float] | None = None, changes: Changes | None = None,
                 budget: Budget | None = None, check: Callable[[Command, Actor], None] | None = None):
        self.settings = settings
        self.records = records
        self.api = api
        self.spaces = spaces
        self.roles = roles
        self.sender = deliveries  # the one way out to Slack (bot/core/deliver.py)
        self.catalogues = catalogues
        self.approvals = approvals
        self.timezone_of = timezone_of
        self.later = later
        self.clock = clock or records.clock  # Redis's (bot/core/clock.py)
        # The one way a change reaches the Hub: audited before and after, metered, with a deadline.
        self.changes = changes or Changes(api, records, None, 2 * settings.hub_timeout)
        # The gate (every check a command passes: roles, workspace, guests, channel scopes); raises NotAllowed.
        # Records named by id (buttons, `unschedule ID`) are checked against the Space they act on.
        self.check = check or (lambda cmd, actor: self.roles.check(cmd.name, actor.user, cmd.space))
        self.store = ScheduleStore(records.redis)
        self.runner = Runner(self.store, records, api, spaces, catalogues, self.say, settings.schedule_grace,
                             call_lease(settings.hub_timeout), self.changes, budget=budget)

    # ------------------------------------------------------------------ wiring

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        return {"schedule": self.create, "schedules": self.list, "unschedule": self.remove,
                "schedule.pause": self.pause, "schedule.resume": self.resume, "hw.for": self.timed}

    def register_kinds(self, approvals: Approvals) -> None:
        approvals.register("schedule", ApprovalKind(self._apply_schedule, self._schedule_landed))
        approvals.register("hw-for", ApprovalKind(self._apply_timed, self._timed_landed))

    def deliveries(self) -> dict[str, Callable[[str, str], None]]:
        return {SAY_OP: self._say_now}

    def tick(self, now: float, leading: Callable[[], bool] | None = None, deadline: Deadline | None = None) -> int:
        return self.runner.tick(now, leading, deadline)

    @property
    def catalogue(self):
        return self.catalogues.current

    # ------------------------------------------------------------------ Slack

    def say(self, channel: str, reply: Reply, delivery_id: str) -> None:
        """Announce in a channel, once: now, or (Slack refusing) later from the outbox under the same id."""
        try:
            self.sender.send(delivery_id, channel, reply.text, reply.blocks)
        except REDIS_ERRORS:
            log.error("schedule message %s not posted: Redis unreachable", delivery_id)

    def _say_now(self, channel: str, payload: str) -> None:
        """A message an older replica queued: posted under the id the outbox is delivering."""
        message = json.loads(payload)
        self.sender.post(channel, message.get("text", ""), message.get("blocks") or None)

    def _zone_for(self, cmd: Command, actor: Actor) -> str:
        if cmd.tz:
            return str(zone(cmd.tz))
        name = None
        if self.timezone_of is not None:
            try:
                name = self.timezone_of(actor.user)
            except Exception:  # noqa: BLE001 — a nicety: without Slack's answer the zone is UTC
                log.warning("could not read the time zone of %s; using UTC", actor.user)
        try:
            return str(zone(name)) if name else "UTC"
        except BadInput:
            return "UTC"

    # ------------------------------------------------------------------ schedule commands

    def create(self, cmd: Command, actor: Actor) -> Reply:
        when = parse_when(cmd.when or "")
        tz_name = self._zone_for(cmd, actor)
        tz = zone(tz_name)
        now = self.clock()
        runs = next_runs(when, tz, now, now)
        if not runs:
            raise BadInput(f"`{escape(when.text)}` ({escape(tz_name)}) is in the past: nothing would ever run.")
        hardware, sleep_time = None, None
        if not cmd.is_pattern:
            runtime = self.spaces.runtime(cmd.space)  # a typo'd Space fails here, not at 19:00
            hardware = runtime.requested_hardware or runtime.hardware
            if hardware is None:
                raise BadInput(f"{code(cmd.space)} is a static Space: it has no hardware to schedule.")
            sleep_time = runtime.sleep_time
        self.records.require()
        s = Schedule(id=self.store.new_id(), target=cmd.space, action=cmd.action, when=when.text, tz=tz_name,
                     channel=actor.channel, creator=actor.user, created_at=now, flavor=cmd.flavor or "",
                     sleep_seconds=cmd.seconds if cmd.action == "sleep" else None, cursor=now)
        spend = cost.raises_spend(cmd.action, hardware, self.catalogue, cmd.flavor, cmd.seconds, sleep_time)
        if spend and self.approvals is not None:
            flavor = cmd.flavor if cmd.action == "hw" else (hardware or "")
            upgrade = Upgrade(cmd.space, hardware or "", flavor, action="schedule",
                              params=json.dumps(asdict(s), sort_keys=True), summary=words.approval_summary(s),
                              cost_note=self.estimate(s, flavor, now))
            return words.pending_reply(self.approvals.request(upgrade, actor), s, runs, tz)
        self.store.create(s)
        self.records.audit(actor.user, "schedule", s.target, self._params(s))
        return words.created_reply(s, runs, tz)

    @staticmethod
    def _params(s: Schedule) -> dict:
        params = {"id": s.id, "action": s.action, "when": s.when, "tz": s.tz, "flavor": s.flavor or None,
                  "sleep": s.sleep_seconds}
        return {k: v for k, v in params.items() if v is not None}

    def estimate(self, s: Schedule, flavor: str, now: float) -> str:
        """The monthly cost words of a schedule that raises spend, paired with the pauses already scheduled."""
        when, tz = parse_when(s.when), zone(s.tz)
        until = now + cost.ESTIMATE_DAYS * 86400
        starts = occurrences(when, tz, now, until, now)
        stops: list[float] = []
        stop_whens = []
        for other in self.store.all():
            if isinstance(other, Schedule) and other.status == "active" and other.target == s.target and (
                    other.action == "pause" or (s.action == "hw" and other.action == "hw"
                                                and self.catalogue.is_upgrade(other.flavor, s.flavor))):
                try:
                    other_when = parse_when(other.when)
                    # Stops a week past the window end the runs that start inside it.
                    stops += occurrences(other_when, zone(other.tz), now, until + 7 * 86400, other.created_at)
                    stop_whens.append(other.when)
                except BadInput:
                    continue
        price = self.catalogue.price(flavor) if flavor else None
        pattern = s.target.endswith("/*")
        if stops and starts:
            hours = cost.running_hours(starts, stops)
            span = words.span_words(s.when, stop_whens[0]) if len(stop_whens) == 1 else escape(s.when)
            monthly_hours = cost.monthly(hours)
            if pattern or price is None:
                return f"{span}: {words.hours_words(monthly_hours)} per Space at its own hardware's price"
            return words.estimate_words(span, flavor, cost.about(cost.monthly(hours * price)), True)
        if pattern or price is None:
            return f"{escape(s.when)}: each paid Space runs at its hardware's price until it is paused"
        return words.estimate_words(escape(s.when), flavor, cost.about(price * 24 * cost.DAYS_PER_MONTH), False)

    def list(self, cmd: Command, actor: Actor) -> Reply:
        scope = cmd.space
        records = self.store.all()
        now = self.clock()

        def matches(target: str) -> bool:
            if not scope:
                return True
            if scope.endswith("/*"):
                return target.split("/")[0] == scope[:-2]
            return target == scope or (target.endswith("/*") and scope.split("/")[0] == target[:-2])

        readable: dict[str, bool] = {}

        def shown(target: str) -> bool:
            """Only schedules of Spaces this place may name (its scope, SPACEOPS_NAMESPACES), as the gate says."""
            if target not in readable:
                try:
                    self.check(Command("schedules", space=target), actor)
                    readable[target] = True
                except NotAllowed:
                    readable[target] = False
            return readable[target]

        schedules = [r for r in records if isinstance(r, Schedule) and matches(r.target) and shown(r.target)]
        timed = [r for r in records if isinstance(r, Timed) and matches(r.space) and shown(r.space)]

        def next_of(s: Schedule):
            try:
                tz = zone(s.tz)
                return tz, next_after(parse_when(s.when), tz, max(now, s.cursor), s.created_at)
            except BadInput:
                return zone("UTC"), None

        return words.list_reply(schedules, timed, next_of, scope, self.catalogue)

    def _find(self, record_id: str | None):
        # Ids are short hex; anything else (a forged button value) is not looked up at all.
        valid = bool(record_id) and len(record_id) <= 8 and all(c in "0123456789abcdef" for c in record_id)
        record = self.store.get(record_id) if valid else None
        if record is None:
            raise NotFound(words.not_found(escape(record_id or "")))
        return record

    def _check_target(self, record, actor: Actor) -> None:
        target = record.space if isinstance(record, Timed) else record.target
        self.check(Command("unschedule", space=target), actor)

    def remove(self, cmd: Command, actor: Actor) -> Reply:
        record = self._find(cmd.request_id)
        self._check_target(record, actor)
        self.records.require()
        if isinstance(record, Timed):
            if record.status != "active" or not self.store.swap(record.id, "status", "active", status="cancelled"):
                return words.not_active(record)
            self.store.finish(record.id)
            self.records.audit(actor.user, "unschedule", record.space, {"id": record.id})
            return words.timed_cancelled_reply(actor.user, record)
        self.store.delete(record.id)
        self.records.audit(actor.user, "unschedule", record.target, self._params(record))
        return words.removed_reply(actor.user, record)

    def pause(self, cmd: Command, actor: Actor) -> Reply:
        return self._pause(cmd, actor, True)

    def resume(self, cmd: Command, actor: Actor) -> Reply:
        return self._pause(cmd, actor, False)

    def _pause(self, cmd: Command, actor: Actor, paused: bool) -> Reply:
        record = self._find(cmd.request_id)
        if isinstance(record, Timed):
            raise BadInput(f"{code(record.id)} is a timed upgrade: `/space unschedule {record.id}` cancels its "
                           f"revert.")
        self._check_target(record, actor)
        self.records.require()
        wanted, current = ("paused", "active") if paused else ("active", "paused")
        if record.status == "finished":
            return notice_reply(f"Schedule {code(record.id)} has finished (it ran once).")
        now = self.clock()
        # Resuming skips what fell due while paused: the cursor moves to now.
        if not self.store.swap(record.id, "status", current, status=wanted, cursor=now):
            return words.already(record, paused)
        self.records.audit(actor.user, "schedule.pause" if paused else "schedule.resume", record.target,
                           {"id": record.id})
        tz = zone(record.tz)
        runs = [] if paused else next_runs(parse_when(record.when), tz, now, record.created_at)
        return words.paused_reply(actor.user, record, paused, runs, tz)

    # ------------------------------------------------------------------ approval: a schedule

    def _apply_schedule(self, request: ApprovalRequest, user: str) -> None:
        data = request.data
        try:
            s = from_redis(Schedule, {k: "" if v is None else str(v) for k, v in data.items()})
        except (TypeError, ValueError) as err:
            raise SpaceOpsError("This schedule request can't be read by this version; nothing was changed.") \
                from err
        if not s.id:
            raise SpaceOpsError("This schedule request has no schedule in it; nothing was changed.")
        now = self.clock()
        # Runs count from the approval: nothing that fell due while it waited runs late.
        s = replace(s, cursor=now, approved_by=user, status="active")
        if self.store.create(s):
            self.records.audit(user, "schedule", s.target, {**self._params(s), "approved": True})
            tz = zone(s.tz)
            runs = next_runs(parse_when(s.when), tz, now, s.created_at)
            self.say(s.channel, words.created_reply(s, runs, tz), f"schedule.created:{s.id}")

    def _schedule_landed(self, request: ApprovalRequest) -> bool:
        return self.store.get(str(request.data.get("id", ""))) is not None

    # ------------------------------------------------------------------ timed upgrades

    def timed(self, cmd: Command, actor: Actor) -> Reply:
        """`/space hw SPACE FLAVOR --for DURATION` (handed over by the `hw` command)."""
        runtime = self.spaces.runtime(cmd.space)
        current = runtime.requested_hardware or runtime.hardware
        if current is None:
            raise BadInput(f"{code(cmd.space)} is a static Space: it has no hardware to change.")
        if cmd.flavor == current:
            return notice_reply(f"{code(cmd.space)} is already on {code(current)}: nothing to do for a while.")
        self.records.require()
        for other in self.store.all():
            if isinstance(other, Timed) and other.space == cmd.space and other.status == "active":
                raise BadInput(f"{code(cmd.space)} already has a timed upgrade ({code(other.id)}, to "
                               f"{code(other.flavor)}). `/space unschedule {other.id}` cancels its revert first.")
        revert_sleep = None
        if current != DEFAULT_FLAVOR:
            revert_sleep = -1 if runtime.sleep_time is None else runtime.sleep_time
        # No id yet: the same ask twice is then the same request, and approvals posts it once.
        params = {"space": cmd.space, "flavor": cmd.flavor, "seconds": cmd.for_seconds,
                  "revert_flavor": current, "revert_sleep": revert_sleep, "channel": actor.channel,
                  "requester": actor.user}
        if self.catalogue.is_upgrade(current, cmd.flavor) and self.approvals is not None:
            total = cost.window_cost(self.catalogue.price(cmd.flavor), cmd.for_seconds)
            note = (words.window_words(cmd.for_seconds, cmd.flavor, total) + " · "
                    + words.return_words(current, revert_sleep, self.catalogue))
            upgrade = Upgrade(cmd.space, current, cmd.flavor, action="hw-for", params=json.dumps(params),
                              summary=words.timed_summary(cmd.space, cmd.flavor, cmd.for_seconds, current),
                              cost_note=note)
            return self.approvals.request(upgrade, actor)
        t = self._start_timed(params, actor.user, "")
        text = words.timed_started(t, self.catalogue, actor.user)
        return Reply(text, [section(text)], public=True)

    def _start_timed(self, params: dict, user: str, approver: str, request_id: str = "") -> Timed:
        space, flavor = str(params["space"]), str(params["flavor"])
        timed_id = self.store.new_id()
        self.changes.hardware(Why(user, "hw", {"flavor": flavor, "for": params["seconds"], "id": timed_id}), space,
                              flavor)
        now = self.clock()
        revert_sleep = params.get("revert_sleep")
        t = Timed(id=timed_id, space=space, flavor=flavor, revert_flavor=str(params["revert_flavor"]),
                  revert_sleep=None if revert_sleep is None else int(revert_sleep), started_at=now,
                  ends_at=now + int(params["seconds"]), channel=str(params["channel"]),
                  requester=str(params["requester"]), approved_by=approver, request_id=request_id)
        self.store.create(t)
        return t

    def _apply_timed(self, request: ApprovalRequest, user: str) -> None:
        params = request.data
        if "extend" in params:
            self._extend(str(params["extend"]), int(params.get("seconds") or EXTEND_SECONDS), user, request.id)
            return
        if self._timed_landed(request):
            return  # applied already
        t = self._start_timed(params, request.requester, user, request.id)
        self.say(t.channel, Reply(words.timed_started(t, self.catalogue, request.requester), []),
                 f"timed.start:{t.id}")

    def _timed_landed(self, request: ApprovalRequest) -> bool:
        params = request.data
        if "extend" in params:
            t = self.store.get(str(params["extend"]))
            return isinstance(t, Timed) and request.id in t.extensions.split(",")
        return any(isinstance(r, Timed) and r.request_id == request.id for r in self.store.all())

    def _extend(self, timed_id: str, seconds: int, user: str, request_id: str = "") -> Timed:
        t = self.store.get(timed_id)
        if not isinstance(t, Timed) or t.status != "active":
            raise SpaceOpsError(f"Timed upgrade {code(timed_id)} is over; nothing was extended.")
        if request_id and request_id in t.extensions.split(","):
            return t
        extensions = ",".join(filter(None, [t.extensions, request_id]))
        if not self.store.swap(t.id, "ends_at", repr(t.ends_at), ends_at=t.ends_at + seconds,
                               extensions=extensions):
            raise SpaceOpsError(f"Timed upgrade {code(timed_id)} changed meanwhile; try again.")
        t = replace(t, ends_at=t.ends_at + seconds, extensions=extensions)
        self.records.audit(user, "hw-for.extend", t.space, {"id": t.id, "seconds": seconds})
        self.say(t.channel, Reply(words.extended(t, user), []), f"timed.extend:{t.id}:{t.ends_at!r}")
        return t

    # ------------------------------------------------------------------ buttons

    def _clicked(self, timed_id: str, actor: Actor) -> "Timed | Reply":
        """The timed upgrade a button names, if this actor may change it and it is still active (else the
        reply that says why not)."""
        t = self._find(timed_id)
        if not isinstance(t, Timed):
            raise NotFound(words.not_found(escape(timed_id)))
        self.check(Command("hw", space=t.space), actor)
        if t.status != "active":
            return words.not_active(t)
        self.records.require()
        return t

    def extend_clicked(self, timed_id: str, actor: Actor) -> Reply:
        t = self._clicked(timed_id, actor)
        if not isinstance(t, Timed):
            return t
        if self.catalogue.is_upgrade(t.revert_flavor, t.flavor) and self.approvals is not None:
            total = cost.window_cost(self.catalogue.price(t.flavor), EXTEND_SECONDS)
            params = {"extend": t.id, "seconds": EXTEND_SECONDS}
            upgrade = Upgrade(t.space, t.revert_flavor, t.flavor, action="hw-for", params=json.dumps(params),
                              summary=f"keep {code(t.space)} on {code(t.flavor)} 1 h longer (timed upgrade "
                                      f"{code(t.id)})",
                              cost_note=words.window_words(EXTEND_SECONDS, t.flavor, total))
            return self.approvals.request(upgrade, actor)
        t = self._extend(t.id, EXTEND_SECONDS, actor.user)
        return notice_reply(f"Extended: {code(t.space)} stays on {code(t.flavor)} 1 h longer.")

    def revert_clicked(self, timed_id: str, actor: Actor) -> Reply:
        t = self._clicked(timed_id, actor)
        if not isinstance(t, Timed):
            return t
        if not self.runner.revert(t, self.clock(), by=actor.user):
            return words.not_active(self.store.get(t.id) or t)
        done = self.store.get(t.id) or t
        if done.status == "active":
            return error_reply(f"{code(t.space)} could not go back now; the bot tries again every minute.")
        return notice_reply(f"Done: timed upgrade {code(t.id)} ended ({escape(done.outcome)}).")


