"""Which channel watches which Space (or `namespace/*`), with `--only` kinds and mutes, in Redis."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from dataclasses import dataclass

import redis

from bot.core.permissions import namespace_of
from bot.core.store import key

WATCHES = key("watches")          # hash  "channel|target" → {"only": [...], "by": user, "at": ts}
# A fresh random value each time `WatchStore` changes the hash: a replica whose last read saw this value need
# not read 100,000 watches again. Written after the hash, so a reader that sees it reads the change.
WATCHES_VERSION = key("watches", "version")
FULL_READ = 300.0  # seconds: the whole hash is read at least this often (a change made around the bot shows)
MUTES = key("mutes")              # hash  "channel|target" → until (epoch seconds)
# The two held-back hashes are read and cleared in one MULTI, so they share a hash tag (one cluster slot).
MUTED_COUNT = key("{muted}", "count")    # hash  "channel|target" → alerts held back
MUTED_LATEST = key("{muted}", "latest")  # hash  "channel|target" → the latest held-back alert, as JSON


_NONE: frozenset = frozenset()


@dataclass(frozen=True, slots=True)
class Watch:
    channel: str
    target: str  # "ns/name" or "ns/*"
    only: frozenset[str] = frozenset()

    @property
    def is_pattern(self) -> bool:
        return self.target.endswith("/*")

    def covers(self, space: str) -> bool:
        return self.target == space or (self.is_pattern and namespace_of(space) == self.target[:-2])


def covers(target: str, space: str) -> bool:
    return Watch("", target).covers(space)


class WatchSet:
    """All watches of the workspace, indexed for the poller."""

    def __init__(self, watches: list[Watch]):
        self.watches = watches
        self._by_space: dict[str, list[Watch] | tuple[Watch, ...]] = {}
        self._by_namespace: dict[str, list[Watch]] = {}
        self._explicit_by_ns: dict[str, set[str]] = {}
        for watch in watches:
            if watch.is_pattern:
                self._by_namespace.setdefault(watch.target[:-2], []).append(watch)
            else:
                self._by_space.setdefault(watch.target, []).append(watch)
        for space in self._by_space:
            self._explicit_by_ns.setdefault(namespace_of(space), set()).add(space)
        # Kept as tuples (a 100,000-Space fleet has as many of these as Spaces watched by name).
        self._by_space = {space: tuple(found) for space, found in self._by_space.items()}

    def __len__(self) -> int:
        return len(self.watches)

    def for_space(self, space: str) -> list[Watch]:
        return [*self._by_space.get(space, ()), *self._by_namespace.get(namespace_of(space), ())]

    def pattern_namespaces(self) -> set[str]:
        return set(self._by_namespace)

    def explicit_spaces(self) -> set[str]:
        return set(self._by_space)

    def explicit_by_namespace(self) -> dict[str, set[str]]:
        """Namespace → the Spaces of it watched by name (not a copy: do not change it)."""
        return self._explicit_by_ns

    def explicit_in(self, namespace: str) -> set[str]:
        """The Spaces of one namespace watched by name (not a copy: do not change it)."""
        return self._explicit_by_ns.get(namespace, _NONE)

    def pattern_watched(self, namespace: str) -> bool:
        """Whether `namespace/*` is watched (then every Space of it is)."""
        return namespace in self._by_namespace

    def is_watched(self, space: str) -> bool:
        return space in self._by_space or namespace_of(space) in self._by_namespace


def _field(channel: str, target: str) -> str:
    return f"{channel}|{target}"


def _split(field_name: str) -> tuple[str, str]:
    channel, _, target = field_name.partition("|")
    return channel, target


class WatchStore:
    """Watches and mutes; every method is one or two Redis commands."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._loaded: tuple[bytes, WatchSet] | None = None  # the digest of the last hash read, and what it gave
        self._version: tuple[str, float] | None = None  # WATCHES_VERSION at the last read, and when (monotonic)

    def _changed(self, pipe) -> None:
        pipe.set(WATCHES_VERSION, uuid.uuid4().hex)

    def add(self, channel: str, target: str, only: frozenset[str], user: str, now: float) -> bool:
        """True if the channel already watched the target (its kinds are replaced)."""
        value = json.dumps({"only": sorted(only), "by": user, "at": now})
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(WATCHES, _field(channel, target), value)
        self._changed(pipe)
        return not pipe.execute()[0]

    def remove(self, channel: str, target: str) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(WATCHES, _field(channel, target))
        self._changed(pipe)
        return bool(pipe.execute()[0])

    def load(self) -> WatchSet:
        """Every watch; the same WatchSet as last time when the hash is exactly what it was (a poll cycle of
        100,000 watched Spaces then decodes none of them again), without reading the hash when its version says
        it was not changed since (and it was read less than FULL_READ seconds ago)."""
        version = self.redis.get(WATCHES_VERSION)
        kept = self._version
        if version is not None and self._loaded is not None and kept is not None and kept[0] == version \
                and time.monotonic() - kept[1] < FULL_READ:
            return self._loaded[1]
        raw = self.redis.hgetall(WATCHES)
        # The digest of the fields in the order Redis sent them: the same hash gives the same digest (a new
        # order only costs a decode), and the 100,000 fields need not be kept between cycles to compare.
        joined = "".join(f"{len(k)}:{k}{len(v)}:{v}" for k, v in raw.items())
        digest = hashlib.blake2b(joined.encode(), digest_size=20).digest()
        loaded = self._loaded
        self._version = (version, time.monotonic()) if version is not None else None
        if loaded is not None and loaded[0] == digest:
            return loaded[1]
        watches = []
        kinds: dict[tuple, frozenset[str]] = {}  # one frozenset per distinct `--only` list
        for name, value in raw.items():
            channel, target = _split(name)
            only = tuple(json.loads(value).get("only") or ())
            watches.append(Watch(sys.intern(channel), sys.intern(target),
                                 kinds.setdefault(only, frozenset(only)) if only else _NONE))
        self._loaded = (digest, WatchSet(watches))
        return self._loaded[1]

    # ------------------------------------------------------------------ mutes

    def mute(self, channel: str, target: str, until: float) -> None:
        self.redis.hset(MUTES, _field(channel, target), repr(until))

    def unmute(self, channel: str, target: str) -> bool:
        return bool(self.redis.hdel(MUTES, _field(channel, target)))

    def mutes(self) -> dict[tuple[str, str], float]:
        return {_split(name): float(until) for name, until in self.redis.hgetall(MUTES).items()}

    def hold_back(self, channel: str, target: str, alert_json: str) -> None:
        """Count an alert a mute kept from a channel, for the line when the mute ends."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(MUTED_COUNT, _field(channel, target), 1)
        pipe.hset(MUTED_LATEST, _field(channel, target), alert_json)
        pipe.execute()

    def take_held_back(self, channel: str, target: str) -> tuple[int, str | None]:
        """(count, latest alert JSON) held back during a mute, and forget them."""
        name = _field(channel, target)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(MUTED_COUNT, name)
        pipe.hget(MUTED_LATEST, name)
        pipe.hdel(MUTED_COUNT, name)
        pipe.hdel(MUTED_LATEST, name)
        count, latest, _, _ = pipe.execute()
        return int(count or 0), latest
