"""Approval requests in Redis: one hash per request and an index of open ones, changed only by one Lua
check-and-set, so a double click, two approvers or two replicas end in exactly one Hub call. States:

    pending ─approve→ applying ─ok→ approved
       │                 └─Hub error→ failed (still approvable; a retry goes through `applying` again)
       └─deny / cancel / expiry (also from failed)→ denied / cancelled / expired
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

import redis

from bot.core.store import key, record_from_redis

OPEN = ("pending", "failed")  # an approver may still click
TERMINAL = ("approved", "denied", "cancelled", "expired")  # out of the pending index
# Past `expires_at` the hash lives on this long, so a late sweep can still mark the message expired.
EXPIRED_GRACE = 24 * 3600
# Decided requests are kept a week: a replayed click then says who decided, instead of "unknown".
DECIDED_KEEP = 7 * 24 * 3600
# One hash tag for every approvals key, so the scripts (hash + index) also run on Redis Cluster.
TAG = "{approvals}"


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
    decided_hub: str = ""    # JSON {"user", "role", "namespace"}: the decider on the Hub ("" under slack mode)
    requester_hub: str = ""  # the same of the requester
    decided_at: float = 0.0
    error: str = ""
    attempt: str = ""  # the token of the claim allowed to finish `applying`
    lease_until: float = 0.0
    # What an approval applies: "hw" (and `duplicate_to` for a duplicate) here; other features register
    # their own actions (`Approvals.kinds`) and keep what they need as JSON in `params`.
    action: str = "hw"
    params: str = ""
    summary: str = ""    # what will happen, in mrkdwn (escaped by whoever made the request); "" → from the fields
    cost_note: str = ""  # what it costs, in mrkdwn, for actions whose cost is not one flavor's price
    v: int = 1           # record version: a newer replica's fields are ignored by an older one

    @property
    def data(self) -> dict:
        """`params` decoded; {} when absent or unreadable."""
        try:
            value = json.loads(self.params) if self.params else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

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
        """Tolerant: unknown fields are ignored, missing ones take their defaults, a garbled number is 0."""
        values = record_from_redis(cls, raw)
        for name in ("id", "space", "current", "flavor", "requester", "channel", "ts"):
            values.setdefault(name, "")
        values.setdefault("created_at", 0.0)
        values.setdefault("expires_at", 0.0)
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

    def __init__(self, client: redis.Redis, ttl: int, lease: float):
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

    def claim(self, request_id: str, user: str, now: float, hub: str = "") -> Transition:
        """pending/failed (or a stale claim) → applying; the one caller that gets `ok` calls the Hub."""
        attempt = secrets.token_hex(8)
        return self.transition(request_id, ("pending", "failed", "stale"), "applying", now,
                               decided_by=user, decided_hub=hub, decided_at=now, attempt=attempt,
                               lease_until=now + self.lease)

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

    def close(self, request_id: str, to: str, user: str, now: float, hub: str = "") -> Transition:
        """pending/failed → denied or cancelled."""
        return self.transition(request_id, OPEN, to, now, keep=DECIDED_KEEP, decided_by=user, decided_hub=hub,
                               decided_at=now)

    def expire(self, request_id: str, now: float) -> Transition:
        # A claim abandoned by a dead replica expires too, once its lease is over.
        return self.transition(request_id, OPEN + ("stale",), "expired", now, expiry="dead", keep=DECIDED_KEEP,
                               decided_at=now)
