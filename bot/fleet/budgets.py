"""Monthly budgets per namespace: `/space budget`, and the leader's check that alerts each threshold once a month."""

from __future__ import annotations

import json
import logging
from typing import Callable

from bot.alerts.outbox import Outbox
from bot.commands.grammar import Command
from bot.core.deliver import Deliveries
from bot.core.errors import NotAllowed
from bot.core.markup import escape
from bot.core.jobs import LeaseLost
from bot.core.permissions import Actor, Roles, namespace_of
from bot.core.store import Store
from bot.core.words import Reply
from bot.fleet import report, words
from bot.fleet.reads import FleetReads

log = logging.getLogger(__name__)
BUDGET_OP = "fleet:budget"
BUDGET_EVERY = 5 * 60


class Budgets:
    def __init__(self, records: Store, reads: FleetReads, roles: Roles, outbox: Outbox, deliveries: Deliveries,
                 clock: Callable[[], float], hub_url: str,
                 hidden: Callable[[list[str], str], set[str]] | None = None, deciders=None):
        self.records = records
        self.deciders = deciders  # bot/access's require_admin (SPACEOPS_ROLES_FROM); the admin list when None
        self.hidden = hidden  # Spaces whose spend may not be named in a channel (the gate's rule, bot/access)
        self.reads = reads
        self.roles = roles
        self.outbox = outbox
        self.deliveries = deliveries
        self.clock = clock
        self.hub_url = hub_url
        self._budgets_checked = 0.0
        outbox.handlers[BUDGET_OP] = self._deliver_budget

    def _month_of_namespace(self, namespace: str, now: float) -> tuple[float, float, list[tuple[str, float]],
                                                                         tuple[float, str] | None, dict[str, int]]:
        """(spent, projected, top spenders, first seen, billed seconds at an unknown price per Space) of the
        namespace's watched Spaces this month."""
        spaces = self.reads.in_scope(f"{namespace}/*")
        start, end = report.month_bounds(report.month_of(now))
        snap = self.reads.snapshot(spaces, start, end, now)
        spent = sum(m[0] for m in snap.month.values())
        projected = sum(m[1] for m in snap.month.values())
        top = sorted(((s, m[0]) for s, m in snap.month.items() if m[0] > 0), key=lambda x: -x[1])
        return spent, projected, top, snap.first_seen(), snap.unpriced

    def _hidden(self, spaces: list[str], channel: str) -> set[str]:
        if self.hidden is None:
            return set()
        try:
            return self.hidden(spaces, channel)
        except Exception:  # noqa: BLE001 — when privacy can't be known, no Space is named
            log.warning("could not tell which Spaces are private for %s; none is named", channel, exc_info=True)
            return set(spaces)

    def budget(self, cmd: Command, actor: Actor) -> Reply:
        namespace = namespace_of(cmd.space)
        spent, projected, _, first, unpriced = self._month_of_namespace(namespace, self.clock())
        return words.budget_show_reply(cmd.space, self.reads.store.budgets().get(namespace), spent, projected, first,
                                       unpriced)

    def _require_admin(self, actor: Actor, space: str) -> None:
        refusal = f"Budgets are set by admins, which you are not. Admins: {self.roles.who_holds('admin')}."
        if self.deciders is not None:
            self.deciders.require_admin(actor.user, [namespace_of(space)], f"setting a budget on {escape(space)}",
                                        refusal)
        elif not self.roles.is_admin(actor.user):
            raise NotAllowed(refusal)

    def budget_set(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(actor, cmd.space)
        namespace = namespace_of(cmd.space)
        self.records.require()
        self.reads.store.set_budget(namespace, float(cmd.amount or 0), actor.channel, actor.user, self.clock())
        self.records.audit(actor.user, "budget.set", cmd.space, {"amount": cmd.amount, "channel": actor.channel})
        return words.budget_set_reply(actor.user, cmd.space, float(cmd.amount or 0), actor.channel)

    def budget_off(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(actor, cmd.space)
        self.records.require()
        existed = self.reads.store.remove_budget(namespace_of(cmd.space))
        if existed:
            self.records.audit(actor.user, "budget.off", cmd.space, {})
        return words.budget_off_reply(actor.user, cmd.space, existed)

    def check_budgets(self, now: float, leading: Callable[[], bool] | None = None, deadline=None) -> int:
        """Queue each threshold's alert once per month (projected to exceed, 80%, 100%); every 5 minutes
        of the leader's clock at most, since a namespace's month is a read of every one of its Spaces.

        A slow job off the leader's tick (bot/core/jobs.py): the lease is checked before each alert is
        queued, and namespaces not reached by the deadline wait for the next check."""
        if now - self._budgets_checked < BUDGET_EVERY:
            return 0
        self._budgets_checked = now
        queued = 0
        month = report.month_of(now)
        for namespace, budget in self.reads.store.budgets().items():
            if deadline is not None and deadline.passed():
                log.warning("budget check stopped at its deadline; the other namespaces wait %d s", BUDGET_EVERY)
                break
            amount = float(budget["amount"])
            spent, projected, top, first, unpriced = self._month_of_namespace(namespace, now)
            crossed = []
            if unpriced:
                crossed.append("unpriced")  # time the budget cannot count: said once a month, not left as $0
            if projected > amount:
                crossed.append("projected")
            if spent >= 0.8 * amount:
                crossed.append("80")
            if spent >= amount:
                crossed.append("100")
            for threshold in crossed:
                if leading is not None and not leading():
                    raise LeaseLost()
                if not self.reads.store.first_alert(namespace, month, threshold):
                    continue
                payload = json.dumps({"namespace": namespace, "threshold": threshold, "amount": amount,
                                      "spent": spent, "projected": projected, "top": top[:5],
                                      "first": list(first) if first else None, "unpriced": unpriced})
                self.outbox.enqueue_one(f"budget:{namespace}:{month}:{threshold}", budget["channel"], BUDGET_OP,
                                        payload)
                queued += 1
        return queued

    def _deliver_budget(self, channel: str, payload: str) -> None:
        data = json.loads(payload)
        top = [tuple(t) for t in data["top"]]
        unpriced = data.get("unpriced") or {}
        # Asked when it is shown, of the gate: the top spenders and the Spaces whose price is unknown.
        hidden = self._hidden(sorted({space for space, _ in top} | set(unpriced)), channel)
        reply = words.budget_alert(f"{data['namespace']}/*", data["threshold"], data["amount"], data["spent"],
                                   data["projected"], [t for t in top if t[0] not in hidden], self.hub_url,
                                   tuple(data["first"]) if data.get("first") else None,
                                   {s: n for s, n in unpriced.items() if s not in hidden},
                                   private_left_out=len(hidden))
        # Under the outbox's delivery id (budget:<ns>:<month>:<threshold>): marked, looked for before a retry.
        self.deliveries.post(channel, reply.text, reply.blocks)
