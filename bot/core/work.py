"""The work pool behind every listener (bounded: a full queue says "busy" instead of waiting forever),
and one timer thread for reply deadlines ("Waiting for the Hub…" after 3 s, an answer within 8 s)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

log = logging.getLogger(__name__)


class PoolFull(Exception):
    """Every worker is busy and the queue is full: the caller tells the user to try again shortly."""


class WorkPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose queue holds at most `queue` waiting jobs beyond its `workers`."""

    def __init__(self, workers: int, queue: int, name: str = "spaceops-work"):
        super().__init__(max_workers=workers, thread_name_prefix=name)
        self.capacity = workers + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._busy = 0
        self._idle = threading.Condition()

    def start_workers(self, timeout: float = 5.0) -> None:
        """Start every worker thread now, at start-up, rather than one per job in the first burst (a thread
        start on a loaded machine held that burst's acks up by 20–40 ms: bench/ack.py)."""
        ready = threading.Barrier(self._max_workers)
        # Each placeholder waits for the others, so no worker is free to take two: every thread gets started.
        futures = [ThreadPoolExecutor.submit(self, _wait_quietly, ready, timeout) for _ in range(self._max_workers)]
        for future in futures:
            future.result(timeout + 1)

    def full(self) -> bool:
        with self._idle:
            return self._busy >= self.capacity

    @property
    def busy(self) -> int:
        """Jobs running or waiting."""
        with self._idle:
            return self._busy

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if not self._slots.acquire(blocking=False):
            raise PoolFull()
        with self._idle:
            self._busy += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        self._slots.release()
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs or waits (shutdown); False if some were still running at the deadline."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True


def _wait_quietly(barrier: threading.Barrier, timeout: float) -> None:
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        pass  # some thread did not start in time: it starts with the first job instead


class Timer:
    """A scheduled call; `cancel()` makes it a no-op if it has not run yet."""

    __slots__ = ("cancelled",)

    def __init__(self):
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """One daemon thread running callbacks at their time (a Timer thread per command would not scale)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._heap: list[tuple[float, int, Timer, Callable[[], object]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # Callbacks post to Slack: they run on a few threads of their own so one slow post delays no other timer.
        self._runner = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spaceops-timer")

    def after(self, seconds: float, fn: Callable[[], object]) -> Timer:
        timer = Timer()
        with self._changed:
            heapq.heappush(self._heap, (self.clock() + seconds, next(self._order), timer, fn))
            self._start()
            self._changed.notify()
        return timer

    def start(self) -> None:
        """Start the timer thread now (at start-up) rather than with the first command's ack."""
        with self._changed:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._run, daemon=True, name="spaceops-timers")
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (not self._heap or self._heap[0][0] > self.clock()):
                    self._changed.wait(max(0.0, self._heap[0][0] - self.clock()) if self._heap else None)
                if self._stopped:
                    return
                _, _, timer, fn = heapq.heappop(self._heap)
            if not timer.cancelled:
                self._runner.submit(self._call, fn)

    @staticmethod
    def _call(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 — one failing callback must not stop the others
            log.exception("timer callback failed")

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._runner.shutdown(wait=False)
