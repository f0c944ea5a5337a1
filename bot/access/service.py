"""Access applied: the gate every way in passes (`Access.gate`: who may see / do what, here), what a place
may be shown, and the `/space scope` commands. Slack (users.info, auth.test), Redis (channel scopes) and the
Hub (is a Space private?) are read here, cached, and handed to the pure decision in `bot.access.rules`.

Channel scopes are read with the normal Redis client (its retries), never the short-timeout one: a slow
Redis moment must not read as "unscoped". When they can't be read at all, the gate refuses what it can't
check (changes, private details) with a sentence; reads of public Spaces go on (they show nothing the Hub
doesn't show anyone); `may_alert` raises, so the alert stays queued for the next cycle."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from bot.access import words
from bot.access.rules import LEVELS, Scope, Situation, Verdict, decide, is_dm, is_user, may_alert, reveals
from bot.access.store import ScopeStore
from bot.commands.grammar import Command
from bot.core import hub
from bot.core.cache import TtlCache
from bot.core.errors import BadInput, NotAllowed, SpaceOpsError
from bot.core.permissions import CHANGES, READS, Actor, Roles, check_namespace, declare, namespace_of
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store, key
from bot.core.words import Reply

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"scope"}, self_checked={"scope.set", "unscope"})
CACHE_SECONDS = 300
PRIVATE = key("private")  # hash: Space → "1" private / "0" public, the last answer from the Hub
# Commands whose answer shows what a private Space keeps to itself (variables, secret names, its audit).
SHOWS_PRIVATE = frozenset({"var.ls", "secret.ls", "audit"})
# Operator commands that change no Space, only what a channel hears: a read-only channel may still run them.
CHANNEL_ONLY = frozenset({"watch", "unwatch", "mute", "unmute", "digest", "digest.off"})
# What the gate is asked: the level of the user's role it needs, and what the place's scope must allow.
ACTIONS = {
    "read": ("read", "read"),          # see a Space's state, spend, schedules
    "reveal": ("read", "read"),        # see a Space's private details (error text, logs, variables, secrets)
    "operate": ("operate", "operate"),  # change a Space
    "channel": ("operate", "read"),    # change only what a channel hears (watch, mute, digest)
    "decide": ("operate", "read"),     # approve / deny (the approver role is the approvals flow's own check)
}


class Access:
    def __init__(self, settings: Settings, store: Store, roles: Roles, api, client=None):
        self.settings = settings
        self.records = store
        self.roles = roles
        self.api = api
        self.client = client  # slack_sdk WebClient, or None (console): no workspace or guest checks then
        self.scopes = ScopeStore(store.redis)  # its `reads` client also keeps the last known privacy (PRIVATE)
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
            known = self.scopes.reads.hget(PRIVATE, space)
        except REDIS_ERRORS:
            known = None
        if known is None and strict and isinstance(value, SpaceOpsError):
            raise value
        return known != "0"

    def observed(self, seen: dict[str, bool]) -> None:
        """The poller's batched read saw these Spaces' visibility: kept as fresh answers (no Hub request of
        their own for a while), and in Redis for the replicas, in one write, for those that changed."""
        self._private.put_many(seen)
        kept = self._seen_private
        changed = {space: private for space, private in seen.items() if kept.get(space) is not private}
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

    def channel_scopes(self, channel: str) -> tuple[Scope, ...]:
        """The place's scopes (a user's DM or Home has none). Raises Redis's errors: unknown is not unscoped."""
        if not channel or is_user(channel):
            return ()
        return self.scopes.get(channel)

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

    def gate(self, actor: Actor, action: str, target: str | None = None, place: str | None = None,
             command: str = "", role: str | None = None, same: bool | None = None) -> Verdict:
        """The one decision: may `actor` (user, workspace) `action` (help, read, reveal, operate, channel,
        decide) `target` (a Space, `ns/*`, or None) in `place` (a channel, a DM, a user's Home; default: where
        the actor is)? Roles, readers, guests, the workspace boundary, SPACEOPS_NAMESPACES, channel scopes and
        private Spaces are decided here and nowhere else."""
        place = actor.channel if place is None else place
        same = self.same_workspace(actor) if same is None else same
        workspace = self.home()[1] or "this workspace"
        if action == "help":
            return decide(Situation("none", "none", place, same_workspace=same, workspace=workspace))
        if not same:
            return decide(Situation("read", "none", place, same_workspace=False, workspace=workspace))
        try:
            check_namespace(target, self.settings)
        except NotAllowed as err:
            return Verdict(False, err.sentence, reveal=False)
        need, scope_need = ACTIONS[action]
        single = bool(target) and not target.endswith("/*")
        try:
            scopes, unknown = self.channel_scopes(place), False
        except REDIS_ERRORS:
            scopes, unknown = (), True
        private = bool(single and not is_dm(place) and (action == "reveal" or unknown)
                       and self.is_private(target, strict=action == "reveal" and not unknown))
        if unknown and need != "read":
            return Verdict(False, words.SCOPES_UNKNOWN_CHANGE, reveal=False)
        if unknown and private:  # a public Space's details are the Hub's to show anyone: they may go on
            return Verdict(False, words.SCOPES_UNKNOWN_DETAILS, reveal=False)
        info = self.user(actor.user)
        verdict = decide(Situation(
            need=need, role=role or self.role(actor.user), channel=place, scopes=scopes,
            namespace=namespace_of(target) if target else None, private=private, shows_private=action == "reveal",
            workspace=workspace, command=command.replace(".", " "), admins=self.roles.who_holds("admin"),
            guest=bool(info.get("is_restricted") or info.get("is_ultra_restricted")),
            scope_need=scope_need if scope_need != need else None))
        if unknown:
            return replace(verdict, reveal=False)
        return verdict

    def check(self, cmd: Command, actor: Actor) -> None:
        """Raise NotAllowed with the reason, before anything runs."""
        if cmd.name == "help":
            verdict = self.gate(actor, "help")
            if not verdict.allowed:
                raise NotAllowed(verdict.reason)
            return
        action = ("channel" if cmd.name in CHANNEL_ONLY else "operate") if cmd.name in CHANGES else "read"
        role = self.role(actor.user)
        same = self.same_workspace(actor)
        spaces = [s for s in (cmd.space, cmd.target) if s]
        for space in spaces or [None]:
            shows = cmd.name in SHOWS_PRIVATE and bool(space) and not space.endswith("/*")
            verdict = self.gate(actor, "reveal" if shows else action, space, command=cmd.name, role=role, same=same)
            if shows and verdict.allowed and action != "read":
                verdict = self.gate(actor, action, space, command=cmd.name, role=role, same=same)
            if not verdict.allowed:
                raise NotAllowed(verdict.reason)
        if cmd.name == "watch" and cmd.space:
            self._check_watch(cmd, actor, role, same)

    def _check_watch(self, cmd: Command, actor: Actor, role: str, same: bool) -> None:
        """Where the alerts would go: that channel's scope too, and no private Space into an unscoped one."""
        channel = cmd.channel or actor.channel
        if channel != actor.channel:
            verdict = self.gate(actor, "read", cmd.space, place=channel, role=role, same=same)
            if not verdict.allowed:
                raise NotAllowed(verdict.reason.replace("This channel", f"<#{channel}>"))
        try:
            scopes = self.channel_scopes(channel)
        except REDIS_ERRORS:
            raise NotAllowed(words.SCOPES_UNKNOWN_CHANGE) from None
        if not cmd.is_pattern and self._watched_private(cmd.space) and not reveals(
                channel, scopes, namespace_of(cmd.space), True):
            raise NotAllowed(words.private_watch_refused(cmd.space, channel, namespace_of(cmd.space)))

    def _watched_private(self, space: str) -> bool:
        """Asked of the Hub now (a typo'd Space is "not found", not "private"); the answer is kept in Redis
        for replicas that later can't ask."""
        info = hub.call(self.api.space_info, space, expand=["private"], space=space)
        private = bool(getattr(info, "private", True))
        try:
            self.scopes.reads.hset(PRIVATE, space, "1" if private else "0")
        except REDIS_ERRORS:
            pass
        return private

    def check_click(self, actor: Actor, space: str | None) -> None:
        """Buttons that decide (approvals), wherever they are shown: the workspace boundary and the scope of
        the place the request belongs to; the approver role is the approvals flow's own check."""
        verdict = self.gate(actor, "decide", space, role="operate")
        if not verdict.allowed:
            raise NotAllowed(verdict.reason)

    # ------------------------------------------------------------------ what a place is shown

    def reveals(self, space: str, actor: Actor) -> bool:
        """Private details (error text, logs, variables, spend) of `space` may be shown where the actor is
        (rendering asks the gate: a DM or a channel scoped to the namespace; not when scopes can't be read)."""
        if not space or space.endswith("/*"):
            return True
        channel = actor.channel
        if is_dm(channel):
            return True
        try:
            scopes = self.channel_scopes(channel)
        except REDIS_ERRORS:
            return not self.is_private(space)
        return reveals(channel, scopes, namespace_of(space), self.is_private(space))

    def hidden(self, spaces, channel: str) -> set[str]:
        """Of `spaces`, those whose private details (error text, spend) may not show in `channel`: the same
        rule as `reveals`, with the place's scopes read once (a digest of thousands of Spaces)."""
        if is_dm(channel):
            return set()
        try:
            scopes = self.channel_scopes(channel)
        except REDIS_ERRORS:
            scopes = None
        out = set()
        for space in spaces:
            if space.endswith("/*"):
                continue
            if scopes is not None and not private_matters(scopes, space):
                continue
            if self.is_private(space):
                out.add(space)
        return out

    def reveals_in(self, space: str, channel: str) -> bool:
        """`reveals` for a place with no actor (a follow-through announcement, a digest)."""
        return self.reveals(space, Actor("", channel))

    def may_alert(self, space: str, channel: str) -> bool:
        """Whether an alert about `space` may be posted into `channel` (its scope; a private Space only
        where its namespace is in scope or in a DM). Raises Redis's errors when the channel's scopes can't
        be read: the enqueue fails and the poller queues the alert again next cycle (never dropped)."""
        scopes = self.channel_scopes(channel)
        private = not is_dm(channel) and self.is_private(space)
        return may_alert(channel, scopes, namespace_of(space), private)

    # ------------------------------------------------------------------ /space scope

    def show(self, cmd: Command, actor: Actor) -> Reply:
        channel = cmd.channel or actor.channel
        try:
            scopes = self.channel_scopes(channel)
        except REDIS_ERRORS:
            raise NotAllowed(words.SCOPES_UNKNOWN_SHOW) from None
        return words.scopes_reply(channel, scopes, self.settings.namespaces)

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


def private_matters(scopes: tuple[Scope, ...], space: str) -> bool:
    """Whether a Space's privacy decides what this place sees (not when its namespace is in scope)."""
    ns = namespace_of(space).lower()
    return not any(s.namespace.lower() == ns for s in scopes)


__all__ = ["Access", "LEVELS", "Verdict", "READS"]
