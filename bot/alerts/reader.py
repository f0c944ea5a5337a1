"""Reading runtimes from the Hub for the poller: batched namespace listings, single Spaces, log excerpts."""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from huggingface_hub import HfApi, SpaceRuntime
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff, httpx
from huggingface_hub.utils._pagination import _get_next_page

from bot.alerts.transitions import fingerprint
from bot.core import logs
from bot.core.budget import Budget, RateLimitHit
from bot.core.hub import CallAborted, observed

log = logging.getLogger(__name__)

LOG_LINES = 20
LOG_SCAN = 2000
LOG_LINE_CHARS = 300
LOG_SECONDS = 3.0       # an alert waits at most this long for its log lines


_prints: dict[tuple, tuple] = {}  # one shared tuple per distinct runtime print (a few hundred in a fleet)


def _entry(item) -> tuple[str, tuple | None]:
    """(Space id, its runtime's `fingerprint` or None) of one listing entry; KeyError/TypeError where
    `SpaceInfo(**item)` and its `SpaceRuntime` would fail. Ids are interned and prints shared: the poller's maps
    of 100,000 Spaces hold one string each and a few hundred prints, and no page's JSON outlives its read."""
    space = item["id"]
    if not isinstance(space, str):
        raise TypeError("a listed Space without an id")
    runtime = item.get("runtime") or None
    if runtime is not None:
        runtime["stage"]  # noqa: B018 — SpaceRuntime requires it
        hardware = runtime.get("hardware")
        if hardware is not None and not isinstance(hardware, dict):
            raise TypeError("a runtime's hardware is not an object")
        seen = fingerprint(runtime)
        if len(_prints) > 10_000:
            _prints.clear()
        runtime = _prints.setdefault(seen, seen)
    return sys.intern(space), runtime


@dataclass(frozen=True, slots=True)
class Page:
    """One listing page as it was last read: its body's digest, and what the poller took from it (ids, runtime
    prints and visibilities, in order). A page whose body is byte for byte the same next time is not decoded
    again: at 100,000 Spaces, decoding the JSON was most of a steady cycle."""

    digest: bytes
    spaces: tuple[str, ...]
    prints: tuple
    private: bytes

    def entries(self):
        return zip(self.spaces, self.prints)

    def visibilities(self) -> dict[str, bool]:
        return {space: flag == 1 for space, flag in zip(self.spaces, self.private) if flag != 2}


def entries_of(pages: list[Page]):
    """(Space id, runtime print or None) of every entry of a listing's pages, in order."""
    for page in pages:
        yield from page.entries()


