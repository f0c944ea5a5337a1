"""Daily roll-ups of what the poller observed, for uptime and spend reports (pure functions).

Per Space and UTC day: billed seconds per flavor with the price per hour of the time (`b|t4-medium|0.6`),
uptime seconds (`up`), incidents opened (`inc`), the longest outage that ended that day (`out`) and an
hour strip (`h`, 24 letters, the worst stage seen in each hour). Per Space and month: the billed fields
again, so a month's spend is one read, and one summary field per day (`d|05`: micro-dollars, billed
seconds, uptime seconds, incidents, longest outage), so a report over many Spaces reads one hash per
Space and month instead of one per day. The poller's CAS writes them when a stage ends; reports add the
stage a Space is in now with the same functions.

Time on a flavor whose price is unknown is kept as `b|flavor|?`: billed seconds that no estimate covers, so a
report says "price unknown" instead of counting it as $0. The arithmetic over these fields is defined here
once, in Python (`hash_totals`, `apply_entry`) and in Lua (`LUA_APPLY` for the poller's CAS, `LUA` for the fleet's
report scripts); tests/test_ledger.py checks on random inputs that the two agree.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from bot.alerts.transitions import ASLEEP, ERRORS, UP
from bot.core.store import key

# The Hub bills per minute while starting or running on paid hardware; not while building, asleep,
# paused or in error (hub-docs spaces-gpus.md "Billing").
BILLED = frozenset({"APP_STARTING", "RUNNING_APP_STARTING", "RUNNING", "RUNNING_BUILDING"})
TTL = 400 * 86400
# Hour strip letters, lowest rank first: the worst stage seen in an hour wins.
UNKNOWN, ASLEEP_MARK, PAUSED_MARK, UP_MARK, STARTING_MARK, BROKEN_MARK = ".", "s", "p", "r", "u", "b"
STRIP_RANK = ".spurb"
DAY = 86400


def day_key(space: str, day: str) -> str:
    return key("space", "{" + space + "}", "d", day)


def month_key(space: str, month: str) -> str:
    return key("space", "{" + space + "}", "m", month)


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def summary_field(day: str) -> str:
    """The month hash's field for one day: `d|05` for 2026-11-05."""
    return "d|" + day[8:10]


def billed_of(add: dict[str, int]) -> tuple[float, int, dict[str, int], int]:
    """(USD, billed seconds, billed seconds per flavor, billed seconds at an unknown price) of a day's `add`
    fields (`b|t4-medium|0.6` → seconds at $0.60/h, `b|x|?` → seconds at an unknown price); other fields are
    not billing."""
    cost, billed, flavors, unpriced = 0.0, 0, {}, 0
    for name, seconds in add.items():
        parsed = parse_billed(name)
        if parsed:
            if parsed[1] is None:
                unpriced += seconds
            else:
                cost += seconds / 3600 * parsed[1]
            billed += seconds
            flavors[parsed[0]] = flavors.get(parsed[0], 0) + seconds
    return cost, billed, flavors, unpriced


def summary_of(delta: "DayDelta") -> list[int]:
    """[micro-dollars, billed seconds, uptime seconds, incidents, longest outage, billed seconds at an unknown
    price] that a day delta adds; the CAS adds all but the fifth to the stored summary and keeps the larger fifth."""
    cost, billed, _, unpriced = billed_of(delta.add)
    return [int(round(cost * 1_000_000)), billed, delta.add.get("up", 0), delta.add.get("inc", 0),
            delta.peak.get("out", 0), unpriced]


SUMMARY_SIZE = 6


def format_summary(numbers: list[int]) -> str:
    """The stored `d|DD` value: always six numbers (`"1800000 10800 10800 0 0 0"`), so a reader splits all the
    days of a period at once."""
    return " ".join(str(n) for n in (list(numbers) + [0] * SUMMARY_SIZE)[:SUMMARY_SIZE])


def parse_summary(text: str | None) -> list[int] | None:
    """A stored `d|DD` value → its six numbers (one written before the sixth existed has five); None when
    absent or mangled (the reader then sums the day hash)."""
    if not text:
        return None
    parts = text.split(" ")
    if len(parts) > SUMMARY_SIZE:
        return None
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return None
    if any(n < 0 for n in numbers):
        return None
    return numbers + [0] * (SUMMARY_SIZE - len(numbers))


def price_text(price: float | None) -> str:
    """A price as written in a field name: `0.6`, `1.5`, `0`, or `?` when unknown (never an exponent, so the
    Lua and Python readers agree on every name)."""
    if price is None:
        return "?"
    text = f"{price:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def billed_field(flavor: str | None, price: float | None) -> str:
    return f"b|{flavor or 'none'}|{price_text(price)}"


