"""Reading the roll-ups and keeping the fleet's own records: known Spaces, budgets, digests, App Home.

Every record is JSON with a version `v` and read tolerantly; reads are pipelined in chunks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Iterable

import redis

from bot.alerts.poller import state_key
from bot.alerts.rollups import UNKNOWN, day_key, month_key, parse_billed
from bot.alerts.transitions import SpaceState
from bot.core.store import key

log = logging.getLogger(__name__)

KNOWN = key("fleet", "spaces")          # set of every Space the poller has seen
BUDGETS = key("fleet", "budgets")       # hash namespace → {"v", "amount", "channel", "by", "at"}
DIGESTS = key("fleet", "digests")       # hash channel → {"v", "period", "hour", "minute", "tz", "by", "at"}
HOME_OPENED = key("fleet", "home", "opened")  # zset user → last time they opened the App Home
CHUNK = 2000
VERSION = 1


@dataclass
class Day:
    """One Space-day of roll-up, decoded."""

    billed: dict[tuple[str, float], int] = field(default_factory=dict)  # (flavor, $/h) → seconds
    up: int = 0
    incidents: int = 0
    longest_outage: int = 0
    strip: str = UNKNOWN * 24

    @classmethod
    def decode(cls, fields: dict[str, str]) -> "Day":
        day = cls()
        for name, value in (fields or {}).items():
            try:
                if name == "up":
                    day.up = int(float(value))
                elif name == "inc":
                    day.incidents = int(float(value))
                elif name == "out":
                    day.longest_outage = int(float(value))
                elif name == "h":
                    day.strip = value.ljust(24, UNKNOWN)[:24]
                else:
                    billed = parse_billed(name)
                    if billed:
                        day.billed[billed] = day.billed.get(billed, 0) + int(float(value))
            except ValueError:
                log.warning("unreadable roll-up field %s=%r; skipped", name, value)
        return day


@dataclass
class Facts:
    """What is recorded about one Space: its state, the days asked for, and its month hashes."""

    space: str
    state: SpaceState | None
    days: dict[str, Day] = field(default_factory=dict)
    months: dict[str, dict[tuple[str, float], int]] = field(default_factory=dict)


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

    def facts(self, spaces: Iterable[str], days: list[str], months: list[str] = ()) -> dict[str, Facts]:
        """State, day roll-ups and month totals of each Space, pipelined."""
        spaces = list(spaces)
        out: dict[str, Facts] = {}
        per_space = 1 + len(days) + len(months)
        step = max(1, CHUNK // per_space)
        for start in range(0, len(spaces), step):
            chunk = spaces[start:start + step]
            pipe = self.redis.pipeline(transaction=False)
            for space in chunk:
                pipe.hgetall(state_key(space))
                for day in days:
                    pipe.hgetall(day_key(space, day))
                for month in months:
                    pipe.hgetall(month_key(space, month))
            results = pipe.execute()
            for i, space in enumerate(chunk):
                row = results[i * per_space:(i + 1) * per_space]
                try:
                    state = SpaceState.from_fields(space, row[0])
                except (ValueError, TypeError):
                    state = None
                facts = Facts(space, state)
                for day, fields in zip(days, row[1:1 + len(days)]):
                    if fields:
                        facts.days[day] = Day.decode(fields)
                for month, fields in zip(months, row[1 + len(days):]):
                    facts.months[month] = Day.decode(fields).billed
                out[space] = facts
        return out

    # ------------------------------------------------------------------ known Spaces

    def remember(self, spaces: Iterable[str]) -> None:
        spaces = list(spaces)
        for start in range(0, len(spaces), 5000):
            self.redis.sadd(KNOWN, *spaces[start:start + 5000])

    def known(self) -> set[str]:
        return set(self.redis.smembers(KNOWN))

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
