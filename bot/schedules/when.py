"""WHEN, the readable or cron part of a schedule, parsed into a value; its fire times in a time zone.

Pure: no clock is read here, every function takes the instants it needs (UTC epoch seconds).
Forms: `weekdays 19:00`, `weekends 10:00`, `daily 02:30`, `mon,wed,fri 08:00`, `sat 10:00`, `every 6h`,
`cron "0 19 * * 1-5"` (standard 5 fields; day of month OR day of week as cron does) and
`at 2026-12-24 18:00` (once). Times are wall-clock times in the schedule's zone, across DST changes:
a time the spring change skips runs when the clock gets past it; a time the autumn change repeats runs once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from bot.core.blocks import clip
from bot.core.errors import BadInput
from bot.core.markup import escape

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"daily": DAYS, "everyday": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:], "weekend": DAYS[5:]}
_FULL_DAYS = {name: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                            "sunday")} | {"tues": "tue", "thur": "thu", "thurs": "thu"}
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # cron numbers 0..7
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
_EVERY = re.compile(r"^(\d+)\s*(m|min|mins|h|d)$", re.I | re.ASCII)
_QUOTES = "\"'“”‘’"
MIN_INTERVAL = 60
MAX_OCCURRENCES = 10_000  # a search for due runs stops here (a minute schedule after a week away)
EXAMPLES = ("`weekdays 19:00`, `daily 02:30`, `mon,wed,fri 08:00`, `every 6h`, `cron \"0 19 * * 1-5\"` "
            "or `at 2026-12-24 18:00`")


@dataclass(frozen=True)
class When:
    """One parsed WHEN. `text` is its canonical form, the one stored and shown."""

    kind: str  # weekly | every | cron | at
    text: str
    days: tuple[str, ...] = ()
    hour: int = 0
    minute: int = 0
    seconds: int = 0       # every
    cron: tuple[str, ...] = ()
    at: str = ""           # at: "YYYY-MM-DD HH:MM", wall-clock in the schedule's zone

    @property
    def once(self) -> bool:
        return self.kind == "at"


def zone(name: str) -> ZoneInfo:
    """`Europe/Paris` (or `UTC`) → ZoneInfo; a sentence for anything else."""
    text = (name or "").strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        text = "UTC"
    try:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$", text) or len(text) > 64:
            raise ZoneInfoNotFoundError(text)
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadInput(f"`{escape(clip(text, 64))}` is not a time zone: use an Area/City name such as Europe/Paris, "
                       f"America/New_York or UTC.") from None


def _time(token: str) -> tuple[int, int]:
    match = _TIME.match(token)
    if not match:
        raise BadInput(f"`{escape(clip(token, 20))}` is not a time of day: use 24-hour HH:MM, such as 08:30 or 19:00.")
    return int(match.group(1)), int(match.group(2))


def _days(token: str) -> tuple[str, ...]:
    word = token.lower()
    if word in DAY_SETS:
        return DAY_SETS[word]
    found = []
    for part in word.split(","):
        part = _FULL_DAYS.get(part, part)
        if part not in DAYS:
            raise BadInput(f"`{escape(clip(token, 30))}` is not a day: use weekdays, weekends, daily, or days such as "
                           f"mon,wed,fri. WHEN is one of {EXAMPLES}.")
        if part not in found:
            found.append(part)
    return tuple(sorted(found, key=DAYS.index))


def _day_words(days: tuple[str, ...]) -> str:
    for name in ("daily", "weekdays", "weekends"):
        if days == DAY_SETS[name]:
            return name
    return ",".join(days)


def parse_when(text: str) -> When:
    """The WHEN text of `/space schedule` → When, or BadInput naming the forms."""
    words = (text or "").split()
    if not words:
        raise BadInput(f"Say when: {EXAMPLES}.")
    head = words[0].lower()
    if head == "cron":
        return _cron(" ".join(words[1:]))
    if head == "every":
        match = _EVERY.match("".join(words[1:]))
        if len(words) < 2 or not match:
            raise BadInput("Use `every` with minutes, hours or days, such as `every 30m`, `every 6h`, `every 2d`.")
        amount, unit = int(match.group(1)), match.group(2).lower()[0]
        seconds = amount * {"m": 60, "h": 3600, "d": 86400}[unit]
        if seconds < MIN_INTERVAL or seconds > 366 * 86400:
            raise BadInput("`every` takes between 1 minute and 366 days.")
        return When("every", f"every {amount}{unit}", seconds=seconds)
    if head == "at":
        if len(words) != 3 or not _DATE.match(words[1]):
            raise BadInput("Use `at YYYY-MM-DD HH:MM`, such as `at 2026-12-24 18:00` (once).")
        hour, minute = _time(words[2])
        try:
            datetime.strptime(words[1], "%Y-%m-%d")
        except ValueError:
            raise BadInput(f"`{escape(words[1])}` is not a date.") from None
        return When("at", f"at {words[1]} {hour:02d}:{minute:02d}", at=f"{words[1]} {hour:02d}:{minute:02d}")
    if len(words) != 2:
        raise BadInput(f"`{escape(clip(' '.join(words), 60))}` is not a WHEN: use {EXAMPLES}.")
    days = _days(words[0])
    hour, minute = _time(words[1])
    return When("weekly", f"{_day_words(days)} {hour:02d}:{minute:02d}", days=days, hour=hour, minute=minute)


def _cron(raw: str) -> When:
    body = raw.strip().strip(_QUOTES).strip()
    fields = body.split()
    if len(fields) != 5:
        raise BadInput("A cron WHEN has 5 fields in quotes: minute hour day-of-month month day-of-week, "
                       "such as `cron \"0 19 * * 1-5\"`.")
    when = When("cron", f'cron "{" ".join(fields)}"', cron=tuple(fields))
    _cron_triggers(when, ZoneInfo("UTC"))  # a bad field fails here, at parse time
    return when


def _cron_weekdays(field: str) -> str:
    """Standard cron day-of-week (0 and 7 = Sunday, 1 = Monday) → APScheduler names (its 0 is Monday)."""
    if field == "*" or field == "?":
        return "*"
    out: list[str] = []
    for part in field.lower().split(","):
        match = re.match(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$", part, re.ASCII)
        if not match:
            if not re.match(r"^[a-z]{3}(-[a-z]{3})?$", part):
                raise BadInput(f"`{escape(clip(part, 20))}` is not a cron day of week (0-7 or mon-sun).")
            out.append(part)
            continue
        start, end, step = match.groups()
        low = 0 if start == "*" else int(start)
        high = 6 if start == "*" else int(end if end is not None else (7 if step else start))
        if not (0 <= low <= 7 and 0 <= high <= 7 and low <= high):
            raise BadInput(f"`{escape(clip(part, 20))}` is not a cron day of week (0-7, Sunday is 0 or 7).")
        for number in range(low, high + 1, int(step or 1)):
            name = _CRON_DAYS[number]
            if name not in out:
                out.append(name)
    return ",".join(out)


def _cron_triggers(when: When, tz: ZoneInfo) -> list[CronTrigger]:
    minute, hour, dom, month, dow = when.cron
    try:
        if dom not in ("*", "?") and dow not in ("*", "?"):
            # Cron runs when EITHER day field matches; APScheduler wants both, so take the earlier of two.
            return [CronTrigger(minute=minute, hour=hour, day=dom, month=month, timezone=tz),
                    CronTrigger(minute=minute, hour=hour, month=month, day_of_week=_cron_weekdays(dow), timezone=tz)]
        return [CronTrigger(minute=minute, hour=hour, day=dom if dom != "?" else "*", month=month,
                            day_of_week=_cron_weekdays(dow), timezone=tz)]
    except ValueError as err:
        raise BadInput(f"`{escape(clip(when.text, 60))}` is not a valid cron expression ({escape(clip(str(err), 120))}).") \
            from None


def _triggers(when: When, tz=timezone.utc) -> list[CronTrigger]:
    """The APScheduler triggers of a weekly or cron WHEN; in UTC they run over wall-clock times (a naive wall
    time written as UTC), which `_instant` maps to instants in the schedule's zone."""
    if when.kind == "cron":
        return _cron_triggers(when, tz)
    return [CronTrigger(minute=when.minute, hour=when.hour, day_of_week=",".join(when.days), timezone=tz)]


