"""Space ids in the Hub's own casing: `Acme/Chat` and `ACME/*` become `acme/chat` and `acme/*`, learned from
the first read and kept in Redis, so watches, mutes and their alerts match what batched reads return."""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.commands.grammar import Command
from bot.core import hub
from bot.core.errors import HubUnavailable, RateLimited, SpaceOpsError
from bot.core.permissions import namespace_of
from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)
IDS = key("ids")  # hash: lower-cased id or "namespace/*" → the Hub's casing
# Commands whose Space id is stored (watches, mutes): those must use the Hub's casing.
STORED = frozenset({"watch", "unwatch", "mute", "unmute"})
LISTING_SECONDS = 5.0  # the first page of a namespace, well within the command's answer deadline


class Canonical:
    def __init__(self, api, redis):
        self.api = api
        self.redis = redis

    def _known(self, name: str) -> str | None:
        try:
            return self.redis.hget(IDS, name.lower())
        except REDIS_ERRORS:
            return None

    def _learn(self, typed: str, canonical: str) -> None:
        try:
            self.redis.hset(IDS, mapping={typed.lower(): canonical,
                                          f"{namespace_of(canonical).lower()}/*": f"{namespace_of(canonical)}/*"})
        except REDIS_ERRORS:
            pass

    def space(self, space: str) -> str:
        known = self._known(space)
        if known:
            return known
        try:
            info = hub.call(self.api.space_info, space, space=space)
        except SpaceOpsError:
            return space  # the command itself says what is wrong
        canonical = str(getattr(info, "id", "") or space)
        self._learn(space, canonical)
        return canonical

    def pattern(self, pattern: str, strict: bool = False) -> str:
        """`strict` (a watch, which makes no Hub call of its own): a Hub failure is the command's answer."""
        known = self._known(pattern)
        if known:
            return known
        namespace = pattern[:-2]
        try:
            first = next(iter(hub.listing(self.api, namespace, LISTING_SECONDS, limit=1)), None)
        except (HubUnavailable, RateLimited):
            if strict:
                raise
            first = None
        except SpaceOpsError:
            first = None
        if first is None or namespace_of(first.id).lower() != namespace.lower():
            return pattern
        self._learn(first.id, first.id)
        return f"{namespace_of(first.id)}/*"

    def command(self, cmd: Command) -> Command:
        if cmd.name not in STORED or not cmd.space:
            return cmd
        space = self.pattern(cmd.space, strict=cmd.name == "watch") if cmd.is_pattern else self.space(cmd.space)
        return cmd if space == cmd.space else replace(cmd, space=space)
