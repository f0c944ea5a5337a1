"""Channel scopes in Redis: one hash, channel → {"v": 1, "scopes": {namespace: level}}."""

from __future__ import annotations

import json

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from bot.access.rules import LEVELS, Scope
from bot.core.store import key

SCOPES = key("scopes")
# The gate's reads wait out a slow moment (a fleet script over hundreds of Spaces takes longer than the ack
# path's 200 ms) with the normal client's retries, but a hung Redis costs a command a few seconds, not a
# minute: then the scopes are unknown, which the gate never reads as "unscoped" (bot/access/service.py).
SCOPE_TIMEOUT = 1.0
SCOPE_RETRIES = 1


def scope_client(client: redis.Redis) -> redis.Redis:
    """The normal client's server and retries, with a per-attempt timeout of SCOPE_TIMEOUT and no health-check
    ping of its own (which would retry inside each retry). A cluster or Sentinel client is used as it is."""
    if type(client) is not redis.Redis or type(client.connection_pool) is not redis.ConnectionPool:
        return client
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs.update(socket_timeout=SCOPE_TIMEOUT, socket_connect_timeout=SCOPE_TIMEOUT, health_check_interval=0,
                  retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), SCOPE_RETRIES))
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


class ScopeStore:
    def __init__(self, client, reads=None):
        self.redis = client
        # What the gate reads: never the ack path's 200 ms client (a timeout there is not "unscoped").
        self.reads = reads if reads is not None else scope_client(client)

    def get(self, channel: str, fast: bool = True) -> tuple[Scope, ...]:
        """`fast=False` for the poll leader's work (routing alerts), which waits for Redis rather than
        dropping an alert in a slow moment."""
        return decode((self.reads if fast else self.redis).hget(SCOPES, channel))

    def get_many(self, channels: list[str]) -> dict[str, tuple[Scope, ...]]:
        """`get` for several channels in one HMGET (the gate's reads client)."""
        if not channels:
            return {}
        return {channel: decode(raw) for channel, raw in zip(channels, self.reads.hmget(SCOPES, channels))}

    def set(self, channel: str, namespace: str, level: str) -> tuple[Scope, ...]:
        current = {s.namespace: s.level for s in self.get(channel)}
        current[namespace] = level
        self.redis.hset(SCOPES, channel, encode(current))
        return self.get(channel)

    def remove(self, channel: str, namespace: str) -> bool:
        current = {s.namespace: s.level for s in self.get(channel)}
        if current.pop(namespace, None) is None:
            return False
        if current:
            self.redis.hset(SCOPES, channel, encode(current))
        else:
            self.redis.hdel(SCOPES, channel)
        return True

    def all(self) -> dict[str, tuple[Scope, ...]]:
        return {channel: decode(raw) for channel, raw in self.redis.hgetall(SCOPES).items()}


def encode(scopes: dict[str, str]) -> str:
    return json.dumps({"v": 1, "scopes": dict(sorted(scopes.items()))}, separators=(",", ":"))


def decode(raw: str | None) -> tuple[Scope, ...]:
    """Tolerant: unreadable records and unknown levels are skipped (read is the safer reading of a level
    a newer replica wrote)."""
    try:
        data = json.loads(raw) if raw else {}
        scopes = data.get("scopes") if isinstance(data, dict) else None
    except ValueError:
        return ()
    if not isinstance(scopes, dict):
        return ()
    return tuple(Scope(str(ns), level if level in LEVELS and level != "none" else "read")
                 for ns, level in sorted(scopes.items()))
