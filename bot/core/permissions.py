"""Who may do what: pure decisions over settings and (resolved) Slack user groups."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from bot.core.cache import TtlCache
from bot.core.errors import NotAllowed
from bot.core.settings import Settings

log = logging.getLogger(__name__)

# What each command needs, declared by the feature that runs it (`declare`, when its module is imported):
# the core knows no command names. A read, a change (needs the operator role), or checked by the feature
# itself (admins, a requester withdrawing their own). Filled in place: importers see every declaration.
# `anyone`: reads that touch no Space and that every member of the workspace may run whatever their role,
# like help (signing in: under SPACEOPS_UNLINKED=none an unlinked member could otherwise never link).
READS: set[str] = set()
CHANGES: set[str] = set()
SELF_CHECKED: set[str] = set()
ANYONE: set[str] = set()


def declare(reads: Iterable[str] = (), changes: Iterable[str] = (), self_checked: Iterable[str] = (),
            anyone: Iterable[str] = ()) -> None:
    """A feature says what its commands need; `Roles.check` and the gate (bot/access) read it."""
    READS.update(reads)
    READS.update(anyone)
    CHANGES.update(changes)
    SELF_CHECKED.update(self_checked)
    ANYONE.update(anyone)


GROUP_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Actor:
    """Who asked, and where."""

    user: str
    channel: str = ""
    team: str = ""


def namespace_of(space: str) -> str:
    return space.split("/", 1)[0]


def check_namespace(space: str | None, settings: Settings) -> None:
    if not space or not settings.namespaces:
        return
    if namespace_of(space) not in settings.namespaces:
        allowed = ", ".join(sorted(settings.namespaces))
        raise NotAllowed(f"Space Ops is not set up to touch `{namespace_of(space)}`: it may only act on {allowed}.")


class Roles:
    """Role membership from settings; `S…` entries are Slack user groups resolved (and cached) on demand."""

    def __init__(self, settings: Settings, resolve_group: Callable[[str], Iterable[str]] | None = None):
        self.settings = settings
        self._resolve = resolve_group
        self._groups: TtlCache[frozenset[str]] = TtlCache(GROUP_CACHE_SECONDS)

    def _expand(self, ids: frozenset[str]) -> frozenset[str]:
        users = {i for i in ids if not i.startswith("S")}
        for group in (i for i in ids if i.startswith("S")):
            users |= self._group(group)
        return frozenset(users)

    def _group(self, group: str) -> frozenset[str]:
        return self._groups.get(group, lambda: self._members_of(group))

    def _members_of(self, group: str) -> frozenset[str]:
        members: frozenset[str] = self._groups.stale(group, frozenset())
        if self._resolve:
            try:
                members = frozenset(self._resolve(group))
            except Exception:  # noqa: BLE001 — Slack unreachable: keep the last known members
                log.warning("could not resolve user group %s; using %d cached members", group, len(members))
        return members

    def members(self, ids: frozenset[str]) -> frozenset[str]:
        """The users of a list of user and user group ids (groups resolved and cached)."""
        return self._expand(ids)

    def admins(self) -> frozenset[str]:
        return self._expand(self.settings.admins)

    def is_admin(self, user: str) -> bool:
        return user in self.admins()

    def is_operator(self, user: str) -> bool:
        if not user:
            return False  # a payload that names no user (forged or broken) gets no rights, even if all members have
        if self.is_admin(user):
            return True
        return not self.settings.operators or user in self._expand(self.settings.operators)

    def is_approver(self, user: str) -> bool:
        return self.is_admin(user) or user in self._expand(self.settings.approvers)

    def who_holds(self, role: str) -> str:
        holders = sorted(self.admins())
        if role == "approver":
            holders = sorted(set(holders) | self._expand(self.settings.approvers))
        if not holders:
            return "no one is configured yet (SPACEOPS_ADMINS)"
        return ", ".join(f"<@{h}>" for h in holders[:10])

    def check(self, command_name: str, user: str, space: str | None = None) -> None:
        """Raise NotAllowed with a sentence naming the missing role and who holds it."""
        check_namespace(space, self.settings)
        if command_name in READS or command_name in SELF_CHECKED:
            return
        if command_name in CHANGES:
            # SPACEOPS_ROLES_FROM=hub: the lists grant nothing; the gate (bot/access) asked the Hub role.
            if self.settings.roles_from != "hub" and not self.is_operator(user):
                raise NotAllowed(f"`{command_name.replace('.', ' ')}` changes a Space and needs the operator role, "
                                 f"which you don't have. Ask an admin: {self.who_holds('admin')}.")
            return
        raise NotAllowed(f"`{command_name}` is not a known action.")

    def check_approver(self, user: str, requester: str) -> None:
        """Raise NotAllowed unless `user` is an approver (or admin) other than the requester."""
        if user == requester:
            raise NotAllowed("You can't approve your own request: another approver has to.")
        if not self.is_approver(user):
            raise NotAllowed(f"Deciding on paid hardware needs the approver role, which you don't have. "
                             f"Approvers: {self.who_holds('approver')}.")
