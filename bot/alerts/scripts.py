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
# then usage field/seconds pairs.
# New alerts are appended to those still pending (never overwritten); returns {1, all pending} or 0.
CAS = NOW + LUA_APPLY + """
local cur = redis.call('HGET', KEYS[1], 'ts')
if (cur or '') ~= ARGV[1] then return 0 end
local curn = cur and tonumber(cur)
if curn and ARGV[8] == '1' and curn > tonumber(ARGV[2]) + 60 then curn = nil end
if curn and tonumber(ARGV[2]) <= curn then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'stage', ARGV[4], 'ts', ARGV[2], 'v', '1')
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
for i = 11, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
return {1, pending}
"""

# Remove the pending alerts only if they are still exactly those that were queued.
CLEAR_PENDING = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'pending') end
return 0
"""

