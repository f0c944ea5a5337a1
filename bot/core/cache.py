"""One per-process cache with expiry, for answers worth asking again only every few minutes (users.info, a
user group's members, whether a Space is private, a user's time zone, the shared hardware catalogue).

Expiry is on this process's monotonic clock: nothing here is compared with another replica's time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class TtlCache(Generic[V]):
    """name → value, each fresh for `seconds` after it was kept. Thread-safe; a load runs outside the lock
    (two threads may both load a missing name: the later answer is kept)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._items: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, load: Callable[[], V]) -> V:
        """The fresh value, else `load()` kept (an exception from `load` keeps nothing and propagates)."""
        with self._lock:
            hit = self._items.get(name)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
        value = load()
        self.put(name, value)
        return value

    def put(self, name: str, value: V) -> None:
        with self._lock:
            self._items[name] = (self._clock() + self.seconds, value)

    def put_many(self, items: dict[str, V]) -> None:
        """`put` for many names at once: one lock, one expiry, one (expiry, value) pair per distinct value
        object (a poll cycle keeps 100,000 visibilities: two pairs, not 100,000)."""
        until = self._clock() + self.seconds
        pairs: dict[int, tuple[float, V]] = {}
        with self._lock:
            for name, value in items.items():
                pair = pairs.get(id(value))
                if pair is None:
                    pair = pairs[id(value)] = (until, value)
                self._items[name] = pair

    def forget(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)

    def stale(self, name: str, default=None):
        """The last value kept, fresh or not (what to use when asking again fails)."""
        with self._lock:
            hit = self._items.get(name, _MISSING)
        return default if hit is _MISSING else hit[1]