def digest_of(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def decode_page(digest: bytes, items: list, shas: dict[str, str], fresh: set[str]) -> Page:
    """A page's decoded JSON cut to what the poller compares (`_entry`); notes new commits in `shas` (and
    their Spaces in `fresh`). Raises
    KeyError/TypeError for an entry `SpaceInfo` would refuse, and TypeError for a page that is not a list."""
    if not isinstance(items, list):
        raise TypeError("a listing page that is not a list")
    spaces, prints, private = [], [], bytearray()
    for item in items:
        space, runtime = _entry(item)
        sha = item.get("sha")
        if sha and shas.get(space) != sha:
            shas[space] = sha
            fresh.add(space)
        spaces.append(space)
        prints.append(runtime)
        flag = item.get("private")
        private.append(2 if flag is None else int(bool(flag)))  # one byte each: 0 public, 1 private, 2 not said
    return Page(digest, tuple(spaces), tuple(prints), bytes(private))


class ReadFailed(Exception):
    """A read that did not work; `reason` is short ("403", "timeout")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HubReader:
    """Runtimes through HfApi: `list_spaces(author=…, expand=["runtime"])` for a namespace,
    `get_space_runtime` for one Space. Each read runs inside `hub.observed()`, so the budget sees every
    `RateLimit` header and pays for every page, and a 429/5xx ends the read at once instead of
    `list_spaces`' own sleep-and-retry.
    """

    def __init__(self, api: HfApi, budget: Budget, read_seconds: float = 30.0, log_seconds: float = LOG_SECONDS,
                 privacy: Callable[[dict[str, bool]], None] | None = None):
        self.api = api
        self.budget = budget
        self.read_seconds = read_seconds
        self.log_seconds = log_seconds
        self.requests = 0
        self._count_lock = threading.Lock()
        self.shas: dict[str, str] = {}  # Space → commit, from the batched read (a new one makes it hot)
        self.pages: dict[str, list[Page]] = {}  # namespace → its listing's pages as last read (`Page`)
        self._fresh: set[str] = set()  # Spaces whose commit in `shas` is new since `take_fresh()`
        self.decoded = 0  # pages decoded (not the same bytes as last time), for the bench and tests
        # {Space: private?} → None: told the visibilities each batched read saw (access keeps them).
        self.privacy: Callable[[dict[str, bool]], None] = privacy or (lambda seen: None)

    def _before_request(self, now: float) -> None:
        self.budget.spend(now)
        with self._count_lock:
            self.requests += 1

    def _read(self, fn, now: float):
        """Run one HfApi read under `observed()`: (its result, how many HTTP responses it took)."""
        responses: list = []
        try:
            with observed(lambda: self._before_request(now), self.read_seconds) as responses:
                result = fn()
        except (CallAborted, HfHubHTTPError, httpx.HTTPError, ValueError, KeyError, TypeError,
                AttributeError) as err:
            self._note(responses, now)
            raise self._failure(err, now) from err
        self._note(responses, now)
        return result, len(responses)

    def _failure(self, err: Exception, now: float) -> Exception:
        if isinstance(err, CallAborted):
            if err.reason == "429":
                self.budget.exhausted(now)
                return RateLimitHit("429 from the Hub")
            return ReadFailed(err.reason)
        if isinstance(err, HfHubHTTPError):
            status = getattr(getattr(err, "response", None), "status_code", None)
            return ReadFailed(str(status or "HTTP error"))
        if isinstance(err, httpx.HTTPError):
            return ReadFailed("Hub unreachable")
        return ReadFailed("unexpected answer")  # a 200 whose JSON does not have the shape the client expects

    def _note(self, responses: list, now: float) -> None:
        for response in responses:
            self.budget.note(response, now)

    def take_fresh(self) -> set[str]:
        """The Spaces whose commit changed in `shas` since the last call (hot.py syncs only those)."""
        with self._count_lock:
            fresh, self._fresh = self._fresh, set()
        return fresh

    def give_back(self, spaces) -> None:
        """Spaces `take_fresh` gave that were not synced after all (a Redis error): given again next time."""
        with self._count_lock:
            self._fresh |= set(spaces)

    def keep_pages(self, namespaces) -> None:
        """Forget the pages of namespaces no longer listed."""
        for namespace in [ns for ns in self.pages if ns not in namespaces]:
            self.pages.pop(namespace, None)

    def namespace(self, namespace: str, now: float) -> tuple[list[Page], int]:
        """Every Space of a namespace with its runtime's print, page by page: ([`Page`], requests made)."""
        return self._read(lambda: self._listing(namespace), now)

    def _listing(self, namespace: str) -> list[Page]:
        """The pages `HfApi.list_spaces(author=…, expand=["runtime", "sha", "private"])` requests, with the
        client's own `http_backoff`, `hf_raise_for_status` and `Link` paging (what its `paginate` does), kept as
        bytes: a page whose body is the same as last time is not decoded again (`Page`), a new one is decoded
        and cut to the fields compared at once (building a `SpaceInfo` and `SpaceRuntime` per entry cost more
        than the poll compares). An entry shaped unlike what `SpaceInfo` accepts fails the whole read, as
        `list_spaces` would. Hands each visibility to `privacy` (access keeps it)."""
        api = self.api
        headers = build_hf_headers(token=api.token, library_name=api.library_name,
                                   library_version=api.library_version, user_agent=api.user_agent,
                                   headers=api.headers)
        before = self.pages.get(namespace, [])
        pages: list[Page] = []
        fresh: set[str] = set()
        url: str | None = f"{api.endpoint}/api/spaces"
        params: dict | None = {"author": namespace, "expand": ["runtime", "sha", "private"]}
        while url is not None:
            response = http_backoff("GET", url, params=params, headers=headers)
            hf_raise_for_status(response)
            url, params = _get_next_page(response), None  # the next link carries the query
            digest = digest_of(response.content)
            index = len(pages)
            page = before[index] if index < len(before) else None
            if page is None or page.digest != digest:
                page = decode_page(digest, response.json(), self.shas, fresh)
                with self._count_lock:
                    self.decoded += 1
                    self._fresh |= fresh
            pages.append(page)
        self.pages[namespace] = pages
        seen: dict[str, bool] = {}
        for page in pages:
            seen.update(page.visibilities())
        try:
            self.privacy(seen)
        except Exception:  # noqa: BLE001 — a visibility not kept is asked of the Hub when needed
            log.warning("visibilities of %s not kept", namespace, exc_info=True)
        return pages

    def space(self, space: str, now: float) -> SpaceRuntime:
        runtime, _ = self._read(lambda: self.api.get_space_runtime(space), now)
        return runtime

    def last_log_lines(self, space: str, build: bool) -> tuple[str, ...] | None:
        """The last lines of the run or build log through the one reader (bot/core/logs: bounded in count,
        size and time, credentials masked); None when unreadable."""
        try:
            return logs.read_lines(self.api, space, build, LOG_LINES, self.log_seconds, LOG_LINE_CHARS)
        except logs.LogsTimedOut:
            log.info("logs of %s not readable: timeout", space)
            return None
        except CallAborted as err:
            log.info("logs of %s not readable: %s", space, err.reason)
            return None
        except (HfHubHTTPError, httpx.HTTPError, ValueError, KeyError) as err:
            log.info("logs of %s not readable: %s", space, type(err).__name__)
            return None
