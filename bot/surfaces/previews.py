"""Link previews: a pasted Space link gets the same information as `/space status`, from the same code,
shown only where the gate lets the viewer see it. The Hub is read at most once per Space per
`CACHE_SECONDS` across replicas (the runtime's JSON kept in Redis); one message's Spaces are read together."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from huggingface_hub import SpaceRuntime

from bot.alerts.keys import state_key
from bot.alerts.transitions import SpaceState
from bot.alerts.words import ALERT_ACTIONS
from bot.commands import words as command_words
from bot.core.errors import SpaceOpsError
from bot.core.permissions import Actor
from bot.core.store import REDIS_ERRORS, Store, key
from bot.surfaces import words
from bot.surfaces.links import MAX_PREVIEWS, previewed

log = logging.getLogger(__name__)
CACHE_SECONDS = 30
READING_WAIT = 2.0  # how long a replica waits for another one's read of the same Space
VERSION = 1


def cache_key(space: str) -> str:
    return key("preview", "{" + space + "}", "runtime")


def claim_key(space: str) -> str:
    return key("preview", "{" + space + "}", "reading")


def decode_runtime(raw: str | None) -> SpaceRuntime | None:
    """The cached runtime, or None for anything unreadable or of another version (read again)."""
    try:
        record = json.loads(raw) if raw else None
        if not isinstance(record, dict) or record.get("v") != VERSION or not isinstance(record.get("raw"), dict):
            return None
        return SpaceRuntime(record["raw"])
    except (ValueError, KeyError, TypeError):
        return None


class Previews:
    def __init__(self, store: Store, ops, access, known: Callable[[], Iterable[str]] = lambda: (),
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.ops = ops
        self.access = access
        self.known = known
        self.sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=MAX_PREVIEWS, thread_name_prefix="spaceops-preview")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def unfurls(self, actor: Actor, urls: list[str]) -> dict[str, dict]:
        """url → {"blocks": …} for each link `actor` may see a preview of in `actor.channel`; a link the gate
        refuses (a private Space in an unscoped channel, a user with no read right) gets none at all."""
        try:
            known = list(self.known())
        except REDIS_ERRORS:
            known = []
        wanted = previewed(urls, known)
        if not wanted:
            return {}
        allowed = {url: space for url, space in wanted.items() if self._may_show(actor, space)}
        runtimes = dict(zip(allowed.values(), self._pool.map(self.runtime, allowed.values())))
        out = {}
        for url, space in allowed.items():
            runtime = runtimes.get(space)
            if runtime is not None:
                out[url] = {"blocks": self.render(space, runtime, actor)}
        return out

    def _may_show(self, actor: Actor, space: str) -> bool:
        # "reveal": a private Space only where its details may be shown; a public one wherever it may be read.
        try:
            return self.access.gate(actor, "reveal", space).allowed
        except SpaceOpsError:
            return False  # the Hub can't say whether it is private: no preview rather than a leak

    def runtime(self, space: str) -> SpaceRuntime | None:
        """The Space's runtime, read from the Hub at most once per CACHE_SECONDS for every replica."""
        redis = self.store.redis
        try:
            cached = decode_runtime(redis.get(cache_key(space)))
            if cached is not None:
                return cached
            claimed = redis.set(claim_key(space), "1", nx=True, ex=CACHE_SECONDS)
        except REDIS_ERRORS:
            claimed = True  # no shared cache: read (this replica alone)
        if not claimed:
            for _ in range(int(READING_WAIT / 0.1)):
                self.sleep(0.1)
                try:
                    cached = decode_runtime(redis.get(cache_key(space)))
                except REDIS_ERRORS:
                    cached = None
                if cached is not None:
                    return cached
            return None  # another replica's read of it is still running or failed: no preview this time
        try:
            runtime = self.ops.runtime(space)
        except SpaceOpsError as err:
            log.info("no preview of %s: %s", space, err.sentence[:200])
            return None
        try:
            redis.set(cache_key(space), json.dumps({"v": VERSION, "raw": runtime.raw}), ex=CACHE_SECONDS)
        except REDIS_ERRORS:
            pass
        return runtime

    def _since(self, space: str, stage: str) -> tuple[float, bool] | None:
        """(when it entered its stage, whether the bot saw that happen) as the poller remembers it."""
        try:
            state = SpaceState.from_fields(space, self.store.redis.hgetall(state_key(space)))
        except REDIS_ERRORS:
            return None
        if state is None or state.stage != stage or not state.since:
            return None
        return state.since, state.stint_seen_from_start

    def render(self, space: str, runtime: SpaceRuntime, actor: Actor) -> list[dict]:
        """`status`'s words (the error line only where it may show), how long, dev mode, and the buttons."""
        raw = getattr(runtime, "raw", {}) or {}
        hidden = bool(raw.get("errorMessage")) and not self.access.reveals(space, actor)
        status = command_words.status_reply(space, runtime, self.ops.catalogue, self.ops.hub_url, hide_error=hidden)
        buttons = ["status"]
        if self.access.gate(actor, "operate", space).allowed:
            buttons.append("restart")
        buttons.append("logs")
        return words.preview_blocks(status, self._since(space, runtime.stage), self.store.clock(),
                                    bool(raw.get("devMode")), buttons, ALERT_ACTIONS["restart"], space)
