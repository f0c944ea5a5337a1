"""The poller's Lua scripts: the per-Space compare-and-set (the fence of exactly-once) and its pending clean-up."""

from __future__ import annotations

from bot.alerts.rollups import LUA_APPLY

# Redis's own clock inside a script (ARGV[i] = '' asks for it): the same for every replica, however far
# their clocks drift. Tests pass an injected time instead.
NOW = """
local function clock(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""
# state json, stage, pending alerts json, history entry json ('' = none), history maxlen, guard ('1': a stored
# ts more than 60 s ahead of the new one, which is on Redis's clock, was written by a replica whose own clock ran
# ahead and does not fence), roll-up entries
# json ('' = none; see bot/alerts/rollups.py `cas_rollup`, applied by its `LUA_APPLY` `apply_entry`), roll-up TTL,
# retention mark ('' = none: the time this state was read while watched, written as `watched_at` with the
# backstop expiry on the Space's three keys, so retention need not mark a Space written since its last look;
# see bot/alerts/retention.py), backstop seconds, then usage field/seconds pairs.
# New alerts are appended to those still pending (never overwritten); returns {1, all pending} or 0.
# It is a Lua function of one Space's keys and arguments: CAS runs it once, CAS_MANY once per Space of a batch.
_CAS_FUNCTION = LUA_APPLY + """
local function cas(KEYS, ARGV)
  local cur = redis.call('HGET', KEYS[1], 'ts')
  if (cur or '') ~= ARGV[1] then return 0 end
  local curn = cur and tonumber(cur)
  if curn and ARGV[8] == '1' and curn > tonumber(ARGV[2]) + 60 then curn = nil end
  if curn and tonumber(ARGV[2]) <= curn then return 0 end
  local mark = ARGV[11] or ''
  if mark ~= '' then
    redis.call('HSET', KEYS[1], 'json', ARGV[3], 'stage', ARGV[4], 'ts', ARGV[2], 'v', '1', 'watched_at', mark)
  else
    redis.call('HSET', KEYS[1], 'json', ARGV[3], 'stage', ARGV[4], 'ts', ARGV[2], 'v', '1')
  end
  local pending = ''
  if ARGV[5] ~= '' then
    pending = redis.call('HGET', KEYS[1], 'pending') or ''
    if pending ~= '' then
      local ok, old = pcall(cjson.decode, pending)
      if ok and type(old) == 'table' then
        for _, a in ipairs(cjson.decode(ARGV[5])) do table.insert(old, a) end
        pending = cjson.encode(old)
      else
        pending = ARGV[5]
      end
    else
      pending = ARGV[5]
    end
    redis.call('HSET', KEYS[1], 'pending', pending)
  end
  if ARGV[6] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'entry', ARGV[6])
  end
  if ARGV[9] ~= '' then
    for _, e in ipairs(cjson.decode(ARGV[9])) do
      local k = KEYS[3 + e.k]
      apply_entry(k, e)
      redis.call('EXPIRE', k, ARGV[10])
    end
  end
  for i = 13, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
  if mark ~= '' then
    for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[12]) end
  end
  return {1, pending}
end
"""
CAS = NOW + _CAS_FUNCTION + """
return cas(KEYS, ARGV)
"""
# Many Spaces' CAS in one call (a single Redis server: its keys need not share a slot; a cluster runs CAS per
# Space). ARGV: for each Space its number of keys and of arguments, then those arguments; KEYS: each
# Space's keys in turn. Each Space is fenced alone, as by CAS; the answers in order.
CAS_MANY = NOW + _CAS_FUNCTION + """
local out, k, a = {}, 0, 1
while a <= #ARGV do
  local nkeys, nargs = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local keys, args = {}, {}
  for i = 1, nkeys do keys[i] = KEYS[k + i] end
  for i = 1, nargs do args[i] = ARGV[a + 1 + i] end
  out[#out + 1] = cas(keys, args)
  k, a = k + nkeys, a + 2 + nargs
end
return out
"""
# Many hashes read in one call (a single Redis server), as HGETALL each would: a first cycle loads every state.
HGETALL_MANY = """
local out = {}
for i, name in ipairs(KEYS) do out[i] = redis.call('HGETALL', name) end
return out
"""

# Remove the pending alerts only if they are still exactly those that were queued.
CLEAR_PENDING = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'pending') end
return 0
"""

