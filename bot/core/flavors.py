"""The hardware catalogue: flavors, prices per hour, and what counts as an upgrade."""

from __future__ import annotations

import difflib
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from bot.core.clock import Clock
from bot.core.cache import TtlCache
from bot.core.errors import SpaceOpsError
from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Flavor:
    name: str
    pretty: str
    price_per_hour: float | None  # None: price unknown, treated as paid
    spec: str = ""

    @property
    def is_free(self) -> bool:
        return self.price_per_hour == 0


# hub-docs spaces-gpus.md "Hardware Specs" (USD per hour), shipped for when the Hub's catalogue
# cannot be read. rtx-pro-6000* are not in the Spaces table: their Jobs prices are used.
SHIPPED = (
    Flavor("cpu-basic", "CPU Basic", 0.0, "2 vCPU · 16 GB"),
    Flavor("cpu-upgrade", "CPU Upgrade", 0.03, "8 vCPU · 32 GB"),
    Flavor("zero-a10g", "ZeroGPU", 0.0, "shared GPU, daily quota"),
    Flavor("t4-small", "Nvidia T4 - small", 0.40, "4 vCPU · 15 GB · T4 16 GB"),
    Flavor("t4-medium", "Nvidia T4 - medium", 0.60, "8 vCPU · 30 GB · T4 16 GB"),
    Flavor("l4x1", "1x Nvidia L4", 0.80, "8 vCPU · 30 GB · L4 24 GB"),
    Flavor("l4x4", "4x Nvidia L4", 3.80, "48 vCPU · 186 GB · 4×L4 96 GB"),
    Flavor("l40sx1", "1x Nvidia L40S", 1.80, "8 vCPU · 62 GB · L40S 48 GB"),
    Flavor("l40sx4", "4x Nvidia L40S", 8.30, "48 vCPU · 382 GB · 4×L40S 192 GB"),
    Flavor("l40sx8", "8x Nvidia L40S", 23.50, "192 vCPU · 1534 GB · 8×L40S 384 GB"),
    Flavor("a10g-small", "Nvidia A10G - small", 1.00, "4 vCPU · 15 GB · A10G 24 GB"),
    Flavor("a10g-large", "Nvidia A10G - large", 1.50, "12 vCPU · 46 GB · A10G 24 GB"),
    Flavor("a10g-largex2", "2x Nvidia A10G - large", 3.00, "24 vCPU · 92 GB · 2×A10G 48 GB"),
    Flavor("a10g-largex4", "4x Nvidia A10G - large", 5.00, "48 vCPU · 184 GB · 4×A10G 96 GB"),
    Flavor("a100-large", "Nvidia A100 - large", 2.50, "12 vCPU · 142 GB · A100 80 GB"),
    Flavor("a100x4", "4x Nvidia A100", 10.00, "48 vCPU · 568 GB · 4×A100 320 GB"),
    Flavor("a100x8", "8x Nvidia A100", 20.00, "96 vCPU · 1136 GB · 8×A100 640 GB"),
    Flavor("rtx-pro-6000", "RTX Pro 6000", 2.75, "RTX Pro 6000 96 GB"),
    Flavor("rtx-pro-6000x2", "2x RTX Pro 6000", 5.50, "2×RTX Pro 6000"),
    Flavor("rtx-pro-6000x4", "4x RTX Pro 6000", 11.00, "4×RTX Pro 6000"),
    Flavor("rtx-pro-6000x8", "8x RTX Pro 6000", 22.00, "8×RTX Pro 6000"),
)

DEFAULT_FLAVOR = "cpu-basic"


class Catalogue:
    """Flavors by name; unknown names are suggested against, unknown prices count as paid."""

    def __init__(self, flavors: Iterable[Flavor] = SHIPPED, source: str = "shipped"):
        self._by_name = {flavor.name: flavor for flavor in flavors}
        self.source = source
        self.read_at = 0.0  # when the Hub's list was read (0: not from the Hub)

    def __iter__(self):
        return iter(sorted(self._by_name.values(), key=lambda f: (f.price_per_hour is None, f.price_per_hour or 0, f.name)))

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str | None) -> Flavor | None:
        return self._by_name.get(name or "")

    def price(self, name: str | None) -> float | None:
        flavor = self.get(name)
        return flavor.price_per_hour if flavor else None

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name.lower(), list(self._by_name), n=1, cutoff=0.6)
        return close[0] if close else None

    def is_upgrade(self, current: str | None, requested: str) -> bool:
        """True when `requested` costs more per hour than `current` (unknown prices count as paid)."""
        new = self.price(requested)
        old = self.price(current or DEFAULT_FLAVOR)
        if new is None:
            return True
        return new > (old or 0.0)

    @classmethod
    def from_hub(cls, items) -> "Catalogue":
        """Build from `HfApi.list_spaces_hardware()` items, keeping shipped specs where the Hub has none."""
        flavors = []
        for item in items:
            unit = (getattr(item, "unit_label", "") or "").lower()
            cost = getattr(item, "unit_cost_usd", None)
            per_hour = None if cost is None else round(cost * (60 if unit.startswith("min") else 1), 4)
            shipped = next((f for f in SHIPPED if f.name == item.name), None)
            spec = f"{getattr(item, 'cpu', '')} · {getattr(item, 'ram', '')}".strip(" ·")
            flavors.append(Flavor(item.name, getattr(item, "pretty_name", None) or item.name, per_hour,
                                  spec or (shipped.spec if shipped else "")))
        return cls(flavors, source="hub") if flavors else cls()


