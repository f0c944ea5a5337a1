"""Paid hardware approvals: requests kept in Redis, decided once by an approver's click.

Every state change is one Lua check-and-set on the request's hash, so a double click, two approvers
or two replicas of the bot end in exactly one Hub call. States:

    pending ─approve→ applying ─ok→ approved
       │                 └─Hub error→ failed (still approvable; a retry goes through `applying` again)
       └─deny / cancel / expiry (also from failed)→ denied / cancelled / expired
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable

import redis
from slack_sdk.errors import SlackApiError

from bot import render
from bot.errors import NotAllowed, NotFound, SpaceOpsError
from bot.grammar import Command
from bot.markup import code
from bot.operations import Actor, Upgrade
from bot.permissions import check_namespace
from bot.render import Reply
from bot.slack import with_retries
from bot.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)

OPEN = ("pending", "failed")  # an approver may still click
TERMINAL = ("approved", "denied", "cancelled", "expired")  # out of the pending index
# Past `expires_at` the hash lives on this long, so a late sweep can still mark the message expired.
EXPIRED_GRACE = 24 * 3600
# Decided requests are kept a week: a replayed click then says who decided, instead of "unknown".
DECIDED_KEEP = 7 * 24 * 3600
# An `applying` claim older than this belongs to a replica that died mid-call; another may take over.
APPLY_LEASE = 300
# Outbox ops for approval messages whose edit or thread note failed when first tried.
SHOW_OP = "approval.show"
NOTE_OP = "approval.note"
# One hash tag for every approvals key, so the scripts (hash + index) also run on Redis Cluster.
TAG = "{approvals}"


def apply_lease(hub_timeout: float) -> float:
    """How long a bot's `applying` claim lasts: its one Hub call is bounded by the client's timeouts
    (connect, send, read), so a claim older than that belongs to a replica that died."""
    return 3 * hub_timeout + 5


# KEYS[1] request hash, KEYS[2] pending index.
# ARGV: 1 allowed from-states (comma list; "stale" means an `applying` claim whose lease ran out),
#       2 new state, 3 now, 4 expiry rule (live|dead|any), 5 guard field, 6 guard value,
#       7 key TTL after the change (0 = unchanged), 8 "1" to drop the id from the index, 9.. field/value pairs.
# Returns {outcome, HGETALL...}; outcome is ok | missing | expired | live | taken | guard.
TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
local now = tonumber(ARGV[3])
local allowed = false
for state in string.gmatch(ARGV[1], '[^,]+') do
  if state == status then
    allowed = true
  elseif state == 'stale' and status == 'applying'
      and tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') < now then
    allowed = true
  end
end
local outcome = 'ok'
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '0')
if not allowed then
  outcome = 'taken'
elseif ARGV[4] == 'live' and now >= expires then
  outcome = 'expired'
elseif ARGV[4] == 'dead' and now < expires then
  outcome = 'live'
elseif ARGV[5] ~= '' and redis.call('HGET', KEYS[1], ARGV[5]) ~= ARGV[6] then
  outcome = 'guard'
end
if outcome == 'ok' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
  if ARGV[8] == '1' then redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id')) end
end
local result = redis.call('HGETALL', KEYS[1])
table.insert(result, 1, outcome)
return result
"""


@dataclass(frozen=True)
class ApprovalRequest:
    """One request as stored in Redis (all text there; typed here)."""

    id: str
    space: str
    current: str
    flavor: str
    requester: str
    channel: str
    ts: str
    created_at: float
    expires_at: float
    status: str = "pending"
    sleep_seconds: int | None = None
    duplicate_to: str = ""
    private: bool = False
    requester_channel: str = ""
    decided_by: str = ""
    decided_at: float = 0.0
    error: str = ""
    attempt: str = ""  # the token of the claim allowed to finish `applying`
    lease_until: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def to_redis(self) -> dict[str, str]:
        out = {}
        for name, value in asdict(self).items():
            if isinstance(value, bool):
                value = "1" if value else ""
            out[name] = "" if value is None else str(value)
        return out

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> "ApprovalRequest":
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for name, kind in kinds.items():
            text = raw.get(name, "")
            if kind == "float":
                values[name] = float(text or 0)
            elif kind == "int":
                values[name] = int(text or 0)
            elif kind == "int | None":
                values[name] = int(text) if text else None
            elif kind == "bool":
                values[name] = text == "1"
            else:
                values[name] = text
        return cls(**values)


