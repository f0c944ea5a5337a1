"""The Redis edge: connection, audit trail and idempotency keys.

Key layout (all under `spaceops:`). Keys that one script touches together share a `{hash tag}`
so the same code runs on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from bot.core.errors import SpaceOpsError, StateUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "spaceops:"
AUDIT_MAXLEN = 100_000
AUDIT_PER_SPACE_MAXLEN = 1_000
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def connect(url: str) -> redis.Redis:
    # from_url gets no retries by default (redis-py 8); pass them explicitly.
    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_timeout=5, socket_connect_timeout=2,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
    )


UNREACHABLE = ("Space Ops cannot reach its database right now, so it can't do this: it makes no change without "
               "a record of it. `status`, `flavors`, `var ls`, `secret ls` and `help` still work; "
               "try again in a minute.")


@contextlib.contextmanager
def state_errors() -> Iterator[None]:
    """Redis going away mid-command is a sentence for the user (StateUnavailable), not a traceback."""
    try:
        yield
    except REDIS_ERRORS as err:
        raise StateUnavailable(UNREACHABLE) from err


def key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


@dataclass(frozen=True)
class AuditEntry:
    id: str
    ts: float
    user: str
    action: str
    space: str
    params: dict[str, Any]
    result: str


class Store:
    """Small shared store; feature stores (approvals, watches) take `store.redis`."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except REDIS_ERRORS:
            return False

    def require(self) -> None:
        """Raise StateUnavailable unless Redis answers: changes are never made without an audit trail."""
        if not self.ping():
            raise StateUnavailable(UNREACHABLE)

    def once(self, name: str, ttl: int = 3600) -> bool:
        """True the first time `name` is seen within `ttl` seconds (Slack retries, double submits)."""
        try:
            return bool(self.redis.set(key("once", name), "1", nx=True, ex=ttl))
        except REDIS_ERRORS:
            return True  # without Redis we cannot dedupe; better to answer than to drop

    def audit(self, user: str, action: str, space: str = "", params: dict | None = None,
              result: str = "ok", now: float | None = None, per_space: bool = True) -> None:
        """Append to the audit stream. Never pass secret values in `params`. `per_space=False` keeps the
        entry out of the Space's own stream (refusals: anyone can name any Space, so those keys would grow
        without bound)."""
        fields = {"ts": f"{now or time.time():.3f}", "user": user, "action": action, "space": space,
                  "params": json.dumps(params or {}, sort_keys=True), "result": result}
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(key("audit"), fields, maxlen=AUDIT_MAXLEN, approximate=True)
            if space and per_space:
                pipe.xadd(key("audit", "space", space), fields, maxlen=AUDIT_PER_SPACE_MAXLEN, approximate=True)
            pipe.execute()
        except REDIS_ERRORS:
            log.error("audit entry lost (Redis unreachable): action=%s space=%s user=%s result=%s",
                      action, space, user, result)

    def audited(self, user: str, action: str, space: str, params: dict, change: Callable[[], T]) -> T:
        """Run a change with Redis required first, and an audit entry whatever the outcome."""
        self.require()
        try:
            result = change()
        except SpaceOpsError as err:
            self.audit(user, action, space, params, result=f"error: {err.sentence[:200]}")
            raise
        self.audit(user, action, space, params)
        return result

    def audit_entries(self, space: str | None = None, count: int = 20) -> list[AuditEntry]:
        stream = key("audit", "space", space) if space else key("audit")
        try:
            rows = self.redis.xrevrange(stream, count=count)
        except REDIS_ERRORS as err:
            raise StateUnavailable("The audit trail cannot be read right now (database unreachable).") from err
        return [AuditEntry(id=entry_id, ts=float(f.get("ts", 0)), user=f.get("user", ""), action=f.get("action", ""),
                           space=f.get("space", ""), params=json.loads(f.get("params") or "{}"),
                           result=f.get("result", "")) for entry_id, f in rows]
