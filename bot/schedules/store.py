"""Schedules and timed upgrades in Redis: one hash per record (versioned, decoded tolerantly), an index
of ids, and the claims that make each occurrence, reminder and revert happen once across replicas.

    spaceops:sched:rec:<id>        hash: a Schedule or a Timed upgrade (`kind`)
    spaceops:sched:ids             set of ids
    spaceops:sched:claim:<name>    "run:<deadline>" while a replica works on it, then "done"
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import MISSING, asdict, dataclass, fields, replace

import redis

from bot.core.store import key, record_from_redis

log = logging.getLogger(__name__)
CLAIM_KEEP = 8 * 24 * 3600  # a claim outlives any grace window or retry by far
FINISHED_KEEP = 7 * 24 * 3600  # a finished one-off schedule or an ended timed upgrade stays listed a week

# KEYS[1] claim. ARGV: 1 "run:<deadline>", 2 now, 3 ttl. → ok | done | busy | takeover
CLAIM = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return 'ok'
end
if v == 'done' then return 'done' end
local deadline = tonumber(string.match(v, '^run:(.*)$') or '0') or 0
if deadline < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return 'takeover'
end
return 'busy'
"""

# KEYS[1] record. ARGV: 1 field, 2 expected value, then field/value pairs written when it matches. → 1 | 0
SWAP = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


@dataclass(frozen=True)
class Schedule:
    """`/space schedule TARGET ACTION WHEN`: acts at its times only (people win in between)."""

    id: str
    target: str          # a Space or namespace/*
    action: str          # pause | resume | restart | sleep | hw
    when: str            # canonical WHEN text (bot.schedules.when)
    tz: str
    channel: str         # where it was made: its runs are announced there
    creator: str
    created_at: float
    flavor: str = ""     # hw
    sleep_seconds: int | None = None  # sleep (-1 = never)
    status: str = "active"  # active | paused | finished
    cursor: float = 0.0  # occurrences up to here are handled
    approved_by: str = ""
    last_fire: float = 0.0
    last_outcome: str = ""
    retry_fire: float = 0.0   # an occurrence the Hub refused, tried once more at retry_at
    retry_at: float = 0.0
    retry_spaces: str = ""    # JSON list of the Spaces to try again
    kind: str = "schedule"
    v: int = 1


@dataclass(frozen=True)
class Timed:
    """`/space hw SPACE FLAVOR --for DURATION`: on `flavor` until `ends_at`, then back."""

    id: str
    space: str
    flavor: str
    revert_flavor: str
    revert_sleep: int | None  # the sleep time to restore (-1 never); None: leave it
    started_at: float
    ends_at: float
    channel: str
    requester: str
    approved_by: str = ""
    status: str = "active"    # active | reverting | reverted | overridden | cancelled
    reminded_for: float = 0.0  # the ends_at a reminder was sent for
    next_try: float = 0.0     # after a Hub failure, when the revert is tried again
    failures: int = 0
    lease_until: float = 0.0
    extensions: str = ""      # approval request ids already applied (comma list)
    outcome: str = ""
    request_id: str = ""      # the approval request that started it
    kind: str = "timed"
    v: int = 1

    @property
    def window(self) -> float:
        return self.ends_at - self.started_at

    @property
    def remind_at(self) -> float:
        """15 min before the end, or half-way through a window shorter than 30 min."""
        if self.window < 1800:
            return self.started_at + self.window / 2
        return self.ends_at - 900


def to_redis(record) -> dict[str, str]:
    out = {}
    for name, value in asdict(record).items():
        out[name] = "" if value is None else (repr(value) if isinstance(value, float) else str(value))
    return out


def from_redis(cls, raw: dict[str, str]):
    """Tolerant (see `record_from_redis`); a required field that is absent gets an empty value."""
    values = record_from_redis(cls, raw)
    for f in fields(cls):
        if f.name not in values and f.default is MISSING and f.default_factory is MISSING:  # required, absent
            values[f.name] = 0.0 if f.type == "float" else (None if f.type == "int | None" else "")
    return cls(**values)


class ScheduleStore:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self._claim = client.register_script(CLAIM)
        self._swap = client.register_script(SWAP)

    @staticmethod
    def _key(record_id: str) -> str:
        return key("sched", "rec", record_id)

    @property
    def _ids(self) -> str:
        return key("sched", "ids")

    def new_id(self) -> str:
        """Four hex digits, unique among stored records (checked when created)."""
        for _ in range(20):
            candidate = secrets.token_hex(2)
            if not self.redis.exists(self._key(candidate)):
                return candidate
        return secrets.token_hex(4)

    def create(self, record) -> bool:
        """Store a new record; False when one with this id exists (an approval applied twice)."""
        if not self.redis.hsetnx(self._key(record.id), "id", record.id):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(record.id), mapping=to_redis(record))
        pipe.sadd(self._ids, record.id)
        pipe.execute()
        return True

    def get(self, record_id: str):
        raw = self.redis.hgetall(self._key(record_id))
        if not raw:
            return None
        return from_redis(Timed if raw.get("kind") == "timed" else Schedule, raw)

    def all(self) -> list:
        """Every record, oldest first; ids whose hash is gone (expired) are dropped from the index."""
        found = []
        for record_id in sorted(self.redis.smembers(self._ids)):
            try:
                record = self.get(record_id)
            except (TypeError, ValueError) as err:  # a record this version can't read: skip it, keep the rest
                log.warning("schedule record %s unreadable (%s); skipped", record_id, err)
                continue
            if record is None:
                self.redis.srem(self._ids, record_id)
            else:
                found.append(record)
        return sorted(found, key=lambda r: (r.created_at if isinstance(r, Schedule) else r.started_at, r.id))

    def update(self, record_id: str, **changes) -> None:
        if changes:
            self.redis.hset(self._key(record_id), mapping=to_redis_values(changes))

    def swap(self, record_id: str, field: str, expected: str, **changes) -> bool:
        """Write `changes` only if `field` still holds `expected` (one Lua call)."""
        args = [field, expected]
        for name, value in to_redis_values(changes).items():
            args += [name, value]
        return bool(self._swap(keys=[self._key(record_id)], args=args))

    def finish(self, record_id: str, keep: int = FINISHED_KEEP) -> None:
        """Let an ended record be listed a while longer, then vanish."""
        self.redis.expire(self._key(record_id), keep)

    def delete(self, record_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key(record_id))
        pipe.srem(self._ids, record_id)
        return bool(pipe.execute()[0])

    # ------------------------------------------------------------------ claims

    def claim(self, name: str, now: float, lease: float) -> str:
        """ok: ours to do; takeover: ours, but a replica that died may have done it; done; busy."""
        return str(self._claim(keys=[key("sched", "claim", name)], args=[f"run:{now + lease!r}", repr(now),
                                                                             CLAIM_KEEP]))

    def done(self, name: str) -> None:
        self.redis.set(key("sched", "claim", name), "done", ex=CLAIM_KEEP)

    def once(self, name: str) -> bool:
        """True the first time (a reminder, a skipped-runs line)."""
        return bool(self.redis.set(key("sched", "claim", name), "done", nx=True, ex=CLAIM_KEEP))


def to_redis_values(changes: dict) -> dict[str, str]:
    return {name: "" if value is None else (repr(value) if isinstance(value, float) else str(value))
            for name, value in changes.items()}


def spaces_of(raw: str) -> list[str]:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


__all__ = ["Schedule", "Timed", "ScheduleStore", "replace", "spaces_of"]
