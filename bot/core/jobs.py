"""Periodic work on the poll leader's tick, as named jobs that cannot stop each other.

Each job runs in its own guard: an exception is logged once when the job starts failing (and once when it
recovers, not every tick in between), counted per job in `/metrics`, and the other jobs run. Each has a
deadline. The lease is re-checked before each job, and jobs that act (`takes_lease`) get the check to
call before each side effect. Slow jobs (`slow=True`: Hub calls per Space, reads of a whole namespace's
month) run off the tick on a thread of their own, one run at a time: the tick that starts one returns at
once, and a tick that finds the last run still going skips it (counted as `busy`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from bot.core import metrics

log = logging.getLogger(__name__)
Leading = Callable[[], bool]
DEFAULT_DEADLINE = 10.0


class LeaseLost(Exception):
    """The poll lease went to another replica mid-job: stop before the next side effect."""


@dataclass
class Deadline:
    """A job's deadline on this process's monotonic clock (a local timeout, compared by nobody else)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def passed(self) -> bool:
        return self.left() <= 0


@dataclass
class Job:
    """`run(now)`; with `takes_lease`, `run(now, leading, deadline)`: `leading()` before each side effect,
    and work left when `deadline.passed()` waits for the next run."""

    name: str
    run: Callable[..., object]
    deadline: float = DEFAULT_DEADLINE
    slow: bool = False
    takes_lease: bool = False
    failing: int = 0  # consecutive failed runs
    thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Jobs:
    """The named jobs of one process's leader tick, in the order they were added."""

    def __init__(self):
        self._jobs: list[Job] = []

    def add(self, name: str, run: Callable[..., object], deadline: float = DEFAULT_DEADLINE, slow: bool = False,
            takes_lease: bool = False) -> Job:
        if any(job.name == name for job in self._jobs):
            raise ValueError(f"two periodic jobs named {name!r}")
        job = Job(name, run, deadline, slow, takes_lease)
        self._jobs.append(job)
        for outcome in ("ok", "failed"):
            metrics.JOB_RUNS.labels(name, outcome)
        metrics.JOB_FAILING.labels(name).set(0)
        return job

    def append(self, run: Callable[[float], object]) -> Job:
        """A job named after its callable (what features that do not name theirs get)."""
        name = getattr(run, "__qualname__", None) or type(run).__name__
        return self.add(name.replace("<", "").replace(">", ""), run)

    def get(self, name: str) -> Job:
        return next(job for job in self._jobs if job.name == name)

    def __iter__(self) -> Iterator[Callable[..., object]]:
        return iter([job.run for job in self._jobs])

    def __getitem__(self, index: int) -> Callable[..., object]:
        return self._jobs[index].run

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def names(self) -> list[str]:
        return [job.name for job in self._jobs]

    def busy(self) -> list[str]:
        return [job.name for job in self._jobs if job.busy()]

    # ------------------------------------------------------------------ running

    def run_tick(self, now: float, leading: Leading) -> list[str]:
        """Run every job once for this tick; returns the names started. Stops when the lease is gone."""
        started = []
        for job in self._jobs:
            if not _still_leading(leading):
                log.info("lost the poll lease mid-tick; jobs %s wait for the next leader",
                         ", ".join(j.name for j in self._jobs[len(started):]))
                break
            if job.slow:
                if job.busy():
                    metrics.JOB_RUNS.labels(job.name, "busy").inc()
                    continue
                thread = threading.Thread(target=self._guarded, args=(job, now, leading), daemon=True,
                                          name=f"job-{job.name}")
                thread.start()
                job.thread = thread  # only once started: `settle` on another thread may join it at once
            else:
                self._guarded(job, now, leading)
            started.append(job.name)
        return started

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait for the slow jobs' runs in flight (tests with an injected clock; shutdown)."""
        end = time.monotonic() + timeout
        for job in self._jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, end - time.monotonic()))
        return not any(job.busy() for job in self._jobs)

    def _guarded(self, job: Job, now: float, leading: Leading) -> None:
        deadline = Deadline(job.deadline)
        try:
            if job.takes_lease:
                job.run(now, leading, deadline)
            else:
                job.run(now)
        except LeaseLost:
            log.info("job %s stopped: the poll lease went to another replica", job.name)
            metrics.JOB_RUNS.labels(job.name, "lease_lost").inc()
            return
        except Exception as err:  # noqa: BLE001 — one job's failure must not stop the others or the tick
            metrics.JOB_RUNS.labels(job.name, "failed").inc()
            job.failing += 1
            metrics.JOB_FAILING.labels(job.name).set(1)
            if job.failing == 1:
                log.exception("job %s failed; it is retried every tick, and its recovery is logged", job.name)
            else:
                log.debug("job %s failed again (%d in a row): %s: %s", job.name, job.failing,
                          type(err).__name__, err)
            return
        finally:
            seconds = time.monotonic() - deadline.started
            metrics.JOB_SECONDS.labels(job.name).observe(seconds)
            if seconds > job.deadline:
                metrics.JOB_RUNS.labels(job.name, "overran").inc()
                log.warning("job %s took %.1f s, over its deadline of %.0f s", job.name, seconds, job.deadline)
        metrics.JOB_RUNS.labels(job.name, "ok").inc()
        if job.failing:
            log.warning("job %s works again after %d failed runs", job.name, job.failing)
            job.failing = 0
            metrics.JOB_FAILING.labels(job.name).set(0)


def _still_leading(leading: Leading) -> bool:
    try:
        return bool(leading())
    except Exception as err:  # noqa: BLE001 — a lease we cannot check is a lease we do not hold
        log.debug("lease check failed: %s", type(err).__name__)
        return False