def _instant(wall: datetime, tz: ZoneInfo) -> float:
    """The instant a wall-clock time (naive) happens in `tz`: its first pass when the autumn change repeats
    it; when the spring change skips it, the instant of the change (the clock passes it at 02:00 → 03:00)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first.timestamp()
    # In a gap, fold=1 reads it with the offset after the change (an instant before it), fold=0 with the one
    # before (after it): the change lies between, found to the second.
    low, high = wall.replace(tzinfo=tz, fold=1).timestamp(), first.timestamp()
    offset = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return float(high)


def next_after(when: When, tz: ZoneInfo, after: float, anchor: float) -> float | None:
    """The first fire time strictly after `after`; None when there is none (an `at` in the past).

    `anchor` is when the schedule began: `every` counts from it.
    """
    if when.kind == "at":
        instant = _instant(datetime.strptime(when.at, "%Y-%m-%d %H:%M"), tz)
        return instant if instant > after else None
    if when.kind == "every":
        steps = max(1, int((after - anchor) // when.seconds) + 1)
        return anchor + steps * when.seconds
    best = None
    # Walk wall-clock times from the wall time of `after` and map each to its instant: a repeated time runs
    # on its first pass only, a skipped one at the change.
    start = datetime.fromtimestamp(after, tz).replace(tzinfo=timezone.utc)
    for trigger in _triggers(when):
        point = start
        for _ in range(120):  # past the first passes of a repeated hour, at worst one a minute
            found = trigger.get_next_fire_time(None, point + timedelta(microseconds=1))
            if found is None:
                break
            instant = _instant(found.replace(tzinfo=None), tz)
            if instant <= after:
                point = found
                continue
            best = instant if best is None else min(best, instant)
            break
    return best


def next_runs(when: When, tz: ZoneInfo, after: float, anchor: float, count: int = 3) -> list[float]:
    runs: list[float] = []
    point = after
    while len(runs) < count:
        found = next_after(when, tz, point, anchor)
        if found is None:
            break
        runs.append(found)
        point = found
    return runs


def occurrences(when: When, tz: ZoneInfo, since: float, until: float, anchor: float) -> list[float]:
    """Fire times in (since, until], oldest first; at most MAX_OCCURRENCES (the newest kept)."""
    found: list[float] = []
    point = since
    if when.kind == "every" and until - since > MAX_OCCURRENCES * when.seconds:
        point = until - MAX_OCCURRENCES * when.seconds
    while True:
        nxt = next_after(when, tz, point, anchor)
        if nxt is None or nxt > until:
            return found
        found.append(nxt)
        if len(found) > MAX_OCCURRENCES:
            found.pop(0)
        point = nxt
