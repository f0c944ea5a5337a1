"""Sharing the batched poll across replicas: namespaces hashed into `SPACEOPS_POLL_SHARDS` shards, one lease each.

Every replica (or `worker` process) claims shards once per tick with one Lua script on Redis's clock: it
renews its own, counts the live replicas (a heartbeat hash), takes free shards up to its fair share
(ceil(shards / live replicas)), and beyond that only shards that were free at its previous claim too (nobody
below their share took them in a whole tick: what nobody holds). A replica above its fair share gives the
extras back when another live replica holds fewer than shards // live. The leases, the heartbeat hash and the
script share the `{poll}` hash tag, so the whole claim is one script in one Redis Cluster slot.

A shard changing hands is fenced by the per-Space compare-and-set (bot/alerts/scripts.py `CAS`): the new holder
reads states from Redis, and a late write of the old one fails its CAS, so a change is never posted twice or lost.
"""

from __future__ import annotations

import zlib

import redis

from bot.alerts.scripts import NOW
from bot.core.store import key

MEMBERS = key("{poll}", "members")  # hash owner → until when it is alive (Redis's clock)
SHARD_LEASE_INTERVALS = 1.5  # a dead holder's shards are free this many intervals after its last claim


def shard_key(shard: int) -> str:
    return key("{poll}", "shard", str(shard))


def shard_of(namespace: str, shards: int) -> int:
    """The shard of a namespace (a single watched Space goes by its namespace): stable across processes."""
    if shards <= 1:
        return 0
    return zlib.crc32(namespace.lower().encode()) % shards


# KEYS: members, then shard 0..n-1. ARGV: owner, now ('' = Redis TIME), ttl s, ttl ms, shards free at the previous
# claim (comma-separated), '1' = give everything back. Returns the shards held after the claim.
_CLAIM = NOW + """
local owner, now, ttl, n = ARGV[1], clock(ARGV[2]), tonumber(ARGV[3]), #KEYS - 1
local value = owner .. '|' .. string.format('%.3f', now + ttl)
if ARGV[6] == '1' then
  for i = 2, #KEYS do
    local cur = redis.call('GET', KEYS[i])
    if cur and string.sub(cur, 1, string.len(owner) + 1) == owner .. '|' then redis.call('DEL', KEYS[i]) end
  end
  redis.call('HDEL', KEYS[1], owner)
  return {}
end
redis.call('HSET', KEYS[1], owner, string.format('%.3f', now + ttl))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local live, held = {}, {}
local members = redis.call('HGETALL', KEYS[1])
for i = 1, #members, 2 do
  if tonumber(members[i + 1]) > now then live[members[i]] = 0 else redis.call('HDEL', KEYS[1], members[i]) end
end
local count = 0
for _ in pairs(live) do count = count + 1 end
local fair, floor = math.ceil(n / count), math.floor(n / count)
local mine, free = {}, {}
for i = 0, n - 1 do
  local cur = redis.call('GET', KEYS[i + 2])
  local holder, expires
  if cur then holder, expires = string.match(cur, '^(.*)|([0-9.]+)$') end
  if holder and expires and tonumber(expires) > now then
    if holder == owner then table.insert(mine, i) elseif live[holder] then live[holder] = live[holder] + 1 end
  else
    table.insert(free, i)
  end
end
local starving = false
for member, holds in pairs(live) do
  if member ~= owner and holds < floor then starving = true end
end
while #mine > fair and starving do
  redis.call('DEL', KEYS[table.remove(mine) + 2])
end
for _, i in ipairs(mine) do redis.call('SET', KEYS[i + 2], value, 'PX', ARGV[4]) end
local before = {}
for i in string.gmatch(ARGV[5], '[0-9]+') do before[tonumber(i)] = true end
for _, i in ipairs(free) do
  if #mine < fair or before[i] then
    redis.call('SET', KEYS[i + 2], value, 'PX', ARGV[4])
    table.insert(mine, i)
  end
end
table.sort(mine)
local out = {}
for _, i in ipairs(mine) do table.insert(out, i) end
table.insert(out, -1)
for _, i in ipairs(free) do table.insert(out, i) end
return out
"""

# KEYS: the shards to check. ARGV: owner, now. 1 when every one of them is still this owner's.
_HOLDS = NOW + """
local now = clock(ARGV[2])
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if not cur then return 0 end
  local holder, expires = string.match(cur, '^(.*)|([0-9.]+)$')
  if holder ~= ARGV[1] or not expires or tonumber(expires) <= now then return 0 end
end
return 1
"""


class ShardLeases:
    """This replica's claim on poll shards (only used with more than one shard)."""

    def __init__(self, client: redis.Redis, shards: int, ttl: float, owner: str):
        self.redis = client
        self.shards = shards
        self.ttl = ttl
        self.owner = owner
        self.held: frozenset[int] = frozenset()
        self._free: list[int] = []  # free at the previous claim
        self._claim = client.register_script(_CLAIM)
        self._holds = client.register_script(_HOLDS)

    def _keys(self) -> list[str]:
        return [MEMBERS, *(shard_key(i) for i in range(self.shards))]

    def claim(self, now: float | None = None) -> frozenset[int]:
        """Renew, take and give back shards (see the module's docstring); the shards this replica holds now."""
        out = self._claim(keys=self._keys(), args=[self.owner, "" if now is None else repr(now), repr(self.ttl),
                                                   int(self.ttl * 1000), ",".join(map(str, self._free)), ""])
        out = [int(x) for x in out]
        split = out.index(-1)
        self.held, self._free = frozenset(out[:split]), out[split + 1:]
        return self.held

    def holds(self, shards, now: float | None = None) -> bool:
        """Whether every one of these shards is still this replica's (checked before committing a cycle)."""
        shards = sorted(shards)
        if not shards:
            return False
        return bool(self._holds(keys=[shard_key(i) for i in shards], args=[self.owner, "" if now is None else repr(now)]))

    def release(self) -> None:
        """Give every shard back at once (SIGTERM): the others take them at their next tick."""
        self._claim(keys=self._keys(), args=[self.owner, "", repr(self.ttl), int(self.ttl * 1000), "", "1"])
        self.held = frozenset()

    def owns(self, namespace: str) -> bool:
        return shard_of(namespace, self.shards) in self.held