CATALOGUE_KEY = key("catalogue")  # hash: json (the last good catalogue), at (when read), failed_at
REFRESH_SECONDS = 3600
RETRY_SECONDS = 300  # after the Hub failed, the leader tries again this much later, not every tick


def catalogue_json(catalogue: Catalogue) -> str:
    return json.dumps({"v": 1, "flavors": [[f.name, f.pretty, f.price_per_hour, f.spec] for f in catalogue]},
                      separators=(",", ":"))


def catalogue_from_json(raw: str | None, source: str = "hub") -> Catalogue | None:
    """Tolerant: None for anything unreadable; a row that has not the expected shape is skipped."""
    try:
        data = json.loads(raw or "")
        rows = data.get("flavors") if isinstance(data, dict) else None
    except ValueError:
        return None
    flavors = []
    for row in rows if isinstance(rows, list) else []:
        try:
            name, pretty, price, spec = (list(row) + ["", "", None, ""])[:4]
            flavors.append(Flavor(str(name), str(pretty or name), None if price is None else float(price),
                                  str(spec or "")))
        except (TypeError, ValueError):
            continue
    return Catalogue(flavors, source=source) if flavors else None


class CatalogueSource:
    """The one catalogue every part of the bot reads (`current`), shared by every replica through Redis.

    The poll leader refreshes it from the Hub in the background (`refresh_if_due`, hourly); `/space flavors`
    refreshes it on demand. When the Hub fails, the last good copy stays (Redis, else this process's,
    else the shipped table). Without Redis (console, unit tests) it is this process's copy alone.
    """

    def __init__(self, fetch: Callable[[], Iterable], redis=None, clock: Callable[[], float] | None = None,
                 fast=None):
        self._fetch = fetch
        self._redis = redis
        # Reads happen on Slack's ack path (the parser checks flavors): a short-timeout client, when given,
        # so a hung Redis costs a fraction of a second there and the last copy this process saw is used.
        self._reads = fast if fast is not None else redis
        # Redis's clock when given one (the refresh time is shared); alone (console, unit tests) this machine's.
        self._clock = clock or Clock(redis)
        self._local = Catalogue()
        self._local_at = ""
        self.failed = False  # the last refresh this process tried could not read the Hub

    @property
    def current(self) -> Catalogue:
        return self.read(self._reads)

    def read(self, client=None) -> Catalogue:
        """The shared copy read through `client` (default: the normal one, for the leader's work), else the
        last copy this process saw."""
        if self._redis is None:
            return self._local
        client = client if client is not None else self._redis
        try:
            at = client.hget(CATALOGUE_KEY, "at")
            if at and at != self._local_at:
                stored = catalogue_from_json(client.hget(CATALOGUE_KEY, "json"))
                if stored is not None:
                    stored.read_at = float(at)
                    self._local, self._local_at = stored, at
        except REDIS_ERRORS:
            pass  # Redis away: the last copy this process saw
        return self._local

    @current.setter
    def current(self, catalogue: Catalogue) -> None:
        self._local = catalogue

    def refresh(self, now: float | None = None) -> Catalogue:
        """Read the Hub's list now; on failure keep the last good catalogue."""
        now = self._clock() if now is None else now
        try:
            fresh = Catalogue.from_hub(self._fetch())
        except SpaceOpsError as err:
            log.warning("hardware catalogue not refreshed, keeping the last good one: %s", err.sentence)
            self.failed = True
            self._store({"failed_at": repr(now)})
            return self.current
        if fresh.source != "hub":
            return self.current  # the Hub answered an empty list: not a catalogue to replace a good one with
        fresh.read_at = now
        self.failed = False
        self._local = fresh
        self._store({"json": catalogue_json(fresh), "at": repr(now), "failed_at": ""})
        self._local_at = repr(now)
        return fresh

    def refresh_if_due(self, now: float) -> bool:
        """The leader's tick: refresh when the shared copy is older than an hour (or absent); True if it tried."""
        if self._redis is None:
            return False
        try:
            at, failed_at = self._redis.hmget(CATALOGUE_KEY, ["at", "failed_at"])
        except REDIS_ERRORS:
            return False
        if at and now - float(at) < REFRESH_SECONDS:
            return False
        if failed_at and now - float(failed_at) < RETRY_SECONDS:
            return False
        self.refresh(now)
        return True

    def _store(self, fields: dict) -> None:
        if self._redis is None:
            return
        try:
            self._redis.hset(CATALOGUE_KEY, mapping=fields)
        except REDIS_ERRORS:
            log.warning("hardware catalogue not shared (Redis unreachable); this replica keeps its copy")


class ThrottledCatalogue:
    """A view of a CatalogueSource that looks at Redis at most every `seconds` (for the poller, which
    prices every Space it reads in a cycle); commands read the source itself, always fresh."""

    def __init__(self, source: CatalogueSource, seconds: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.source = source
        self._copy: TtlCache[Catalogue] = TtlCache(seconds, monotonic)

    @property
    def seconds(self) -> float:
        """How long a copy is used before Redis is looked at again."""
        return self._copy.seconds

    @seconds.setter
    def seconds(self, value: float) -> None:
        self._copy.seconds = value

    @property
    def current(self) -> Catalogue:
        # The poll leader's view: the normal client (a slow moment must not price a cycle with an old copy).
        return self._copy.get("", self.source.read)

    def refresh(self, now: float | None = None) -> Catalogue:
        catalogue = self.source.refresh(now)
        self._copy.put("", catalogue)
        return catalogue
