"""What the bot knows about its own health, from Redis so that any replica can tell.

Three answers, for three askers (docs/operations.md, "Health, metrics and the ops channel"):
- `/livez`: the process is up and Redis answers. 503 only when Redis does not: what a liveness probe
  restarts on. A Hub outage, a spent rate budget or a stalled poller never make it fail.
- `/readyz`: this process can take Slack requests. HTTP mode: always, once it listens (without Redis a
  command still gets a sentence); Socket Mode: while the session is connected and answers pings; the
  worker takes none, so it is always ready.
- `/healthz`: the JSON of the vital signs with `degraded` reasons (no poll cycle for `STALE_INTERVALS`
  intervals, the Hub failing, the rate budget spent, an outbox backlog, the Socket Mode session). 200
  while the bot is alive, degraded or not (read `degraded`); 503 when Redis does not answer.
"""

from __future__ import annotations

import json
import logging

from bot.alerts.outbox import STREAM
from bot.alerts.keys import HUB_FAILING, LAST_OK
from bot.core import metrics
from bot.core.clock import machine_seconds
from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)
DEAD_LETTERS = key("{outbox}", "dead")
STALE_INTERVALS = 3
OUTBOX_STALE = 300.0
PONG_STALE_PINGS = 2  # no pong for this many ping intervals: the session may be deaf


def _stream_age(client, stream: str, now: float) -> float | None:
    """Seconds since the oldest entry of a stream was added (from its id), None when empty."""
    first = client.xrange(stream, count=1)
    if not first:
        return None
    millis = int(str(first[0][0]).split("-")[0])
    return max(0.0, now - millis / 1000)


