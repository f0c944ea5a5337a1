"""Channel scopes in Redis: one hash, channel → {"v": 1, "scopes": {namespace: level}}."""

from __future__ import annotations

import json

from bot.access.rules import LEVELS, Scope
from bot.core.store import key

SCOPES = key("scopes")


class ScopeStore:
    def __init__(self, client, reads=None):
        self.redis = client
        # Every command reads its channel's scopes: a short-timeout client, so a hung Redis costs little.
        self.reads = reads if reads is not None else client

    def get(self, channel: str, fast: bool = True) -> tuple[Scope, ...]:
        """`fast=False` for the poll leader's work (routing alerts), which waits for Redis rather than
        dropping an alert in a slow moment."""
        return decode((self.reads if fast else self.redis).hget(SCOPES, channel))

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