_PRICE = re.compile(r"[0-9]+(\.[0-9]*)?")
_INT = re.compile(r"-?[0-9]+")


def parse_billed(name: str) -> tuple[str, float | None] | None:
    """`b|t4-medium|0.6` → ("t4-medium", 0.6); `b|x|?` → ("x", None); None for other fields or a mangled one."""
    parts = name.split("|")
    if len(parts) != 3 or parts[0] != "b":
        return None
    if parts[2] == "?":
        return parts[1], None
    if not _PRICE.fullmatch(parts[2]):
        return None
    return parts[1], float(parts[2])


def _int(text) -> int:
    """A stored counter; a mangled one reads as 0 (as in `LUA`)."""
    text = str(text if text is not None else "")
    return int(text) if _INT.fullmatch(text) else 0


@dataclass
class Totals:
    """One roll-up hash, summed: what `hash_totals` (Python) and `totals` (Lua) compute alike."""

    cost: float = 0.0
    billed: int = 0
    unpriced: int = 0
    up: int = 0
    incidents: int = 0
    longest_outage: int = 0
    strip: str = ""
    flavors: dict[str, int] = field(default_factory=dict)


def hash_totals(fields: dict[str, str]) -> Totals:
    """A stored day or month hash → its totals (the definition `LUA`'s `totals` follows)."""
    out = Totals()
    for name, value in fields.items():
        if name == "up":
            out.up = _int(value)
        elif name == "inc":
            out.incidents = _int(value)
        elif name == "out":
            out.longest_outage = max(0, _int(value))  # a duration: a negative one is mangled, read as none
        elif name == "h":
            out.strip = value
        else:
            parsed = parse_billed(name)
            if parsed:
                seconds = _int(value)
                if parsed[1] is None:
                    out.unpriced += seconds
                else:
                    out.cost += seconds / 3600 * parsed[1]
                out.billed += seconds
                out.flavors[parsed[0]] = out.flavors.get(parsed[0], 0) + seconds
    return out


def merge_summary(stored: str | None, add: list[int]) -> list[int]:
    """A stored `d|DD` value with a delta's summary added (the definition `LUA_APPLY`'s `merge_summary` follows):
    the first six numbers found, each summed, but the fifth (longest outage), which keeps the larger."""
    current = ([int(n) for n in _INT.findall(stored or "")] + [0] * SUMMARY_SIZE)[:SUMMARY_SIZE]
    add = (list(add) + [0] * SUMMARY_SIZE)[:SUMMARY_SIZE]
    return [max(c, a) if i == 4 else c + a for i, (c, a) in enumerate(zip(current, add))]


def apply_entry(fields: dict[str, str], entry: dict) -> dict[str, str]:
    """A roll-up hash after the CAS applies one `cas_rollup` entry to it (the definition `LUA_APPLY`'s
    `apply_entry` follows)."""
    out = dict(fields)
    for name, value in (entry.get("add") or {}).items():
        out[name] = str(int(out.get(name, "0")) + int(value))
    for name, value in (entry.get("peak") or {}).items():
        if value > int(out.get(name, "0")):
            out[name] = str(value)
    for name, value in (entry.get("sum") or {}).items():
        out[name] = format_summary(merge_summary(out.get(name), value))
    if entry.get("h"):
        out["h"] = merge_strip(out.get("h", ""), entry["h"])
    return out