class Health:
    """Reads the bot's vital signs; `started` lets a fresh process poll before it counts as stale.

    `socket`: the Socket Mode client (slack_sdk's builtin `SocketModeClient`) in `socket` mode, else None."""

    def __init__(self, ctx, clock=None, socket=None, mode: str = "http"):
        self.ctx = ctx
        self.clock = clock or ctx.store.clock  # the leader stamps its cycles on Redis's clock
        self.started = self.clock()
        self.socket = socket
        self.mode = "socket" if socket is not None else mode

    def live(self) -> tuple[bool, dict]:
        """(alive, the JSON body of /livez): the process answers and so does Redis."""
        if not self.ctx.store.ping():
            return False, {"ok": False, "redis": "unreachable"}
        return True, {"ok": True, "redis": "up"}

    def ready(self) -> tuple[bool, dict]:
        """(ready, the JSON body of /readyz): Slack requests can be taken."""
        if self.socket is None:
            return True, {"ok": True, "mode": self.mode}  # http: it listens; worker: it takes no Slack requests
        session = self.session()
        problem = self._socket_problem(session)
        body = {"ok": problem is None, "mode": "socket", **session}
        if problem:
            body["problem"] = problem
        return problem is None, body

    def session(self) -> dict:
        """Socket Mode: whether the session is connected and how long ago its last pong came."""
        client = self.socket
        connected = bool(client.is_connected())
        current = getattr(client, "current_session", None)
        pong = getattr(current, "last_ping_pong_time", None) if connected else None
        # slack_sdk stamps pings (and so pongs) with time.time(): this process's clock, compared with itself.
        age = round(max(0.0, machine_seconds() - float(pong)), 1) if pong else None
        return {"socket_connected": connected, "seconds_since_pong": age,
                "ping_interval": getattr(client, "ping_interval", None)}

    def _socket_problem(self, session: dict) -> str | None:
        if not session["socket_connected"]:
            return "the Socket Mode session is not connected (reconnecting)"
        age, interval = session["seconds_since_pong"], session["ping_interval"] or 10
        if age is not None and age > PONG_STALE_PINGS * interval:
            return f"Slack has not answered the Socket Mode pings for {int(age)} s"
        return None

    def check(self, now: float | None = None) -> tuple[bool, dict]:
        """(alive, the JSON body of /healthz with its `degraded` reasons)."""
        now = self.clock() if now is None else now
        interval = self.ctx.settings.poll_seconds
        if not self.ctx.store.ping():
            return False, {"ok": False, "redis": "unreachable"}
        client = self.ctx.store.redis
        try:
            last_ok = client.get(LAST_OK)
            hub_failing = client.get(HUB_FAILING)
            watched = len(self.ctx.watcher.store.load())
            backlog = client.xlen(STREAM)
            oldest = _stream_age(client, STREAM, now)
            dead = client.xlen(DEAD_LETTERS) if client.exists(DEAD_LETTERS) else 0
        except REDIS_ERRORS as err:
            return False, {"ok": False, "redis": f"error: {type(err).__name__}"}
        since = round(max(0.0, now - float(last_ok)), 1) if last_ok else None
        limit = STALE_INTERVALS * interval
        stale = bool(watched) and (since > limit if since is not None else now - self.started > limit)
        degraded: dict[str, str] = {}
        if stale:
            degraded["poll"] = f"no poll cycle completed for over {STALE_INTERVALS} intervals ({limit} s)"
        failing_since = _float(hub_failing)
        if failing_since is not None:
            degraded["hub"] = (f"the Hub has failed every poll read for {int(max(0.0, now - failing_since))} s "
                               f"({metrics.last_hub_problem(max(0.0, now - failing_since))})")
        budget = self.ctx.watcher.poller.budget
        left = budget.left()
        if left is not None and now < budget.reset_at and left <= budget.reserve:
            degraded["budget"] = (f"the Hub's rate budget is spent: {left} requests left, the window resets in "
                                  f"{int(budget.reset_at - now)} s")
        if oldest is not None and oldest > OUTBOX_STALE:
            degraded["outbox"] = f"{backlog} messages waiting, the oldest for {int(oldest)} s"
        body = {"ok": not degraded, "redis": "up", "watched": watched, "seconds_since_poll": since,
                "poll_interval": interval, "outbox_backlog": backlog,
                "outbox_oldest_seconds": round(oldest, 1) if oldest is not None else None,
                "dead_letters": dead, "leader": self.ctx.watcher.leading}
        if self.socket is not None:
            session = self.session()
            body.update(session)
            problem = self._socket_problem(session)
            if problem:
                degraded["socket"] = problem
        body["ok"] = not degraded
        body["degraded"] = degraded
        if stale:
            body["problem"] = degraded["poll"]
        self._gauges(body)
        return True, body
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

    PATHS = ("/livez", "/readyz", "/healthz", "/metrics")

    def wsgi(self, environ, start_response):
        """`GET /livez`, `/readyz`, `/healthz` and `/metrics` (`serve`'s port; `socket` and `worker` on
        `--health-port`)."""
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            data, content_type = self.metrics_text()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
            return [data]
        answer = {"/livez": self.live, "/readyz": self.ready, "/healthz": self.check}.get(path)
        if answer is not None:
            ok, body = answer()
            data = json.dumps(body).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]


# ---------------------------------------------------------------- the ops channel: the bot's own trouble

INCIDENTS = key("ops", "incidents")  # hash: incident name → when it began (one post per incident, any replica)
AUTH_CHECK_SECONDS = 60.0
REVOKED = {"invalid_auth", "token_revoked", "account_inactive", "not_authed", "token_expired"}

# What the ops channel reads: (when it starts, when it ends).
OPS_WORDS = {
    "hub": (":rotating_light: Space Ops cannot read the Hub: no poll cycle completed for {seconds} s ({reason}). "
            "Alerts are on hold until it can.",
            ":white_check_mark: Space Ops reads the Hub again (after {duration}); alerts are flowing."),
    "budget": (":rotating_light: The Hub's rate budget of the bot's token is used up ({reason}): the poller reads "
               "less until the window resets.",
               ":white_check_mark: The Hub's rate budget has room again (after {duration})."),
    "outbox": (":rotating_light: Alerts are waiting to be delivered: the oldest for {seconds} s ({reason}).",
               ":white_check_mark: Alert delivery caught up (after {duration})."),
    "dead": (":rotating_light: {reason} could not be delivered and were set aside (dead letters); see the logs.",
             ":white_check_mark: No dead letters left (after {duration})."),
    "slack": (":rotating_light: Slack refuses the bot's token ({reason}): nothing can be posted. An admin must "
              "reinstall the app or set a new SLACK_BOT_TOKEN.",
              ":white_check_mark: Slack accepts the bot's token again (after {duration})."),
}


