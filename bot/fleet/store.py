"""Reading the roll-ups and keeping the fleet's own records: known Spaces, budgets, digests, App Home.

Every record is JSON with a version `v` and read tolerantly; reads are pipelined in chunks.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable

import redis

from bot.alerts.keys import state_key
from bot.alerts.rollups import (DAY, LUA, SUMMARY_SIZE, UNKNOWN, counted_from, day_key, format_summary,
                                month_key, parse_summary, summary_field)
from bot.alerts.transitions import SpaceState
from bot.core.store import key, script_each, script_groups

log = logging.getLogger(__name__)

KNOWN = key("fleet", "spaces")          # set of every Space the poller has seen
BUDGETS = key("fleet", "budgets")       # hash namespace → {"v", "amount", "channel", "by", "at"}
DIGESTS = key("fleet", "digests")       # hash channel → {"v", "period", "hour", "minute", "tz", "by", "at"}
HOME_OPENED = key("fleet", "home", "opened")  # zset user → last time they opened the App Home
CHUNK = 1000
VERSION = 1


# KEYS: the Space's state, then its day and month roll-up hashes (one hash tag, one slot). Returns one string:
# the state's JSON, then per hash "cost;billed seconds;up;incidents;longest outage;strip;unpriced seconds;
# flavor:seconds,…" or "". Summing in Redis keeps a 10,000-Space report to one short reply per Space instead
# of one hash per day. The sums are `totals` of bot/alerts/rollups.py `LUA`, the definition both sides share.
_FACTS = LUA + """
local out = {redis.call('HGET', KEYS[1], 'json') or ''}
for i = 2, #KEYS do
  local f = redis.call('HGETALL', KEYS[i])
  if #f == 0 then
    out[i] = ''
  else
    local cost, billed, unpriced, up, inc, o, h, fl = totals(f)
    out[i] = string.format('%.6f', cost) .. ';' .. billed .. ';' .. up .. ';' .. inc .. ';' .. o .. ';' .. h .. ';'
      .. unpriced .. ';' .. table.concat(fl, ',')
  end