# The same arithmetic in Lua, for the scripts: `LUA` (bot/fleet/store.py reports) has `totals(flat HGETALL)`
# → cost, billed, unpriced, up, inc, out, h, {"flavor:seconds", …} (a flavor may come twice, at two prices: the
# reader adds them up); `LUA_APPLY` (bot/alerts/scripts.py CAS)
# has `apply_entry(key, entry)`, which writes one `cas_rollup` entry into a hash. Two parts, so a report
# script does not define what it never calls on each of its thousands of calls.
LUA = """
-- A counter is a whole number ('12', '-3'), anything else 0; a price is '0.6', '2', '2.' or '?' (unknown).
-- Written inline and returning values, not a table: a report calls this once per hash of thousands of Spaces.
local find, match = string.find, string.match
local function totals(f)
  local cost, billed, unpriced, up, inc, out, h, fl = 0, 0, 0, 0, 0, 0, '', {}
  for j = 1, #f, 2 do
    local name, v = f[j], f[j + 1]
    if name == 'up' then up = find(v, '^%-?%d+$') and tonumber(v) or 0
    elseif name == 'h' then h = v
    elseif name == 'inc' then inc = find(v, '^%-?%d+$') and tonumber(v) or 0
    elseif name == 'out' then out = find(v, '^%-?%d+$') and math.max(0, tonumber(v)) or 0
    else
      local flavor, price = match(name, '^b|([^|]*)|([^|]*)$')
      if flavor and (price == '?' or find(price, '^%d+%.?%d*$')) then
        local sec = find(v, '^%-?%d+$') and tonumber(v) or 0
        if price == '?' then unpriced = unpriced + sec else cost = cost + sec / 3600 * tonumber(price) end
        billed = billed + sec
        fl[#fl + 1] = flavor .. ':' .. sec
      end
    end
  end
  return cost, billed, unpriced, up, inc, out, h, fl
end
"""
LUA_APPLY = """
local SUMMARY_SIZE = 6
local function merge_summary(stored, add)
  local cur, i = {}, 0
  for j = 1, SUMMARY_SIZE do cur[j] = 0 end
  for n in string.gmatch(stored or '', '%-?%d+') do
    i = i + 1
    if i <= SUMMARY_SIZE then cur[i] = tonumber(n) end
  end
  for j = 1, SUMMARY_SIZE do
    local a = tonumber(add[j]) or 0
    if j == 5 then
      if a > cur[j] then cur[j] = a end
    else
      cur[j] = cur[j] + a
    end
  end
  return table.concat(cur, ' ')
end
local STRIP_RANK = '.spurb'
local function merge_strip(cur, overlay)
  local out = {}
  for i = 1, 24 do
    local a, b = string.sub(cur, i, i), string.sub(overlay, i, i)
    if a == '' then a = '.' end
    if b == '' then b = '.' end
    if (string.find(STRIP_RANK, b, 1, true) or 1) > (string.find(STRIP_RANK, a, 1, true) or 1) then a = b end
    out[i] = a
  end
  return table.concat(out)
end
local function apply_entry(k, e)
  if e.add then for f, v in pairs(e.add) do redis.call('HINCRBY', k, f, v) end end
  if e.peak then
    for f, v in pairs(e.peak) do
      if v > tonumber(redis.call('HGET', k, f) or '0') then redis.call('HSET', k, f, v) end
    end
  end
  if e.sum then
    for f, v in pairs(e.sum) do redis.call('HSET', k, f, merge_summary(redis.call('HGET', k, f), v)) end
  end
  if e.h then redis.call('HSET', k, 'h', merge_strip(redis.call('HGET', k, 'h') or '', e.h)) end
end
"""


def mark(stage: str | None) -> str:
    if not stage:
        return UNKNOWN
    if stage in ERRORS:
        return BROKEN_MARK
    if stage in UP:
        return UP_MARK
    if stage == "PAUSED":
        return PAUSED_MARK
    if stage in ASLEEP:
        return ASLEEP_MARK
    return STARTING_MARK


# A letter that is no mark (a mangled strip) ranks as unknown, as in `LUA_APPLY`.
_RANK = {letter: rank for rank, letter in enumerate(STRIP_RANK)}


def worse(a: str, b: str) -> str:
    return b if _RANK.get(b, 0) > _RANK.get(a, 0) else a


def merge_strip(current: str, overlay: str) -> str:
    """The worse letter of each hour (the definition `LUA_APPLY`'s `merge_strip` follows)."""
    current = (current or "").ljust(24, UNKNOWN)[:24]
    overlay = (overlay or "").ljust(24, UNKNOWN)[:24]
    # The common cases, with the same answer as the letter-by-letter rule below.
    if current == overlay or not overlay.strip(UNKNOWN):
        return current
    if not current.strip(UNKNOWN) and not overlay.strip(STRIP_RANK):
        return overlay
    rank = _RANK.get
    return "".join(b if rank(b, 0) > rank(a, 0) else a for a, b in zip(current, overlay))


@dataclass
class DayDelta:
    """What one stint (or event) adds to one day's hash."""

    add: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    strip: str = UNKNOWN * 24

    def merge(self, other: "DayDelta") -> "DayDelta":
        add = dict(self.add)
        for name, value in other.add.items():
            add[name] = add.get(name, 0) + value
        peak = dict(self.peak)
        for name, value in other.peak.items():
            peak[name] = max(peak.get(name, 0), value)
        return DayDelta(add, peak, merge_strip(self.strip, other.strip))


