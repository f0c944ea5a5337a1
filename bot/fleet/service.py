"""The fleet feature: `/space cost`, digests, budgets and the App Home, over the roll-ups in Redis.

Each is a module of its own on the shared read side (`reads.py`); this one wires them together and runs
the leader's tick: keep the index of known Spaces, refresh open dashboards, check budgets. A cron job on
the leader posts due digests.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from bot.alerts.outbox import Outbox
from bot.alerts.watches import WatchStore
from bot.commands.grammar import Command
from bot.core.flavors import CatalogueSource
from bot.core.permissions import Actor, Roles, declare
from bot.core.settings import Settings
from bot.core.deliver import Deliveries
from bot.core.store import REDIS_ERRORS, Store
from bot.core.words import Reply
from bot.fleet.budgets import Budgets
from bot.fleet.cost import CostCommand
from bot.fleet.digests import Digests
from bot.fleet.home import Home
from bot.fleet.reads import FleetReads
from bot.fleet.uploads import Charts

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"cost", "digests", "budget"}, changes={"digest", "digest.off"},
        self_checked={"budget.set", "budget.off"})


class Fleet:
    def __init__(self, settings: Settings, records: Store, deliveries: Deliveries, watch_store: WatchStore, outbox: Outbox,
                 catalogues: CatalogueSource, roles: Roles, known: Callable[[], Iterable[str]],
                 leading: Callable[[float], bool], pending_requests: Callable[[], list] = lambda: [],
                 slack=None, clock: Callable[[], float] | None = None,
                 reveals: Callable[[str, Actor], bool] = lambda space, actor: True,
                 prefetch: Callable[[set[str]], None] = lambda spaces: None,
                 check: Callable[[Command, Actor], None] | None = None, gate=None,
                 is_private: Callable[[str], bool] = lambda space: True,
                 hidden: Callable[[list[str], str], set[str]] | None = None, deciders=None):
        self.clock = clock or records.clock  # Redis's (bot/core/clock.py): digest periods, budget months
        self.known_now = known
        now = lambda: self.clock()  # noqa: E731 — the benchmark and tests set `clock` after building
        hub_url = settings.hf_endpoint
        self.reads = FleetReads(records, watch_store, catalogues)
        self.store = self.reads.store
        self.charts = Charts(self.reads, deliveries)
        self.costs = CostCommand(self.reads, self.charts, now, hub_url)
        # `deciders` (bot/access: admins and approvers by SPACEOPS_ROLES_FROM); the Slack lists when None.
        self.budgets = Budgets(records, self.reads, roles, outbox, deliveries, now, hub_url, hidden=hidden,
                               deciders=deciders)
        self.digests = Digests(records, self.reads, self.charts, deliveries, leading, now, hub_url, reveals, prefetch,
                               check=check, hidden=hidden)
        self.homes = Home(self.reads, roles, now, hub_url, pending_requests, slack, gate=gate, is_private=is_private,
                          approves=deciders.approves if deciders is not None else None)
        self._indexed: set[str] = set()

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        return {"cost": self.costs.cost, "digest": self.digests.digest, "digest.off": self.digests.digest_off,
                "digests": self.digests.digests, "budget": self.budgets.budget,
                "budget.set": self.budgets.budget_set, "budget.off": self.budgets.budget_off}

    def tick(self, now: float) -> int:
        """On the leader's poll tick: index new Spaces, refresh open dashboards (budgets are checked by a
        slow job of their own, off the tick: `budgets.check_budgets`). Returns how many Homes were published."""
        fresh = set(self.known_now()) - self._indexed
        if fresh:
            self.store.remember(fresh)
            self._indexed |= fresh
        done = 0
        for job in (self.homes.refresh_homes,):
            try:
                done += job(now)
            except REDIS_ERRORS:
                raise
            except Exception:  # noqa: BLE001 — one failing report must not stop the others or the tick
                log.exception("fleet job %s failed", job.__name__)
        return done

    def known(self) -> set[str]:
        """The index of known Spaces (retention prunes it: bot/alerts/retention.py)."""
        return self.store.known()

    def forget_known(self, spaces: Iterable[str]) -> None:
        spaces = set(spaces)
        self.store.forget_known(spaces)
        self._indexed -= spaces  # indexed again if the poller sees them again

    # What tests, the benchmark and the Home handler call by name.
    def cost(self, cmd: Command, actor: Actor) -> Reply:
        return self.costs.cost(cmd, actor)

    def period(self, *args, **kwargs):
        return self.reads.period(*args, **kwargs)

    def chart_png(self, *args, **kwargs) -> bytes:
        return self.charts.chart_png(*args, **kwargs)

    def digest_tick(self, now: float | None = None) -> int:
        return self.digests.digest_tick(now)

    def post_digest(self, channel: str, config: dict, due_at: float, now: float) -> str:
        return self.digests.post_digest(channel, config, due_at, now)

    def home(self, user: str, page: int, now: float, team: str = "") -> dict:
        return self.homes.home(user, page, now, team)

    def publish_home(self, user: str, page: int = 0, now: float | None = None, opened: bool = False,
                     team: str = "") -> bool:
        return self.homes.publish_home(user, page, now, opened, team)
