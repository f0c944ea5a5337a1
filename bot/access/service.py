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
from bot.access.hubroles import LEVELS as HUB_LEVELS, NEEDS, Standing, combined, effective, hub_allows, hub_level
from bot.access.identity import Identities, standing_of
from bot.access.rules import LEVELS, Scope, Situation, Verdict, decide, is_dm, is_user, may_alert, reveals
from bot.access.store import ScopeStore
from bot.commands.grammar import Command
from bot.core import hub
from bot.core.cache import TtlCache
from bot.core.errors import BadInput, NotAllowed, SpaceOpsError
from bot.core.markup import escape
from bot.core.permissions import ANYONE, CHANGES, READS, Actor, Roles, check_namespace, declare, namespace_of
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store, key
from bot.core.words import Reply

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"scope"}, self_checked={"scope.set", "unscope"})
CACHE_SECONDS = 300
PRIVATE = key("private")  # hash: Space → "1" private / "0" public, the last answer from the Hub
# Commands whose answer shows what a private Space keeps to itself (variables, secret names, its audit, its
# logs, what it mounts).
SHOWS_PRIVATE = frozenset({"var.ls", "secret.ls", "audit", "logs", "volumes"})
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
    def __init__(self, settings: Settings, store: Store, roles: Roles, api, client=None,
                 identities: Identities | None = None):
        self.settings = settings
        self.records = store
        self.roles = roles
        self.api = api
        self.client = client  # slack_sdk WebClient, or None (console): no workspace or guest checks then
        self.scopes = ScopeStore(store.redis)  # its `reads` client also keeps the last known privacy (PRIVATE)
        # The Hub side of rights (SPACEOPS_ROLES_FROM=hub|both), from the links bot/app.py hands in.
        self.identities = identities or Identities(settings)
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
        level = role or self.role(actor.user)
        if self.identities.active and action != "decide":  # an approver's click: the approvals flow decides
            level, refusal = self._with_hub(actor.user, target, need, command, level)
            if refusal:
                return Verdict(False, refusal, reveal=False)
        verdict = decide(Situation(
            need=need, role=level, channel=place, scopes=scopes,
            namespace=namespace_of(target) if target else None, private=private, shows_private=action == "reveal",
            workspace=workspace, command=command.replace(".", " "), admins=self.roles.who_holds("admin"),
            guest=bool(info.get("is_restricted") or info.get("is_ultra_restricted")),
            scope_need=scope_need if scope_need != need else None))
        if unknown:
            return replace(verdict, reveal=False)
        return verdict

    # ------------------------------------------------------------------ the Hub side (SPACEOPS_ROLES_FROM)

    def standing(self, user: str, namespace: str) -> Standing:
        """The member's Hub standing in `namespace` now. Raises Redis's errors (unknown is not unlinked)."""
        return self.identities.standing(user, namespace, self.records.clock())

    def _with_hub(self, user: str, target: str | None, need: str, command: str, slack: str) -> tuple[str, str]:
        """(the level that counts, a refusal sentence when the Hub side is why it falls short of `need`).

        A Space: the role in its namespace (an unlinked member reads public Spaces only, under
        SPACEOPS_UNLINKED=read). `ns/*`: the role in that namespace (never for an unlinked member: the view
        may name private Spaces). No Space: a linked account may go on (each Space it then names is checked
        on its own); an unlinked one reads under SPACEOPS_UNLINKED=read, nothing more."""
        mode, unlinked = self.settings.roles_from, self.settings.unlinked
        pattern = bool(target) and target.endswith("/*")
        namespace = namespace_of(target) if target else ""
        try:
            link = self.identities.link(user)
        except REDIS_ERRORS:
            if need != "read":
                return "none", words.LINKS_UNKNOWN
            link = None  # a read goes on as an unlinked member's would
        now = self.records.clock()
        standing = standing_of(link, namespace, now)
        if not target:
            hub = "operate" if standing.linked else hub_level(standing, False, unlinked)
        else:
            private = not standing.linked and (pattern or self.is_private(target))
            hub = hub_level(standing, private, unlinked)
        level = effective(mode, slack, hub)
        if HUB_LEVELS[level] >= HUB_LEVELS[need]:
            return level, ""
        if mode == "both" and HUB_LEVELS[slack] < HUB_LEVELS[need]:
            return level, ""  # the Slack lists are the ceiling that holds: their own sentence says so
        action = "operate" if need == "operate" else "read"
        doing = words.doing_words(command, target, need)
        return level, words.hub_refused(standing, namespace or "any namespace", NEEDS[action], doing, unlinked,
                                        private=bool(target) and not pattern and not standing.linked,
                                        pattern=pattern)

    def require_admin(self, user: str, namespaces, doing: str, refusal: str) -> None:
        """Admin commands (scopes, budgets, webhooks, cancelling others' requests) on `namespaces`: the
        SPACEOPS_ADMINS list (`refusal` says so), an `admin` Hub role in each namespace, or both, by
        SPACEOPS_ROLES_FROM. Nothing bot-wide (no namespace) is a Hub role's to grant: the list decides it."""
        namespaces = sorted({n for n in namespaces if n})
        mode = self.settings.roles_from
        if mode != "hub" or not namespaces:
            if not self.roles.is_admin(user):
                raise NotAllowed(refusal)
        if mode != "slack":
            for namespace in namespaces:
                self._require_hub(user, namespace, "admin", doing)

    def check_approver(self, user: str, requester: str, spaces) -> None:
        """An approver other than the requester: the SPACEOPS_APPROVERS list, `admin` in the namespace of
        each Space the change touches, or both, by SPACEOPS_ROLES_FROM."""
        mode = self.settings.roles_from
        if mode != "hub":
            self.roles.check_approver(user, requester)
        elif user == requester:
            raise NotAllowed("You can't approve your own request: another approver has to.")
        if mode != "slack":
            for namespace in sorted({namespace_of(s) for s in spaces if s}):
                self._require_hub(user, namespace, "approve",
                                  f"approving paid changes in {escape(namespace)}")

    def _require_hub(self, user: str, namespace: str, action: str, doing: str) -> None:
        try:
            standing = self.standing(user, namespace)
        except REDIS_ERRORS:
            raise NotAllowed(words.LINKS_UNKNOWN) from None
        if not hub_allows(standing, action, False, self.settings.unlinked):
            raise NotAllowed(words.hub_refused(standing, namespace, NEEDS[action], doing, "read"))

    def approves(self, user: str) -> bool:
        """Whether `user` may approve anything at all (the App Home shows the approvals it may decide)."""
        if self.settings.roles_from == "slack":
            return self.roles.is_approver(user)
        try:
            link = self.identities.link(user)
        except REDIS_ERRORS:
            return False
        hub = link is not None  # admin of their own namespace at least: approvals there are theirs to decide
        return combined(self.settings.roles_from, self.roles.is_approver(user), hub)

    def identity(self, user: str, space: str) -> dict[str, str]:
        """{"user", "role", "namespace"} of the member on the Hub, for approval messages ({} without one)."""
        return self.identities.describe(user, space, self.records.clock())

    def check(self, cmd: Command, actor: Actor) -> None:
        """Raise NotAllowed with the reason, before anything runs."""
        if cmd.name == "help" or cmd.name in ANYONE:  # the workspace boundary only
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
        return self._may_alert(space, channel, self.channel_scopes(channel))

    def may_alert_in(self, channels: set[str]) -> Callable[[str, str], bool]:
        """`may_alert` for a batch of alerts into these channels: their scopes read in one HMGET (Redis's
        errors raise, as `may_alert`'s do)."""
        scopes = self.scopes.get_many(sorted(c for c in channels if c and not is_user(c)))
        return lambda space, channel: self._may_alert(
            space, channel, scopes[channel] if channel in scopes else self.channel_scopes(channel))

    def _may_alert(self, space: str, channel: str, scopes: tuple[Scope, ...]) -> bool:
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
        self.require_admin(actor.user, [namespace_of(cmd.space)], f"setting a channel's scope on {escape(cmd.space)}",
                           words.SCOPE_ADMINS_ONLY.format(admins=self.roles.who_holds("admin")))

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        return {"scope": self.show, "scope.set": self.set, "unscope": self.unset}


def private_matters(scopes: tuple[Scope, ...], space: str) -> bool:
    """Whether a Space's privacy decides what this place sees (not when its namespace is in scope)."""
    ns = namespace_of(space).lower()
    return not any(s.namespace.lower() == ns for s in scopes)


__all__ = ["Access", "LEVELS", "Verdict", "READS"]
