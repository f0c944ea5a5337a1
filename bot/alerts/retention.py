"""Per-Space state, usage and history are kept while a Space is watched and forgotten a while after it is
not: the leader marks watched Spaces hourly (`watched_at`, and a Redis EXPIRE as a backstop), and removes
the keys of Spaces nobody has watched for RETENTION. The poller's CAS writes the same mark with a state it read
(bot/alerts/scripts.py), so a Space marked less than FRESH ago is left as it is: a first cycle, which writes
every state, costs retention no command per Space (the poller's own `marked` says which, without a read). A Space watched again after that starts from a fresh
baseline: no "went to sleep after 90 d" alert and no 90 days of phantom spend. The fleet's index of known
Spaces (`index`) is pruned with them: a Space nobody watches and with no state left leaves it."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Iterable, Protocol

import redis

from bot.alerts.keys import history_key, state_key, usage_key
from bot.alerts.watches import WatchStore
from bot.core.store import PREFIX

log = logging.getLogger(__name__)
RETENTION = 7 * 86400       # forget a Space this long after it was last watched
EVERY = 3600                # how often the leader looks
BACKSTOP = 2 * RETENTION    # a real Redis expiry, in case no leader runs for that long
# A mark younger than this is not renewed: while watched, a mark is never older than EVERY + FRESH (plus a tick),
# within the poller's UNSEEN_AFTER (2 h: an older mark says nobody watched the Space meanwhile).
FRESH = EVERY / 2
_STATE = re.compile("^" + re.escape(PREFIX) + r"space:\{(.+)\}:state$")


class KnownIndex(Protocol):
    """The fleet's index of known Spaces (bot/fleet/service.py `Fleet`)."""

    def known(self) -> set[str]: ...

    def forget_known(self, spaces: Iterable[str]) -> None: ...


def space_of(state_key_name: str) -> str | None:
    match = _STATE.match(state_key_name)
    return match.group(1) if match else None


class Retention:
    def __init__(self, client: redis.Redis, watch_store: WatchStore, forget=None, index: KnownIndex | None = None,
                 marks: Mapping[str, float] | None = None):
        self.redis = client
        self.watch_store = watch_store
        self.forget = forget  # drop a Space from the poller's cache when its keys go
        self.index = index
        # The poller's marks (space → `watched_at` as it loaded or wrote it): never newer than Redis's, so a fresh
        # one here is fresh there.
        self.marks = marks if marks is not None else {}
        self.next_run = 0.0

    def run(self, now: float) -> int:
        """The leader's tick: at most hourly, mark watched Spaces and remove long-unwatched ones; returns
        how many Spaces were forgotten."""
        if now < self.next_run:
            return 0
        self.next_run = now + EVERY
        watches = self.watch_store.load()
        forgotten = 0
        names = list(self.redis.scan_iter(match=f"{PREFIX}space:*:state", count=1000))
        known = self.marks.copy()  # the poller writes it meanwhile (hot reads): a copy first
        for start in range(0, len(names), 500):
            chunk = []
            for name in names[start:start + 500]:
                space = space_of(name)
                if not space:
                    continue
                watched = watches.is_watched(space)
                if watched and now - known.get(space, 0.0) < FRESH:
                    continue  # marked by its last write: nothing to renew
                chunk.append((name, space, watched))
            read = self.redis.pipeline(transaction=False)
            for name, _, _ in chunk:
                read.hmget(name, ["watched_at", "ts"])
            marks = read.execute() if chunk else []
            write = self.redis.pipeline(transaction=False)
            for (name, space, watched), (watched_at, ts) in zip(chunk, marks):
                try:
                    last = float(watched_at or ts or 0)
                except ValueError:
                    last = 0.0
                if watched:
                    if not watched_at or now - last >= FRESH:
                        write.hset(name, "watched_at", repr(now))
                        for k in (state_key(space), usage_key(space), history_key(space)):
                            write.expire(k, BACKSTOP)
                    continue
                if now - last >= RETENTION:
                    write.delete(state_key(space), usage_key(space), history_key(space))
                    forgotten += 1
                    if self.forget:
                        self.forget(space)
            if len(write):
                write.execute()
        if forgotten:
            log.info("forgot the state of %d Space(s) nobody has watched for %d days", forgotten,
                     RETENTION // 86400)
        if self.index is not None:
            self._prune_index(watches)
        return forgotten

    def _prune_index(self, watches) -> None:
        """Unwatched Spaces whose state is gone (forgotten now, or before the index was pruned) leave it."""
        unwatched = sorted(s for s in self.index.known() if not watches.is_watched(s))
        gone = []
        for start in range(0, len(unwatched), 500):
            chunk = unwatched[start:start + 500]
            read = self.redis.pipeline(transaction=False)
            for space in chunk:
                read.exists(state_key(space))
            gone += [space for space, exists in zip(chunk, read.execute()) if not exists]
        if gone:
            self.index.forget_known(gone)
            log.info("%d Space(s) nobody watches left the fleet's index", len(gone))