class SelfReport:
    """On the leader's tick: compare the bot's vital signs with the last ones and tell `SPACEOPS_OPS_CHANNEL`
    once when a problem starts and once when it ends (the open incidents live in Redis)."""

    def __init__(self, ctx, channel: str):
        self.ctx = ctx
        self.channel = channel
        self.health = Health(ctx)
        self._auth_checked = 0.0
        self._auth_problem: str | None = None

    def __call__(self, now: float) -> None:
        # A named job (bot/core/jobs.py): its guard logs a failure once and counts it; the other jobs run.
        self.check(now)

    def problems(self, now: float) -> dict[str, dict]:
        _, body = self.health.check(now)
        interval = self.ctx.settings.poll_seconds
        found: dict[str, dict] = {}
        since = body.get("seconds_since_poll")
        if body.get("watched") and since is not None and since > STALE_INTERVALS * interval:
            found["hub"] = {"seconds": int(since), "reason": metrics.last_hub_problem(since)}
        budget = self.ctx.watcher.poller.budget
        left = budget.left()
        if left is not None and now < budget.reset_at and left <= budget.reserve:
            found["budget"] = {"reason": f"{left} requests left, window resets in {int(budget.reset_at - now)} s"}
        oldest = body.get("outbox_oldest_seconds")
        if oldest is not None and oldest > OUTBOX_STALE:
            found["outbox"] = {"seconds": int(oldest), "reason": f"{body.get('outbox_backlog')} waiting"}
        if body.get("dead_letters"):
            found["dead"] = {"reason": f"{body['dead_letters']} alert(s)"}
        revoked = self._slack_refuses(now)
        if revoked:
            found["slack"] = {"reason": revoked}
        return found

    def _slack_refuses(self, now: float) -> str | None:
        client = self.ctx.client
        if client is None or now - self._auth_checked < AUTH_CHECK_SECONDS:
            return self._auth_problem
        self._auth_checked = now
        from slack_sdk.errors import SlackApiError

        try:
            client.auth_test()
            self._auth_problem = None
        except SlackApiError as err:
            error = str((getattr(err, "response", None) or {}).get("error", ""))
            self._auth_problem = error if error in REVOKED else None
        except OSError:
            pass  # Slack unreachable is not a revoked token; the outbox retries
        return self._auth_problem

    def check(self, now: float) -> None:
        client = self.ctx.store.redis
        found = self.problems(now)
        open_now = client.hgetall(INCIDENTS)
        for name, facts in found.items():
            if name not in open_now and client.hsetnx(INCIDENTS, name, repr(now)):
                self._say(OPS_WORDS[name][0].format(**{"seconds": 0, **facts}), name, f"ops:{name}:{now!r}:began")
        for name, began in open_now.items():
            if name not in found and name in OPS_WORDS and client.hdel(INCIDENTS, name):
                duration = _duration(now - float(began or now))
                self._say(OPS_WORDS[name][1].format(duration=duration), name, f"ops:{name}:{began}:ended")

    def _say(self, text: str, name: str, delivery_id: str) -> None:
        """Named by the trouble and when it began: now, or from the outbox later (Slack may be the trouble)."""
        log.warning("ops: %s", text)
        try:
            self.ctx.watcher.deliveries.send(delivery_id, self.channel, text)
        except Exception as err:  # noqa: BLE001 — Slack may be the trouble itself; the log line above stays
            log.error("could not tell %s about %s: %s", self.channel, name, type(err).__name__)


def _float(raw) -> float | None:
    try:
        return float(raw) if raw else None
    except (TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    from bot.core.words import duration_words

    return duration_words(max(1, seconds))
