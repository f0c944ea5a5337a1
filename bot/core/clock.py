"""The one clock every replica compares: Redis's `TIME`, read every few seconds and extrapolated in between.

Leases, claims, fences, stamps, schedule occurrences, follow records, reminders, revert times, digest
periods and budget months are all compared by other replicas, so they all take their time from here, never
from this machine's clock (tests/test_clock.py fails when feature code reads `time.time()`). A call costs no
round trip: the offset from Redis is measured at most every `refresh` seconds and carried forward with
`time.monotonic()`. When Redis cannot be reached the last measurement is carried forward (it does not drift
with this machine's wall clock); only a process that never reached Redis falls back to its own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Callable

log = logging.getLogger(__name__)
REFRESH_SECONDS = 5.0


class Clock:
    """`clock()` → Redis's time now, in epoch seconds (a float), whatever this machine's clock says.

    Tests inject: `inject(source)` makes every call return `source()` (the suite's stepped clock);
    `machine` is this machine's wall clock (patched by the clock-skew grid); `advance(s)` moves simulated
    time forward by `s` for this replica (the grid advances every replica alike)."""

    def __init__(self, redis_client=None, refresh: float = REFRESH_SECONDS,
                 machine: Callable[[], float] | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.redis = redis_client
        self.refresh = refresh
        self.machine = machine or (lambda: time.time())  # looked up at call time: patchable
        self.monotonic = monotonic
        self.shift = 0.0
        self._injected: Callable[[], float] | None = None
        self._base: tuple[float, float] | None = None  # (Redis time, monotonic) at the last measurement
        self._tried = float("-inf")  # monotonic time of the last failed measurement: retried after `refresh`
        self._lock = threading.Lock()
        self._last = float("-inf")

    def __call__(self) -> float:
        if self._injected is not None:
            return self._injected()
        mono = self.monotonic()
        base = self._base
        if (base is None or mono - base[1] >= self.refresh) and mono - self._tried >= self.refresh:
            base = self._measure(mono) or base
        if base is None:
            return self.machine() + self.shift  # Redis never answered yet: the best guess there is
        now = base[0] + (mono - base[1]) + self.shift
        # A new measurement may land a few ms behind the last extrapolation: do not step back for that
        # (observation times must increase); a larger correction (Redis replaced, say) is taken as it is.
        self._last = self._last if 0 < self._last - now < 1.0 else now
        return self._last

    def _measure(self, mono: float) -> tuple[float, float] | None:
        if self.redis is None or not self._lock.acquire(blocking=False):
            return None  # another thread is measuring: use the last base meanwhile
        try:
            sent = self.monotonic()
            seconds, micros = self.redis.time()
            back = self.monotonic()
            # TIME was read somewhere between sending and the answer: take the middle.
            self._base = (int(seconds) + int(micros) / 1e6, (sent + back) / 2)
            return self._base
        except Exception as err:  # noqa: BLE001 — a Redis blip must not stop the clock: keep the last offset
            self._tried = mono  # try again at the next refresh, not on every call
            log.debug("Redis TIME unreadable (%s); carrying the last offset forward", err)
            return self._base
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ tests

    def inject(self, source: Callable[[], float] | None) -> None:
        self._injected = source

    def advance(self, seconds: float) -> None:
        self.shift += seconds


def local_now() -> datetime:
    """This machine's wall clock, for a local scheduler's first run only (APScheduler fires on it); never
    stored, sent or compared with another replica."""
    return datetime.now()


def machine_seconds() -> float:
    """This machine's wall clock, to compare with stamps a library made on this machine (slack_sdk's Socket
    Mode pongs); never stored, sent or compared with another replica."""
    return time.time()
