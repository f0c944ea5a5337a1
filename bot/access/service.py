"""Access applied: the guard every command and button passes, what a channel may be shown, and the
`/space scope` commands. Slack (users.info, auth.test) and the Hub (is a Space private?) are read here,
cached, and handed to the pure decision in `bot.access.rules`."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from bot.access import words
from bot.access.rules import LEVELS, Scope, Situation, Verdict, decide, is_dm, may_alert, reveals
from bot.access.store import ScopeStore
from bot.commands.grammar import Command
from bot.core import hub
from bot.core.cache import TtlCache
from bot.core.errors import BadInput, NotAllowed, SpaceOpsError
from bot.core.permissions import CHANGES, READS, Actor, Roles, namespace_of
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store, key
from bot.core.words import Reply

log = logging.getLogger(__name__)
CACHE_SECONDS = 300
PRIVATE = key("private")  # hash: Space → "1" private / "0" public, the last answer from the Hub
# Commands whose answer shows what a private Space keeps to itself (variables, secret names, its audit).
SHOWS_PRIVATE = frozenset({"var.ls", "secret.ls", "audit"})
# Operator commands that change no Space, only what a channel hears: a read-only channel may still run them.
CHANNEL_ONLY = frozenset({"watch", "unwatch", "mute", "unmute"})


class Access:
    def __init__(self, settings: Settings, store: Store, roles: Roles, api, client=None):
        self.settings = settings
        self.records = store
        self.roles = roles
        self.api = api
        self.client = client  # slack_sdk WebClient, or None (console): no workspace or guest checks then
        self.scopes = ScopeStore(store.redis, reads=store.fast)
        self._users: TtlCache[dict | None] = TtlCache(CACHE_SECONDS)
        self._last_users: dict[str, dict] = {}
        self._private: TtlCache[bool | SpaceOpsError] = TtlCache(CACHE_SECONDS)
        self._seen_private: dict[str, bool] = {}  # what this process last wrote to PRIVATE
        self._home: tuple[str, str] | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="spaceops-access")

    # ------------------------------------------------------------------ facts, cached

    def home(self) -> tuple[str, str]:
        """(team id, name) of the workspace the bot is installed in, from auth.test; ("", "") unknown."""
        if self._home is None and self.client is not None:
            try:
                answer = self.client.auth_test()
                self._home = (answer.get("team_id") or "", answer.get("team") or "this workspace")
            except Exception as err:  # noqa: BLE001 — Slack unreachable: ask again next time
                log.warning("auth.test failed (%s); the workspace boundary waits for it", err)
                return "", ""
        return self._home or ("", "")

    def user(self, user: str) -> dict:
        """users.info's user (team_id, is_restricted…), cached; the last answer (else {}) when Slack fails.

        Unknown counts as a member of the payload's workspace: a Slack hiccup must not lock operators out
        mid-incident, and the signed payload's own team is still checked."""
        if self.client is None or not user:
            return {}

        def load():
            try:
                return dict(self.client.users_info(user=user).get("user") or {})
            except Exception as err:  # noqa: BLE001 — Slack unreachable or refusing
                log.warning("users.info failed (%s); using the last answer for this user", err)
                return None
        value = self._users.get(user, load)
        if value is None:
            self._users.forget(user)
            return self._last_users.get(user, {})
        self._last_users[user] = value
        return value

    def is_private(self, space: str, strict: bool = False) -> bool:
        """Whether the Hub says the Space is private. Asked at most every few minutes per Space; when the Hub
        can't answer, the last answer any replica got (Redis), else private: never shown by mistake.
        `strict`: with no answer at all, raise the Hub's error (a command says why it shows nothing)."""
        def load():
            try:
                return self._watched_private(space)
            except SpaceOpsError as err:
                return err
        value = self._private.get(space, load)
        if isinstance(value, bool):
            return value
        self._private.forget(space)  # ask the Hub again next time
        try:
            known = self.records.redis.hget(PRIVATE, space)
        except REDIS_ERRORS:
            known = None
        if known is None and strict and isinstance(value, SpaceOpsError):
            raise value
        return known != "0"

    def observed(self, seen: dict[str, bool]) -> None:
        """The poller's batched read saw these Spaces' visibility: kept as fresh answers (no Hub request of
        their own for a while), and in Redis for the replicas, in one write, for those that changed."""
        changed = {}
        for space, private in seen.items():
            self._private.put(space, private)
            if self._seen_private.get(space) is not private:
                changed[space] = private
        if not changed:
            return
        try:
            self.records.redis.hset(PRIVATE, mapping={s: "1" if p else "0" for s, p in changed.items()})
            self._seen_private.update(changed)
        except REDIS_ERRORS:
            pass

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def prefetch(self, spaces: set[str]) -> None:
        """Look up whether these Spaces are private, several at a time (before their alerts are routed)."""
        if len(spaces) > 1:
            list(self._pool.map(self.is_private, sorted(spaces)))

    def channel_scopes(self, channel: str, fast: bool = True) -> tuple[Scope, ...]:
        try:
            return self.scopes.get(channel, fast)
        except REDIS_ERRORS:
            return ()

    # ------------------------------------------------------------------ the user's level

    def same_workspace(self, actor: Actor) -> bool:
        home, _ = self.home()
        if not home:
            return True
        allowed = {home} | set(self.settings.allowed_teams)
        teams = {actor.team} if actor.team else set()
        own = self.user(actor.user).get("team_id")
        if own:
            teams.add(own)
        return all(team in allowed for team in teams)

    def role(self, user: str) -> str:
        roles, settings = self.roles, self.settings
        if roles.is_admin(user):
            return "operate"
        listed = (bool(settings.operators) and roles.is_operator(user)) or roles.is_approver(user)
        reader = not settings.readers or listed or user in roles.members(settings.readers)
        info = self.user(user)
        if info.get("is_restricted") or info.get("is_ultra_restricted"):
            if bool(settings.operators) and roles.is_operator(user):
                return "operate"  # a guest an admin listed as operator
            return "read" if reader else "none"
        if not reader:
            return "none"
        return "operate" if roles.is_operator(user) else "read"

    # ------------------------------------------------------------------ the guard

    def situation(self, need: str, actor: Actor, channel: str, space: str | None, shows_private: bool,
                  role: str | None = None, workspace: bool | None = None, command: str = "") -> Situation:
        namespace = namespace_of(space) if space else None
        private = bool(space and shows_private and not space.endswith("/*") and not is_dm(channel)
                       and self.is_private(space, strict=True))
        info = self.user(actor.user)
        return Situation(need=need, role=role or self.role(actor.user), channel=channel,
                         command=command.replace(".", " "), admins=self.roles.who_holds("admin"),
                         guest=bool(info.get("is_restricted") or info.get("is_ultra_restricted")),
                         scopes=self.channel_scopes(channel), namespace=namespace, private=private,
                         shows_private=shows_private,
                         same_workspace=self.same_workspace(actor) if workspace is None else workspace,
                         workspace=self.home()[1] or "this workspace")

    def check(self, cmd: Command, actor: Actor) -> None:
        """Raise NotAllowed with the reason, before anything runs."""
        if cmd.name == "help":
            verdict = decide(Situation("none", "none", actor.channel, same_workspace=self.same_workspace(actor),
                                       workspace=self.home()[1] or "this workspace"))
            if not verdict.allowed:
                raise NotAllowed(verdict.reason)
            return
        need = "operate" if cmd.name in CHANGES else "read"
        role = self.role(actor.user)
        same = self.same_workspace(actor)
        spaces = [s for s in (cmd.space, cmd.target) if s]
        for space in spaces or [None]:
            situation = self.situation(need, actor, actor.channel, space, cmd.name in SHOWS_PRIVATE and bool(space),
                                       role, same, cmd.name)
            if cmd.name in CHANNEL_ONLY:
                situation = replace(situation, scope_need="read")
            verdict = decide(situation)
            if not verdict.allowed:
                raise NotAllowed(verdict.reason)
        if cmd.name == "watch" and cmd.space:
            self._check_watch(cmd, actor, role, same)

    def _check_watch(self, cmd: Command, actor: Actor, role: str, same: bool) -> None:
        """Where the alerts would go: that channel's scope too, and no private Space into an unscoped one."""
        channel = cmd.channel or actor.channel
        if channel != actor.channel:
            verdict = decide(self.situation("read", actor, channel, cmd.space, False, role, same))
            if not verdict.allowed:
                raise NotAllowed(verdict.reason.replace("This channel", f"<#{channel}>"))
        if not cmd.is_pattern and self._watched_private(cmd.space) and not reveals(
                channel, self.channel_scopes(channel), namespace_of(cmd.space), True):
            raise NotAllowed(words.private_watch_refused(cmd.space, channel, namespace_of(cmd.space)))

    def _watched_private(self, space: str) -> bool:
        """Asked of the Hub now (a typo'd Space is "not found", not "private"); the answer is kept in Redis
        for replicas that later can't ask."""
        info = hub.call(self.api.space_info, space, expand=["private"], space=space)
        private = bool(getattr(info, "private", True))
        try:
            self.records.redis.hset(PRIVATE, space, "1" if private else "0")
        except REDIS_ERRORS:
            pass
        return private

    def check_click(self, actor: Actor, space: str | None) -> None:
        """Buttons that decide (approvals): the workspace boundary and the channel's scope."""
        verdict = decide(self.situation("read", actor, actor.channel, space, False, "operate"))
        if not verdict.allowed:
            raise NotAllowed(verdict.reason)

    # ------------------------------------------------------------------ what a channel is shown

    def reveals(self, space: str, actor: Actor) -> bool:
        """Private details (error text, logs, variables) of `space` may be shown to this actor's channel."""
        if not space or space.endswith("/*"):
            return True
        channel = actor.channel
        if is_dm(channel):
            return True
        return reveals(channel, self.channel_scopes(channel), namespace_of(space), self.is_private(space))

    def may_alert(self, space: str, channel: str) -> bool:
        """Whether an alert about `space` may be posted into `channel` (its scope; a private Space only
        where its namespace is in scope or in a DM)."""
        scopes = self.channel_scopes(channel, fast=False)  # the leader's outbox: no hurry, no alert dropped
        private = not is_dm(channel) and self.is_private(space)
        return may_alert(channel, scopes, namespace_of(space), private)

    # ------------------------------------------------------------------ /space scope

    def show(self, cmd: Command, actor: Actor) -> Reply:
        channel = cmd.channel or actor.channel
        return words.scopes_reply(channel, self.channel_scopes(channel), self.settings.namespaces)

    def set(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(cmd, actor)
        channel = cmd.channel or actor.channel
        namespace = cmd.space[:-2]
        if self.settings.namespaces and namespace not in self.settings.namespaces:
            raise BadInput(f"Space Ops may only act on {', '.join(sorted(self.settings.namespaces))} "
                           f"(SPACEOPS_NAMESPACES): a scope can't widen that.")
        self.records.require()
        self.scopes.set(channel, namespace, cmd.level or "operate")
        self.records.audit(actor.user, "scope", cmd.space, {"channel": channel, "level": cmd.level or "operate"},
                           per_space=False)
        return words.scope_set_reply(actor.user, channel, Scope(namespace, cmd.level or "operate"))

    def unset(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(cmd, actor)
        self.records.require()
        existed = self.scopes.remove(cmd.channel, cmd.space[:-2])
        if existed:
            self.records.audit(actor.user, "unscope", cmd.space, {"channel": cmd.channel}, per_space=False)
        return words.unscope_reply(actor.user, cmd.channel, cmd.space, existed, self.channel_scopes(cmd.channel))

    def _require_admin(self, cmd: Command, actor: Actor) -> None:
        if not self.roles.is_admin(actor.user):
            raise NotAllowed(words.SCOPE_ADMINS_ONLY.format(admins=self.roles.who_holds("admin")))

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        return {"scope": self.show, "scope.set": self.set, "unscope": self.unset}


__all__ = ["Access", "LEVELS", "Verdict", "READS"]
