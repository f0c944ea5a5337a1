"""The poll leader's lease: one Redis key whose expiry is on Redis's clock, taken, renewed and released by Lua."""

from __future__ import annotations

import uuid

import redis

from bot.alerts.keys import LEASE
from bot.alerts.scripts import NOW as _NOW

# Renew if mine, take if free or expired; the lease value carries its expiry (on Redis's clock, or the
# injected one in tests), and PEXPIRE still removes it in real time when every replica is gone.
# ARGV: owner, now ('' = Redis TIME), ttl seconds, ttl ms.
_LEASE = _NOW + """
local now = clock(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner, expires = string.match(cur, '^(.*)|([0-9.]+)$')
  if owner ~= ARGV[1] and expires and tonumber(expires) > now then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%.3f', now + tonumber(ARGV[3])), 'PX', ARGV[4])
return 1
"""

_HOLDS = _NOW + """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local owner, expires = string.match(cur, '^(.*)|([0-9.]+)$')
if owner == ARGV[1] and expires and tonumber(expires) > clock(ARGV[2]) then return 1 end
return 0
"""

_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: state, usage, history, then the day and month roll-up hashes. ARGV: expected ts ('' = none), new ts,


class Lease:
    """Leader lease on one Redis key: `acquire()` renews or takes it; only the holder polls.

    Expiry is on Redis's clock: the watcher passes the one clock's time (bot/core/clock.py), and without
    `now` the script reads `TIME` itself, so replicas whose own clocks differ by minutes still agree on
    who leads."""

    def __init__(self, client: redis.Redis, ttl: float, owner: str | None = None):
        self.redis = client
        self.ttl = ttl
        self.owner = owner or uuid.uuid4().hex
        self._acquire = client.register_script(_LEASE)
        self._holds = client.register_script(_HOLDS)
        self._release = client.register_script(_RELEASE)

    def acquire(self, now: float | None = None) -> bool:
        return bool(self._acquire(keys=[LEASE], args=[self.owner, "" if now is None else repr(now), repr(self.ttl),
                                                      int(self.ttl * 1000)]))

    def holds(self, now: float | None = None) -> bool:
        return bool(self._holds(keys=[LEASE], args=[self.owner, "" if now is None else repr(now)]))

    def release(self) -> None:
        self._release(keys=[LEASE], args=[self.owner])