@dataclass(frozen=True)
class Transition:
    """What a check-and-set found: `outcome` is ok | missing | expired | live | taken | guard."""

    outcome: str
    request: ApprovalRequest | None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class ApprovalStore:
    """Requests in Redis: a hash per request with a key TTL, and a sorted set of open ids by expiry."""

    def __init__(self, client: redis.Redis, ttl: int, lease: float = APPLY_LEASE):
        self.redis = client
        self.ttl = ttl
        self.lease = lease
        self._transition = client.register_script(TRANSITION)

    @staticmethod
    def new_id() -> str:
        # Unguessable: the id is the only thing a button carries.
        return secrets.token_urlsafe(12)

    def _key(self, request_id: str) -> str:
        return key(TAG, "request", request_id)

    @property
    def _index(self) -> str:
        return key(TAG, "pending")

    def create(self, request: ApprovalRequest) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(request.id), mapping=request.to_redis())
        pipe.expire(self._key(request.id), int(request.expires_at - request.created_at) + EXPIRED_GRACE)
        pipe.zadd(self._index, {request.id: request.expires_at})
        pipe.execute()

    def get(self, request_id: str) -> ApprovalRequest | None:
        raw = self.redis.hgetall(self._key(request_id))
        return ApprovalRequest.from_redis(raw) if raw else None

    def open_requests(self, limit: int = 50) -> list[ApprovalRequest]:
        """Open requests, soonest expiry first; index entries whose hash is gone are dropped."""
        ids = self.redis.zrange(self._index, 0, limit - 1)
        found = []
        for request_id in ids:
            request = self.get(request_id)
            if request is None:
                self.forget(request_id)
            elif request.is_open or request.status == "applying":
                found.append(request)
        return found

    def forget(self, request_id: str) -> None:
        """Drop an id from the open index (its hash is gone)."""
        self.redis.zrem(self._index, request_id)

    def due(self, now: float, limit: int = 100) -> list[str]:
        return self.redis.zrangebyscore(self._index, "-inf", now, start=0, num=limit)

    def transition(self, request_id: str, allowed: tuple[str, ...], to: str, now: float, expiry: str = "live",
                   guard: tuple[str, str] = ("", ""), keep: int = 0, **changes) -> Transition:
        """One atomic check-and-set; `changes` are fields written only when it succeeds."""
        args: list = [",".join(allowed), to, repr(now), expiry, guard[0], guard[1], keep,
                      "1" if to in TERMINAL else ""]
        for name, value in changes.items():
            args += [name, "" if value is None else str(value)]
        reply = self._transition(keys=[self._key(request_id), self._index], args=args)
        outcome, flat = reply[0], reply[1:]
        raw = dict(zip(flat[::2], flat[1::2]))
        return Transition(outcome, ApprovalRequest.from_redis(raw) if raw else None)

    # The four decisions, named for the callers.

    def claim(self, request_id: str, user: str, now: float) -> Transition:
        """pending/failed (or a stale claim) → applying; the one caller that gets `ok` calls the Hub."""
        attempt = secrets.token_hex(8)
        return self.transition(request_id, ("pending", "failed", "stale"), "applying", now,
                               decided_by=user, decided_at=now, attempt=attempt, lease_until=now + self.lease)

    def take_over(self, request_id: str, now: float) -> Transition:
        """A stale `applying` claim (its replica died) → ours, to settle from what the Hub shows."""
        return self.transition(request_id, ("stale",), "applying", now, expiry="any",
                               attempt=secrets.token_hex(8), lease_until=now + self.lease)

    def finish(self, request: ApprovalRequest, attempt: str, now: float, error: str = "") -> Transition:
        """applying → approved, or → failed with the Hub's sentence; only for the claim that holds `attempt`."""
        if error:
            return self.transition(request.id, ("applying",), "failed", now, expiry="any",
                                   guard=("attempt", attempt), error=error, lease_until=0)
        return self.transition(request.id, ("applying",), "approved", now, expiry="any",
                               guard=("attempt", attempt), keep=DECIDED_KEEP, error="", lease_until=0)

    def close(self, request_id: str, to: str, user: str, now: float) -> Transition:
        """pending/failed → denied or cancelled."""
        return self.transition(request_id, OPEN, to, now, keep=DECIDED_KEEP, decided_by=user, decided_at=now)

    def expire(self, request_id: str, now: float) -> Transition:
        # A claim abandoned by a dead replica expires too, once its lease is over.
        return self.transition(request_id, OPEN + ("stale",), "expired", now, expiry="dead", keep=DECIDED_KEEP,
                               decided_at=now)


