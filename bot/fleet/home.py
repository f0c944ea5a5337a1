"""The App Home dashboard: built from the fleet's reads, published with views.publish, refreshed when a stage changes.

Per viewer: the gate (`Access.gate`) says which namespaces the viewer may read here (the Home is the viewer's
own, DM-like place), whether private Spaces' details may show, and whether the buttons that change a Space
are theirs; a viewer with no read right reads a sentence. Viewers with the same answers see the same view,
so a refresh round builds it once per distinct answer (role and scope), not once per user."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Callable

from slack_sdk.errors import SlackApiError

from bot.alerts.keys import state_key
from bot.core.blocks import fit_view
from bot.core.permissions import Actor, Roles, namespace_of
from bot.core.words import not_shown_in_view
from bot.fleet import report, words
from bot.fleet.reads import FleetReads

log = logging.getLogger(__name__)

HOME_RECENT = 3600
HOME_DEBOUNCE = 10.0
# The gate: (actor, action, target, place) → a verdict with `allowed`, `reason`, `reveal`.
Gate = Callable[..., object]


@dataclass(frozen=True)
class Viewer:
    """What the gate allows one viewer on their Home: equal viewers get the same view."""

    reason: str                      # why nothing is shown ("" when something may be)
    namespaces: frozenset[str]       # readable namespaces of the watched Spaces
    details: frozenset[str]          # of those, where private Spaces (and their details) may show
    operator: bool                   # may press the buttons that change a Space
    approver: bool                   # sees pending requests (and their Approve / Deny)


@dataclass(frozen=True)
class _Open:
    allowed: bool = True
    reason: str = ""
    reveal: bool = True


def _allow_all(actor, action, target=None, place=None, **_):
    """A Home built without the gate (a bare Fleet): everything; bot/app.py always passes the gate."""
    return _Open()


class Home:
    def __init__(self, reads: FleetReads, roles: Roles, clock: Callable[[], float], hub_url: str,
                 pending_requests: Callable[[], list] = lambda: [], slack=None, gate: Gate | None = None,
                 is_private: Callable[[str], bool] = lambda space: True,
                 approves: Callable[[str], bool] | None = None):
        self.reads = reads
        self.approves = approves or roles.is_approver  # bot/access's, by SPACEOPS_ROLES_FROM
        self.gate = gate or _allow_all
        self.is_private = is_private  # only asked where the gate hides private details
        self.roles = roles
        self.clock = clock
        self.hub_url = hub_url
        self.pending_requests = pending_requests
        self.slack = slack  # a slack_sdk WebClient (views.publish); None in the console

    def viewer(self, user: str, spaces: list[str], team: str = "") -> Viewer:
        """Ask the gate, once per namespace, what `user` may see and do on their Home (their own place)."""
        actor = Actor(user=user, channel=user, team=team)
        seen = self.gate(actor, "read", None, place=user)
        if not seen.allowed:
            return Viewer(seen.reason, frozenset(), frozenset(), False, False)
        first: dict[str, str] = {}
        for space in spaces:
            first.setdefault(namespace_of(space), space)
        readable, details = set(), set()
        for ns, sample in first.items():
            if self.gate(actor, "read", f"{ns}/*", place=user).allowed:
                readable.add(ns)
                # The Home is the viewer's own (DM-like): the same answer for every Space of the namespace.
                if self.gate(actor, "reveal", sample, place=user).reveal:
                    details.add(ns)
        operator = self.gate(actor, "operate", None, place=user).allowed
        return Viewer("", frozenset(readable), frozenset(details), operator, self.approves(user))

    def home(self, user: str, page: int, now: float, team: str = "", viewer: Viewer | None = None) -> dict:
        """The user's App Home: page 0 ranks broken and costly Spaces first; pages 1… list every one."""
        watched = self.reads.watched()
        viewer = viewer or self.viewer(user, watched, team)
        return self.view_for(viewer, watched, page, now)

    def view_for(self, viewer: Viewer, watched: list[str], page: int, now: float) -> dict:
        if viewer.reason:
            return words.home_refused(viewer.reason)
        spaces = [s for s in watched if namespace_of(s) in viewer.details
                  or (namespace_of(s) in viewer.namespaces and not self.is_private(s))]
        snap = self.reads.glance(spaces, now)
        month = {s: m.so_far for s, m in snap.month.items()}
        if page == 0:
            rows = sorted(snap.rows, key=lambda r: (report.broken_now(r, now) is None, -month.get(r.space, 0.0),
                                                    r.space))
        else:
            rows = sorted(snap.rows, key=lambda r: r.space)
        namespaces: dict[str, dict] = {}
        for row in snap.rows:
            c = namespaces.setdefault(namespace_of(row.space), {"running": 0, "asleep": 0, "broken": 0, "month": 0.0})
            c["running"] += report.is_up(row.stage)
            c["asleep"] += row.stage in ("SLEEPING", "STOPPED")
            c["broken"] += report.broken_now(row, now) == "broken"
            c["month"] += month.get(row.space, 0.0)
        ordered_ns = sorted(namespaces.items(), key=lambda x: (-x[1]["broken"], -x[1]["month"], x[0]))
        requests = [r for r in self.pending_requests() if namespace_of(r.space) in viewer.namespaces] \
            if viewer.approver else []
        spend = {s: (snap.today.get(s, 0.0), month.get(s, 0.0)) for s in spaces}
        return words.home_view(rows, spend, snap.prices, ordered_ns, viewer.operator, requests,
                               self.reads.catalogues.current, page, snap.first_seen(), now, self.hub_url)

    def stage_fingerprint(self) -> str:
        """Changes when any watched Space changes stage (or the watched set changes)."""
        spaces = self.reads.watched()
        pipe = self.reads.records.redis.pipeline(transaction=False)
        for space in spaces:
            pipe.hget(state_key(space), "stage")
        stages = pipe.execute() if spaces else []
        return hashlib.sha1(json.dumps(list(zip(spaces, stages))).encode()).hexdigest()

    def publish_home(self, user: str, page: int = 0, now: float | None = None, opened: bool = False,
                     team: str = "", views: dict | None = None) -> bool:
        """views.publish the user's Home with the last view's hash; False when nothing was published.
        `views` (viewer → view) is a refresh round's: equal viewers share one build."""
        now = self.clock() if now is None else now
        if self.slack is None or not user:
            return False
        if opened:
            self.reads.store.opened_home(user, now)
        fingerprint = self.stage_fingerprint()
        watched = self.reads.watched()
        viewer = self.viewer(user, watched, team)
        if views is None:
            view = self.view_for(viewer, watched, page, now)
        else:
            if (viewer, page) not in views:
                views[(viewer, page)] = self.view_for(viewer, watched, page, now)
            view = views[(viewer, page)]
        old_hash, _ = self.reads.store.home_hash(user)
        for attempt in (0, 1):
            try:
                answer = self.slack.views_publish(user_id=user, view=fit_view(view, not_shown_in_view),
                                                  hash=old_hash or None)
                break
            except SlackApiError as err:
                if attempt == 0 and (err.response or {}).get("error") == "hash_conflict":
                    old_hash = ""  # published meanwhile (another replica or click): ours is newer
                    continue
                raise
        new_hash = ((answer.get("view") or {}).get("hash")) or ""
        self.reads.store.save_home_hash(user, new_hash, fingerprint)
        return True

    def refresh_homes(self, now: float) -> int:
        """Republish the Home of users who opened it in the last hour when a Space they see changed stage,
        at most once per user per 10 s (a user left out now is caught on a later tick)."""
        users = self.reads.store.recent_home_users(now - HOME_RECENT)
        if not users or self.slack is None:
            return 0
        fingerprint = self.stage_fingerprint()
        done = 0
        views: dict = {}  # one build per distinct viewer (role and scope) this round
        for user in users:
            if self.reads.store.home_hash(user)[1] == fingerprint or not self.reads.store.debounce(user, now, HOME_DEBOUNCE):
                continue
            try:
                done += self.publish_home(user, 0, now, views=views)
            except Exception:  # noqa: BLE001 — one user's view must not stop the others
                log.exception("home refresh for %s failed", user)
        return done
