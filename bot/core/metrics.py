"""Every Prometheus metric of the bot, in one place, with one-line helpers the code calls.

Names follow Prometheus conventions (`spaceops_` prefix, `_total` counters, `_seconds` durations); labels
are bounded sets (command names, Hub call kinds, HTTP statuses), never user, channel or Space ids.
"""

from __future__ import annotations

import re
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

COMMANDS = Counter("spaceops_commands_total", "Commands and clicks answered, by name and outcome",
                   ["command", "outcome"])
HUB_REQUESTS = Counter("spaceops_hub_requests_total", "HTTP requests to the Hub, by kind and status",
                       ["kind", "status"])
HUB_LATENCY = Histogram("spaceops_hub_request_seconds", "Time to the Hub's response headers, by kind", ["kind"],
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RATE_REMAINING = Gauge("spaceops_hub_ratelimit_remaining", "Requests left in the Hub's RateLimit window, as last seen")
HTTP_REQUESTS = Histogram("spaceops_http_request_seconds", "HTTP mode: time from a request's first bytes read to "
                          "its answer written, by path (Slack's ack deadline is 3 s)", ["path"],
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 10))
HTTP_PATHS = frozenset({"/slack/events", "/hub/webhook", "/livez", "/readyz", "/healthz", "/metrics"})
POLL_CYCLE = Histogram("spaceops_poll_cycle_seconds", "Duration of one poll cycle on the leader",
                       buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ALERTS = Counter("spaceops_alerts_total", "Alerts by what happened to them",
                 ["event"])  # decided, queued, delivered, retried, dead_lettered
for _event in ("decided", "queued", "delivered", "retried", "dead_lettered"):
    ALERTS.labels(_event)
OUTBOX_BACKLOG = Gauge("spaceops_outbox_backlog", "Entries waiting in the outbox (at the last health read)")
OUTBOX_LAG = Gauge("spaceops_outbox_lag_seconds", "Age of the oldest outbox entry (at the last health read)")
DEAD_LETTERS = Gauge("spaceops_outbox_dead_letters", "Entries in the dead-letter stream (at the last health read)")
APPROVALS = Gauge("spaceops_approvals", "Approval requests by state (at the last health read)", ["state"])
LEADER = Gauge("spaceops_poll_leader", "1 while this replica holds the poll lease")
SINCE_POLL = Gauge("spaceops_seconds_since_last_poll", "Seconds since a poll cycle completed (any replica)")
POOL_BUSY = Gauge("spaceops_work_pool_jobs", "Jobs running or waiting on the command work pool")
JOB_RUNS = Counter("spaceops_job_runs_total", "Runs of the leader's periodic jobs, by job and outcome",
                   ["job", "outcome"])  # ok, failed, busy (last run still going), overran, lease_lost
JOB_FAILING = Gauge("spaceops_job_failing", "1 while a periodic job's last run failed", ["job"])
JOB_SECONDS = Histogram("spaceops_job_seconds", "Duration of one run of a periodic job", ["job"],
                        buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300))

_SPACE_PATH = re.compile(r"^/api/spaces/[^/]+/[^/]+(?:/([a-z-]+))?(?:/([a-z-]+))?")
_KINDS = {"runtime", "restart", "pause", "hardware", "sleeptime", "variables", "secrets", "logs", "duplicate",
          "events", "metrics"}


def hub_kind(method: str, path: str) -> str:
    """A short, bounded name for a Hub request: `list`, `runtime`, `restart`, `GET variables`..."""
    if path.startswith("/api/spaces-hardware"):
        return "hardware-catalogue"
    if path.rstrip("/") == "/api/spaces":
        return "list"
    if path.startswith("/api/whoami"):
        return "whoami"
    match = _SPACE_PATH.match(path)
    if not match:
        return "other"
    part = match.group(1) or "info"
    if part == "logs":
        return "logs"
    if part not in _KINDS and part != "info":
        return "other"
    return part if method == "POST" or part == "info" else f"{method} {part}"


def hub_response(method: str, path: str, status: int | str, seconds: float | None) -> None:
    kind = hub_kind(method, path)
    HUB_REQUESTS.labels(kind, str(status)).inc()
    if isinstance(status, int):
        note_hub_status(status, time.monotonic())
    if seconds is not None:
        HUB_LATENCY.labels(kind).observe(seconds)


def http_request(path: str, seconds: float) -> None:
    HTTP_REQUESTS.labels(path if path in HTTP_PATHS else "other").observe(seconds)


def command_done(name: str, outcome: str) -> None:
    COMMANDS.labels(name, outcome).inc()


def alerts(event: str, count: int = 1) -> None:
    if count:
        ALERTS.labels(event).inc(count)


def render() -> tuple[bytes, str]:
    """The text exposition of every metric, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


_last_hub = {"status": None, "at": 0.0}


def note_hub_status(status: int, at: float) -> None:
    """`at` is this process's monotonic time: the status is never compared with another replica's."""
    if status >= 400:
        _last_hub["status"], _last_hub["at"] = status, at


def last_hub_problem(within: float) -> str:
    """Why the Hub could not be read, as far as this process saw: its last error status, or no answer."""
    status, at = _last_hub["status"], _last_hub["at"]
    if status is not None and time.monotonic() - at <= within + 60:
        return f"the Hub answered HTTP {status}"
    return "the Hub did not answer: timeouts or connection errors"