class Approvals:
    """The feature: request, decide, cancel, list and expire, with Slack messages and audit entries."""

    def __init__(self, ctx, clock: Callable[[], float] = time.time):
        self.ctx = ctx
        self.ops = ctx.ops
        self.store = ApprovalStore(ctx.store.redis, ctx.settings.approval_ttl, apply_lease(ctx.settings.hub_timeout))
        self.clock = clock

    @property
    def catalogue(self):
        return self.ops.catalogue

    # ------------------------------------------------------------------ request

    def request(self, upgrade: Upgrade, actor: Actor) -> Reply:
        """Post the approval message, then store the request with that message's channel and ts."""
        now = self.clock()
        self.sweep(now)
        same = self._open_for(upgrade)
        if same:
            return render.approval_already_pending_reply(same, self.ctx.poster.permalink(same.channel, same.ts))
        ttl = self.ctx.settings.approval_ttl
        channel = self.ctx.settings.approval_channel or actor.channel
        request = ApprovalRequest(
            id=self.store.new_id(), space=upgrade.space, current=upgrade.current, flavor=upgrade.flavor,
            requester=actor.user, channel=channel, ts="", created_at=now, expires_at=now + ttl,
            sleep_seconds=upgrade.sleep_seconds, duplicate_to=upgrade.duplicate_to or "", private=upgrade.private,
            requester_channel=actor.channel)
        message = render.approval_message(request, self.catalogue, self.ops.hub_url)
        try:
            # Nothing is stored until Slack gives the message's ts, so wait out a short Slack hiccup here
            # (this runs on the work pool, after the ack) rather than refuse at once.
            ts = with_retries(lambda: self.ctx.poster.post(channel, message.text, message.blocks))
        except (SlackApiError, OSError) as err:
            log.warning("approval request not posted to %s: %s", channel, err)
            self.ctx.store.audit(actor.user, "approval.request", upgrade.space, self._params(request),
                                 result="error: the approval message could not be posted")
            return render.error_reply(render.approval_not_posted(channel))
        request = replace(request, ts=ts)
        # Posted first, stored second: if storing fails, the buttons find no request and refuse.
        self.store.create(request)
        self.ctx.store.audit(actor.user, "approval.request", upgrade.space, self._params(request))
        return render.approval_sent_reply(request, self.ctx.poster.permalink(channel, ts), ttl)

    def _open_for(self, upgrade: Upgrade) -> ApprovalRequest | None:
        """An open request for the same change: asking twice should not post two messages."""
        wanted = (upgrade.space, upgrade.flavor, upgrade.duplicate_to or "")
        return next((r for r in self.store.open_requests() if (r.space, r.flavor, r.duplicate_to) == wanted), None)

    @staticmethod
    def _params(request: ApprovalRequest) -> dict:
        params = {"id": request.id, "from": request.current, "flavor": request.flavor,
                  "sleep": request.sleep_seconds, "to": request.duplicate_to or None,
                  "private": request.private or None}
        return {k: v for k, v in params.items() if v is not None}

    # ------------------------------------------------------------------ clicks

    def _clicked(self, request_id: str, channel: str, ts: str) -> ApprovalRequest:
        """The request behind a button, refusing ids that don't belong to the clicked message."""
        request = self.store.get(request_id)
        # Same sentence for unknown and mismatched ids: a forger learns nothing about other requests.
        if request is None or (channel, ts) != (request.channel, request.ts):
            raise NotFound("This button does not match an open approval request (it may have expired). "
                           "Nothing was changed.")
        return request

    def approve(self, request_id: str, user: str, channel: str, ts: str) -> Reply:
        """Approver's click: check roles, claim once, call the Hub, record and show the outcome."""
        request = self._clicked(request_id, channel, ts)
        self._check_decider(request, user, "approve")
        now = self.clock()
        if request.status == "applying" and request.lease_until <= now:
            # Whoever was applying it died mid-call: settle it from the Hub before anything is applied again.
            self._take_over(request_id, now)
        claim = self.store.claim(request_id, user, now)
        if not claim.ok:
            return self._not_open(claim, request_id)
        request = claim.request
        attempt = request.attempt
        try:
            self._apply(request, user)
        except SpaceOpsError as err:
            done = self.store.finish(request, attempt, self.clock(), error=err.sentence[:500])
            self.ctx.store.audit(user, "approval.approve", request.space, self._params(request),
                                 result=f"error: {err.sentence[:200]}")
            self._announce(done.request or request)
            return render.error_reply(render.approval_apply_failed(request, err.sentence))
        try:
            done = self.store.finish(request, attempt, self.clock())
        except REDIS_ERRORS:
            # Applied, but not recorded: the claim stays `applying` and, once Redis is back and its lease
            # is over, a sweep settles it from the Hub (approved) without applying it again.
            log.error("approval %s applied on the Hub but not recorded (Redis unreachable)", request.id)
            return render.error_reply(render.approval_applied_unrecorded(request))
        self.ctx.store.audit(user, "approval.approve", request.space, self._params(request))
        final = done.request or request
        self._announce(final)
        return render.approval_click_reply(final)

    def _apply(self, request: ApprovalRequest, user: str) -> None:
        if request.duplicate_to:
            self.ops.apply_duplicate(request.space, request.duplicate_to, Actor(user=user), request.private,
                                     request.flavor, request.sleep_seconds)
        else:
            self.ops.apply_hardware(request.space, request.flavor, request.sleep_seconds)

    def deny(self, request_id: str, user: str, channel: str, ts: str) -> Reply:
        request = self._clicked(request_id, channel, ts)
        self._check_decider(request, user, "deny")
        done = self.store.close(request_id, "denied", user, self.clock())
        if not done.ok:
            return self._not_open(done, request_id)
        self.ctx.store.audit(user, "approval.deny", request.space, self._params(request))
        self._announce(done.request)
        return render.approval_click_reply(done.request)

    def _check_decider(self, request: ApprovalRequest, user: str, verb: str) -> None:
        try:
            check_namespace(request.space, self.ctx.settings)
            if request.duplicate_to:
                check_namespace(request.duplicate_to, self.ctx.settings)
            self.ops.roles.check_approver(user, request.requester)
        except NotAllowed as err:
            self.ctx.store.audit(user, f"approval.{verb}", request.space, {"id": request.id},
                                 result=f"refused: {err.sentence[:120]}")
            raise

    def _not_open(self, transition: Transition, request_id: str) -> Reply:
        """A click that lost the race, came late, or hit an expired request."""
        if transition.outcome == "expired":
            self._expire_one(request_id, self.clock())
        elif transition.outcome == "missing":
            raise NotFound("This approval request no longer exists. Nothing was changed.")
        request = self.store.get(request_id) or transition.request
        return render.approval_not_open_reply(request)

    # ------------------------------------------------------------------ cancel, list, expire

    def cancel(self, cmd: Command, actor: Actor) -> Reply:
        """`/space approvals cancel ID`: an admin cancels any request; a requester withdraws their own."""
        request = self.store.get(cmd.request_id or "")
        if request is None:
            raise NotFound(f"There is no approval request {code(cmd.request_id)} (it may have expired). "
                           f"See `/space approvals`.")
        if actor.user != request.requester and not self.ops.roles.is_admin(actor.user):
            raise NotAllowed(f"Only the requester or an admin can cancel {code(request.id)}. "
                             f"Admins: {self.ops.roles.who_holds('admin')}.")
        self.ctx.store.require()
        done = self.store.close(request.id, "cancelled", actor.user, self.clock())
        if not done.ok:
            return self._not_open(done, request.id)
        self.ctx.store.audit(actor.user, "approval.cancel", request.space, self._params(request))
        self._show(done.request)
        if actor.user != request.requester:
            self._tell_requester(done.request)
        return render.approval_cancelled_reply(done.request)

    def list(self, cmd: Command, actor: Actor) -> Reply:
        self.sweep(self.clock())
        return render.approvals_list_reply(self.store.open_requests(), self.catalogue, self.ops.hub_url)

    def sweep(self, now: float | None = None) -> int:
        """Settle claims of replicas that died, then expire overdue requests; returns how many changed."""
        now = self.clock() if now is None else now
        settled = sum(1 for request in self.store.open_requests()
                      if request.status == "applying" and request.lease_until <= now
                      and self._take_over(request.id, now))
        return settled + sum(1 for request_id in self.store.due(now) if self._expire_one(request_id, now))

    def _take_over(self, request_id: str, now: float) -> bool:
        """Settle a dead replica's claim from what the Hub shows, never by applying again; True if settled.

        The change landed → approved. It did not → failed, which an approver may approve again.
        """
        claim = self.store.take_over(request_id, now)
        if not claim.ok:
            return False  # another replica is settling it, or it was settled meanwhile
        request = claim.request
        try:
            landed = self._landed(request)
        except SpaceOpsError as err:
            log.warning("approval %s: the Hub can't confirm it after its replica stopped (%s); the next sweep "
                        "tries again", request.id, err.sentence)
            return False
        done = self.store.finish(request, request.attempt, self.clock(), error="" if landed else render.APPLY_STOPPED)
        self.ctx.store.audit(request.decided_by, "approval.approve", request.space, self._params(request),
                             result="ok (confirmed on the Hub after a replica stopped)" if landed
                             else "error: the replica applying it stopped; not applied")
        final = done.request or request
        self._announce(final)
        return True

    def _landed(self, request: ApprovalRequest) -> bool:
        """Whether the Hub already shows the approved change."""
        if request.duplicate_to:
            try:
                self.ops.runtime(request.duplicate_to)
                return True
            except NotFound:
                return False
        runtime = self.ops.runtime(request.space)
        return (runtime.requested_hardware or runtime.hardware) == request.flavor

    def _expire_one(self, request_id: str, now: float) -> bool:
        done = self.store.expire(request_id, now)
        if done.outcome == "missing":
            self.store.forget(request_id)
        if not done.ok:
            return False
        request = done.request
        self.ctx.store.audit(request.requester, "approval.expire", request.space, self._params(request))
        self._announce(request)
        return True

    # ------------------------------------------------------------------ Slack

    def _announce(self, request: ApprovalRequest) -> None:
        """Show the outcome on the approval message and tell the requester in its thread."""
        self._show(request)
        self._tell_requester(request)

    def _show(self, request: ApprovalRequest) -> None:
        """Edit the approval message to its current state; a Slack failure never undoes a decision.

        When Slack fails, the edit is queued in the outbox and delivered later, once; it re-reads the
        request then, so a late edit never shows an older state than the newest one.
        """
        try:
            self._edit(request)
        except (SlackApiError, OSError) as err:
            log.warning("approval message %s not updated now (%s); queued", request.id, err)
            self._later(f"approval.show:{request.id}:{request.status}:{request.decided_at}:{request.attempt}",
                        request.channel, SHOW_OP, request.id)

    def _show_now(self, channel: str, request_id: str) -> None:
        """Outbox delivery of a queued edit: the request as it is now."""
        request = self.store.get(request_id)
        if request is None:
            return  # gone (a week after its decision): nothing left to show
        self._edit(request)

    def _edit(self, request: ApprovalRequest) -> None:
        message = render.approval_message(request, self.catalogue, self.ops.hub_url)
        self.ctx.poster.update(request.channel, request.ts, message.text, message.blocks)

    def _tell_requester(self, request: ApprovalRequest) -> None:
        text = render.approval_outcome_note(request)
        try:
            self.ctx.poster.post(request.channel, text, thread_ts=request.ts)
        except (SlackApiError, OSError) as err:
            log.warning("requester of %s not told now (%s); queued", request.id, err)
            self._later(f"approval.note:{request.id}:{request.status}:{request.decided_at}", request.channel,
                        NOTE_OP, json.dumps({"ts": request.ts, "text": text}))

    def _note_now(self, channel: str, payload: str) -> None:
        note = json.loads(payload)
        self.ctx.poster.post(channel, note["text"], thread_ts=note["ts"])

    def _later(self, delivery_id: str, channel: str, op: str, payload: str) -> None:
        try:
            self.ctx.extras["watcher"].outbox.enqueue_one(delivery_id, channel, op, payload)
        except REDIS_ERRORS:
            log.error("approval message update %s lost: neither Slack nor Redis answered", delivery_id)


def register(ctx) -> None:
    """Hook approval handling into `ctx.ops` (request_upgrade, approvals commands)."""
    approvals = Approvals(ctx)
    ctx.extras["approvals"] = approvals
    # Slack deliveries that failed are retried by the alert outbox, whichever replica drains it.
    ctx.extras.setdefault("outbox_ops", {}).update({SHOW_OP: approvals._show_now, NOTE_OP: approvals._note_now})
    ctx.ops.request_upgrade = approvals.request
    ctx.ops.handle("approvals", approvals.list)
    ctx.ops.handle("approvals.cancel", approvals.cancel)
    # Jobs the leader's poll tick runs with its clock (bot/watching.py), so expiry needs no click.
    ctx.extras.setdefault("periodic", []).append(lambda now: sweep_expired(ctx, now))


def sweep_expired(ctx, now: float | None = None) -> int:
    """Periodic hook (the alerts scheduler may call it): expire overdue requests; returns how many."""
    return ctx.extras["approvals"].sweep(now)
