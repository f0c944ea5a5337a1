"""What the bot knows about its own health, from Redis so that any replica can tell: `/healthz` and `/metrics`.

`/healthz` is 503 when Redis does not answer, or when Spaces are watched and no poll cycle completed for
`STALE_INTERVALS` poll intervals (no replica polls, or every poll fails): the alerts would be silent.
"""

from __future__ import annotations

import json
import logging
import time

from bot.alerts.outbox import STREAM
from bot.alerts.poller import LAST_OK
from bot.core import metrics
from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)
DEAD_LETTERS = key("{outbox}", "dead")
STALE_INTERVALS = 3


def _stream_age(client, stream: str, now: float) -> float | None:
    """Seconds since the oldest entry of a stream was added (from its id), None when empty."""
    first = client.xrange(stream, count=1)
    if not first:
        return None
    millis = int(str(first[0][0]).split("-")[0])
    return max(0.0, now - millis / 1000)


class Health:
    """Reads the bot's vital signs; `started` lets a fresh process poll before it counts as stale."""

    def __init__(self, ctx, clock=time.time):
        self.ctx = ctx
        self.clock = clock
        self.started = clock()

    def check(self) -> tuple[bool, dict]:
        """(healthy, the JSON body of /healthz)."""
        now = self.clock()
        interval = self.ctx.settings.poll_seconds
        if not self.ctx.store.ping():
            return False, {"ok": False, "redis": "unreachable"}
        client = self.ctx.store.redis
        try:
            last_ok = client.get(LAST_OK)
            watched = len(self.ctx.watcher.store.load())
            backlog = client.xlen(STREAM)
            oldest = _stream_age(client, STREAM, now)
            dead = client.xlen(DEAD_LETTERS) if client.exists(DEAD_LETTERS) else 0
        except REDIS_ERRORS as err:
            return False, {"ok": False, "redis": f"error: {type(err).__name__}"}
        since = round(max(0.0, now - float(last_ok)), 1) if last_ok else None
        limit = STALE_INTERVALS * interval
        stale = bool(watched) and (since > limit if since is not None else now - self.started > limit)
        body = {"ok": not stale, "redis": "up", "watched": watched, "seconds_since_poll": since,
                "poll_interval": interval, "outbox_backlog": backlog,
                "outbox_oldest_seconds": round(oldest, 1) if oldest is not None else None,
                "dead_letters": dead, "leader": self.ctx.watcher.leading}
        if stale:
            body["problem"] = f"no poll cycle completed for over {STALE_INTERVALS} intervals ({limit} s)"
        self._gauges(body)
        return not stale, body

    def _gauges(self, body: dict) -> None:
        metrics.OUTBOX_BACKLOG.set(body["outbox_backlog"])
        metrics.OUTBOX_LAG.set(body["outbox_oldest_seconds"] or 0)
        metrics.DEAD_LETTERS.set(body["dead_letters"])
        metrics.LEADER.set(1 if body["leader"] else 0)
        if body["seconds_since_poll"] is not None:
            metrics.SINCE_POLL.set(body["seconds_since_poll"])
        metrics.POOL_BUSY.set(getattr(self.ctx.pool, "busy", 0))

    def metrics_text(self) -> tuple[bytes, str]:
        """Refresh the gauges read from Redis, then the whole exposition."""
        try:
            self.check()
            counts: dict[str, int] = {"pending": 0, "applying": 0}
            for request in self.ctx.approvals.store.open_requests(limit=500):
                counts[request.status] = counts.get(request.status, 0) + 1
            for state, count in counts.items():
                metrics.APPROVALS.labels(state).set(count)
        except REDIS_ERRORS as err:
            log.info("metrics without Redis figures: %s", type(err).__name__)
        metrics.LEADER.set(1 if self.ctx.watcher.leading else 0)
        return metrics.render()

    def wsgi(self, environ, start_response):
        """`GET /healthz` and `GET /metrics` (for `socket` and `worker`, on `--health-port`)."""
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            data, content_type = self.metrics_text()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
            return [data]
        if path == "/healthz":
            ok, body = self.check()
            data = json.dumps(body).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