end
return table.concat(out, '\\n')
"""


# KEYS: the Space's state, then day hashes: the first ARGV[1] of the period before, then the period's. Returns
# the state's JSON, the period before's cost, the period's totals as a `_FACTS` line, its daily costs and
# its hour strips: a digest of 10,000 Spaces is one short reply per Space.
_PERIOD = LUA + """
local k = tonumber(ARGV[1])
local prev, cost, billed, up, inc, o, unpriced, fl, daily, strips = 0, 0, 0, 0, 0, 0, 0, {}, {}, {}
for i = 2, #KEYS do
  local dcost, dbilled, dunpriced, dup, dinc, dout, h, flavors = totals(redis.call('HGETALL', KEYS[i]))
  if (i - 1) > k then
    cost = cost + dcost
    billed = billed + dbilled
    unpriced = unpriced + dunpriced
    up = up + dup
    inc = inc + dinc
    if dout > o then o = dout end
    for _, item in ipairs(flavors) do fl[#fl + 1] = item end
    daily[#daily + 1] = string.format('%.6f', dcost)
    if h == '' then strips[#strips + 1] = '........................' else strips[#strips + 1] = h end
  else
    prev = prev + dcost
  end
end
return table.concat({redis.call('HGET', KEYS[1], 'json') or '', string.format('%.6f', prev),
  string.format('%.6f', cost) .. ';' .. billed .. ';' .. up .. ';' .. inc .. ';' .. o .. ';;' .. unpriced .. ';'
    .. table.concat(fl, ','),
  table.concat(daily, ','), table.concat(strips)}, '\\n')
"""


# KEYS: per Space, its state then its month hashes (`script_groups`). ARGV: the number of months, then per
# month its number of days and their summary fields (`d|05`), in day order. Returns per Space the state's
# JSON, a newline, then the days' summaries joined by commas ('' when absent): one HMGET per month rather than one read per
# day, so a digest over 10,000 Spaces costs Redis two reads per Space; the caller does the sums (Lua's string
# parsing cost more than the reads).
_SUMMARY = """
local size, out = 1 + tonumber(ARGV[1]), {}
for g = 0, #KEYS / size - 1 do
  local base, days, a = g * size, {}, 2
  for m = 2, size do
    local n = tonumber(ARGV[a])
    local got = redis.call('HMGET', KEYS[base + m], unpack(ARGV, a + 1, a + n))
    for j = 1, n do days[#days + 1] = got[j] or '' end
    a = a + n + 1
  end
  out[g + 1] = (redis.call('HGET', KEYS[base + 1], 'json') or '') .. '\\n' .. table.concat(days, ',')
end
return out
"""


@dataclass
class Period:
    """One Space over a report period, summed in Redis: totals, each day's cost and hour strip, and the
    cost of the period before (for the change). `strips` is None when read from the day summaries, which
    carry no hour strips (the chart reads the few it draws from the day hashes)."""

    space: str
    state: "SpaceState | None"
    previous: float
    total: "Day"
    daily: list[float]
    strips: str | None


def _state(space: str, text: str) -> "SpaceState | None":
    if not text:
        return None
    try:
        return SpaceState.from_fields(space, {"json": text})
    except (ValueError, TypeError):
        log.warning("unreadable state of %s; reported without it", space)
        return None


def _summed(values: str, count: int, before: int) -> "tuple[float, Day, list[float]] | None":
    """(the period before's cost, the period's totals, its daily costs) from `count` day summaries joined by
    commas, the first `before` of them the period before's; None unless every one is present and well formed."""
    if count == 0:
        return 0.0, Day(), []
    size = SUMMARY_SIZE
    flat = values.replace(",", " ").split(" ")
    if len(flat) != size * count:
        return None
    try:
        n = list(map(int, flat))
    except ValueError:
        return None
    if min(n, default=0) < 0:
        return None
    cut = size * before
    daily = [c / 1e6 for c in n[cut::size]]
    return (sum(n[0:cut:size]) / 1e6,
            Day(sum(n[cut::size]) / 1e6, sum(n[cut + 1::size]), {}, sum(n[cut + 2::size]), sum(n[cut + 3::size]),
                max(n[cut + 4::size], default=0), unpriced=sum(n[cut + 5::size])), daily)


def _needs_day_hash(state: "SpaceState | None", day: str) -> bool:
    """Whether a day without a summary may hold roll-ups: only if it overlaps the time between the bot first
    seeing the Space and the start of its current stage (which the report adds itself); those were then
    written before summaries existed."""
    if state is None:
        return True
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    return max(start, state.first_seen or 0) < min(start + DAY, counted_from(state))


def _int(text: str) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0


@dataclass
class Day:
    """One Space-day of roll-up, summed: estimated cost, billed seconds (and per flavor, and those at an
    unknown price, which the cost leaves out), uptime, incidents."""

    cost: float = 0.0
    billed: int = 0
    flavors: dict[str, int] = field(default_factory=dict)
    up: int = 0
    incidents: int = 0
    longest_outage: int = 0
    strip: str = UNKNOWN * 24
    unpriced: int = 0

    @classmethod
    def decode(cls, line: str) -> "Day | None":
        """From the `_FACTS` line; None for an empty hash. A mangled field reads as 0, never raises."""
        if not line:
            return None
        parts = line.split(";", 7)
        if len(parts) < 8:
            return None
        strip = parts[5] if len(parts[5]) == 24 else (parts[5] or "").ljust(24, UNKNOWN)[:24]
        try:
            flavors = {}
            for item in parts[7].split(",") if parts[7] else ():
                name, _, seconds = item.rpartition(":")
                flavors[name] = flavors.get(name, 0) + int(seconds)
            return cls(float(parts[0]), int(parts[1]), flavors, int(parts[2]), int(parts[3]), int(parts[4]), strip,
                       int(parts[6]))
        except ValueError:
            # A hand-edited or mangled field: read the slow, forgiving way.
            flavors = {}
            for item in parts[7].split(",") if parts[7] else ():
                name, _, seconds = item.rpartition(":")
                flavors[name] = flavors.get(name, 0) + _int(seconds)
            try:
                cost = float(parts[0])
            except ValueError:
                cost = 0.0
            return cls(cost, _int(parts[1]), flavors, _int(parts[2]), _int(parts[3]), _int(parts[4]), strip,
                       _int(parts[6]))


@dataclass
class Facts:
    """What is recorded about one Space: its state, the days asked for, and each month's cost so far."""

    space: str
    state: SpaceState | None
    days: dict[str, Day] = field(default_factory=dict)
    months: dict[str, float] = field(default_factory=dict)
    unpriced: dict[str, int] = field(default_factory=dict)  # month → billed seconds at an unknown price


def _decode_json(raw: str | None) -> dict | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class FleetStore:
    def __init__(self, client: redis.Redis):
        self.redis = client

    # ------------------------------------------------------------------ roll-ups

    def facts(self, spaces: Iterable[str], days: list[str], months: Iterable[str] = ()) -> dict[str, Facts]:
        """State, day roll-ups and month costs of each Space: one script call per Space, pipelined."""
        spaces, months = list(spaces), list(months)
        out: dict[str, Facts] = {}
        for start in range(0, len(spaces), CHUNK):
            chunk = spaces[start:start + CHUNK]
            calls = [([state_key(space)] + [day_key(space, d) for d in days] + [month_key(space, m) for m in months],
                      []) for space in chunk]
            for space, text in zip(chunk, script_each(self.redis, _FACTS, calls)):
                lines = (text or "").split("\n")
                state = None
                if lines and lines[0]:
                    try:
                        state = SpaceState.from_fields(space, {"json": lines[0]})
                    except (ValueError, TypeError):
                        log.warning("unreadable state of %s; reported without it", space)
                facts = Facts(space, state)
                for day, line in zip(days, lines[1:1 + len(days)]):
                    record = Day.decode(line)
                    if record is not None:
                        facts.days[day] = record
                for month, line in zip(months, lines[1 + len(days):]):
                    record = Day.decode(line)
                    facts.months[month] = record.cost if record else 0.0
                    facts.unpriced[month] = record.unpriced if record else 0
                out[space] = facts
        return out

    def periods(self, spaces: Iterable[str], previous_days: list[str], days: list[str]) -> dict[str, Period]:
        """Each Space's period totals and the period before's cost: one script call per Space, pipelined."""
        spaces = list(spaces)
        out: dict[str, Period] = {}
        for start in range(0, len(spaces), CHUNK):
            chunk = spaces[start:start + CHUNK]
            calls = [([state_key(space)] + [day_key(space, d) for d in previous_days + days], [len(previous_days)])
                     for space in chunk]
            for space, text in zip(chunk, script_each(self.redis, _PERIOD, calls)):
                lines = (text or "").split("\n")
                if len(lines) < 5:
                    lines += [""] * (5 - len(lines))
                state = _state(space, lines[0])
                try:
                    previous = float(lines[1] or 0)
                    daily = [float(x) for x in lines[3].split(",")] if lines[3] else []
                except ValueError:
                    previous, daily = 0.0, []
                daily = (daily + [0.0] * len(days))[:len(days)]
                strips = lines[4].ljust(24 * len(days), UNKNOWN)[:24 * len(days)]
                out[space] = Period(space, state, previous, Day.decode(lines[2]) or Day(), daily, strips)
        return out

    def summaries(self, spaces: Iterable[str], previous_days: list[str], days: list[str]) -> dict[str, Period]:
        """Like `periods`, from the month hashes' day summaries (no hour strips): a script call per 200 Spaces
        (per Space on a cluster), pipelined. A Space with days written before summaries existed is read the `periods` way."""
        spaces = list(spaces)
        every = previous_days + days
        before = len(previous_days)
        months: dict[str, list[str]] = {}
        for day in every:
            months.setdefault(day[:7], []).append(summary_field(day))
        args: list = [len(months)]
        for fields in months.values():
            args += [len(fields), *fields]
        out: dict[str, Period] = {}
        fallback: list[str] = []
        groups = [[state_key(space)] + [month_key(space, m) for m in months] for space in spaces]
        for space, text in zip(spaces, script_groups(self.redis, _SUMMARY, groups, args)):
            head, _, values = (text or "").partition("\n")
            state = _state(space, head)
            numbers = _summed(values, len(every), before)
            if numbers is None:  # a day without its summary (or a mangled one): one at a time
                parsed = (values.split(",") + [""] * len(every))[:len(every)]
                parsed = [parse_summary(v) for v in parsed]
                if any(n is None and _needs_day_hash(state, every[i]) for i, n in enumerate(parsed)):
                    fallback.append(space)
                    continue
                numbers = _summed(",".join(format_summary(n or [0]) for n in parsed), len(every), before)
            previous, total, daily = numbers
            out[space] = Period(space, state, previous, total, daily, None)
        if fallback:
            out.update(self.periods(fallback, previous_days, days))
        return out

    # ------------------------------------------------------------------ known Spaces

    def remember(self, spaces: Iterable[str]) -> None:
        spaces = list(spaces)
        for start in range(0, len(spaces), 5000):
            self.redis.sadd(KNOWN, *spaces[start:start + 5000])

    def known(self) -> set[str]:
        return set(self.redis.smembers(KNOWN))

    def forget_known(self, spaces: Iterable[str]) -> None:
        spaces = list(spaces)
        for start in range(0, len(spaces), 5000):
            self.redis.srem(KNOWN, *spaces[start:start + 5000])

    # ------------------------------------------------------------------ budgets

    def set_budget(self, namespace: str, amount: float, channel: str, user: str, now: float) -> None:
        self.redis.hset(BUDGETS, namespace, json.dumps({"v": VERSION, "amount": amount, "channel": channel,
                                                        "by": user, "at": now}))

    def remove_budget(self, namespace: str) -> bool:
        return bool(self.redis.hdel(BUDGETS, namespace))

    def budgets(self) -> dict[str, dict]:
        out = {}
        for namespace, raw in self.redis.hgetall(BUDGETS).items():
            data = _decode_json(raw)
            if data and isinstance(data.get("amount"), (int, float)) and data.get("channel"):
                out[namespace] = data
        return out

    def first_alert(self, namespace: str, month: str, threshold: str) -> bool:
        """True once per namespace, month and threshold (projected, 80, 100)."""
        return bool(self.redis.set(key("fleet", "budget-alerted", namespace, month, threshold), "1", nx=True,
                                   ex=40 * 86400))

    # ------------------------------------------------------------------ digests

    def set_digest(self, channel: str, config: dict) -> None:
        self.redis.hset(DIGESTS, channel, json.dumps({"v": VERSION, **config}))

    def remove_digest(self, channel: str) -> bool:
        return bool(self.redis.hdel(DIGESTS, channel))

    def digests(self) -> dict[str, dict]:
        out = {}
        for channel, raw in self.redis.hgetall(DIGESTS).items():
            data = _decode_json(raw)
            if data and data.get("period") in ("daily", "weekly"):
                out[channel] = data
        return out

    def claim_digest(self, channel: str, period: str) -> bool:
        """SET NX on channel + period: whichever replica gets it posts; nobody posts twice."""
        return bool(self.redis.set(key("fleet", "digest-posted", channel, period), "1", nx=True, ex=60 * 86400))

    def unclaim_digest(self, channel: str, period: str) -> None:
        self.redis.delete(key("fleet", "digest-posted", channel, period))

    # ------------------------------------------------------------------ App Home

    def opened_home(self, user: str, now: float) -> None:
        self.redis.zadd(HOME_OPENED, {user: now})

    def recent_home_users(self, since: float) -> list[str]:
        self.redis.zremrangebyscore(HOME_OPENED, "-inf", since)
        return list(self.redis.zrangebyscore(HOME_OPENED, since, "+inf"))

    def home_hash(self, user: str) -> tuple[str, str]:
        """(Slack's view hash, our content fingerprint) of the user's last published Home."""
        data = _decode_json(self.redis.get(key("fleet", "home", "view", user))) or {}
        return str(data.get("hash") or ""), str(data.get("content") or "")

    def save_home_hash(self, user: str, view_hash: str, content: str) -> None:
        self.redis.set(key("fleet", "home", "view", user),
                       json.dumps({"v": VERSION, "hash": view_hash, "content": content}), ex=7 * 86400)

    def debounce(self, user: str, now: float, seconds: float) -> bool:
        """True if the user's Home may be published at `now` (at most once per `seconds`), and note it."""
        name = key("fleet", "home", "published", user)
        last = self.redis.get(name)
        if last and now - float(last) < seconds:
            return False
        self.redis.set(name, repr(now), ex=3600)
        return True