def stint(stage: str, hardware: str | None, price: float | None, start: float, end: float) -> dict[str, DayDelta]:
    """A stage held from `start` to `end`, split at UTC midnights: uptime, billed seconds, hour strip."""
    out: dict[str, DayDelta] = {}
    if not stage or end <= start:
        return out
    letter = mark(stage)
    # Free hardware is not billed; a named flavor whose price is unknown is (`b|flavor|?`), as time no
    # estimate covers. A stage without hardware is not.
    billed = stage in BILLED and (price > 0 if price is not None else bool(hardware))
    at = start
    while at < end:
        midnight = (int(at) // DAY + 1) * DAY
        piece_end = min(end, midnight)
        seconds = int(round(piece_end - at))
        day = day_of(at)
        delta = out.setdefault(day, DayDelta())
        if seconds > 0:
            if stage in UP:
                delta.add["up"] = delta.add.get("up", 0) + seconds
            if billed:
                name = billed_field(hardware, price)
                delta.add[name] = delta.add.get(name, 0) + seconds
        day_start = int(at) // DAY * DAY
        first = int((at - day_start) // 3600)
        last = min(23, int((max(piece_end - 1e-6, at) - day_start) // 3600))
        # Each day piece of one stint is fresh, so its strip is this stage's letter over the hours it touched.
        delta.strip = UNKNOWN * first + letter * (last - first + 1) + UNKNOWN * (23 - last)
        at = piece_end
    return out


def add_deltas(into: dict[str, DayDelta], more: dict[str, DayDelta]) -> dict[str, DayDelta]:
    for day, delta in more.items():
        into[day] = into[day].merge(delta) if day in into else delta
    return into


def counted_from(state) -> float:
    """Where the stage a Space is in stops being rolled up: its start, or later when a stretch of it was
    rolled up already (up to a last successful read, before a time nobody observed)."""
    return max(state.since, state.counted or 0.0)


def open_until(state, last_ok: float | None, now: float) -> float | None:
    """The end of the stage a Space is in as reports count it (None: nothing open, all of it is rolled up):
    its last successful read. That is the last good poll cycle (`last_ok`, or its own observation time when
    later), never after `now`; a Space that stopped being observed stopped at its `last_read`, rolled up then."""
    if state is None or not state.stage or state.last_read is not None:
        return None
    seen = max(state.version or 0.0, last_ok or 0.0) if last_ok is not None else now
    return min(now, seen)


def transition_rollup(prev, state, price: float | None) -> dict[str, DayDelta]:
    """Day deltas when `state` replaces `prev` (two `SpaceState`s): the stint that ended, an incident
    that opened (counted on its day), an outage that ended (its length, kept as the day's longest)."""
    if prev is None or not prev.stage:
        return {}
    out: dict[str, DayDelta] = {}
    start = counted_from(prev)
    if prev.last_read is not None:
        pass  # it stopped being observed earlier: what it was observed doing was rolled up then
    elif state.stage != prev.stage:
        add_deltas(out, stint(prev.stage, prev.hardware, price, start, state.since))
    elif state.last_read is not None:
        # It stops being observed (a failed read, or nobody watches it any more): its stage counts up to the
        # last successful read, and no further.
        add_deltas(out, stint(prev.stage, prev.hardware, price, start, state.last_read))
    if prev.incident is None and state.incident is not None:
        add_deltas(out, {day_of(state.incident): DayDelta(add={"inc": 1})})
    if prev.incident is not None and state.incident is None:
        outage = int(round(state.since - prev.incident))
        if outage > 0:
            add_deltas(out, {day_of(state.since): DayDelta(peak={"out": outage})})
    return out


def cas_rollup(space: str, deltas: dict[str, DayDelta]) -> tuple[list[str], list[dict]]:
    """(extra keys, entries) for the poller's CAS: one entry per day hash, one per month hash (its billed
    fields and each day's summary). Each entry: {"k": index into the extra keys (1-based), "add": {...},
    "peak": {...}, "h": strip, "sum": {"d|05": [five numbers, see `summary_of`]}}."""
    keys: list[str] = []
    entries: list[dict] = []
    months: dict[str, dict[str, int]] = {}
    summaries: dict[str, dict[str, list[int]]] = {}
    for day, delta in sorted(deltas.items()):
        keys.append(day_key(space, day))
        entry: dict = {"k": len(keys)}
        if delta.add:
            entry["add"] = delta.add
        if delta.peak:
            entry["peak"] = delta.peak
        if delta.strip.strip(UNKNOWN):
            entry["h"] = delta.strip
        entries.append(entry)
        month = months.setdefault(day[:7], {})
        for name, value in delta.add.items():
            if name.startswith("b|"):
                month[name] = month.get(name, 0) + value
        summaries.setdefault(day[:7], {})[summary_field(day)] = summary_of(delta)
    for month, billed in sorted(months.items()):
        keys.append(month_key(space, month))
        entry = {"k": len(keys), "sum": summaries[month]}
        if billed:
            entry["add"] = billed
        entries.append(entry)
    return keys, entries
