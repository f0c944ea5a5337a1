"""The access decision as a plain function: effective rights = the user's role ∩ the channel's scope,
with private Spaces shown only where their namespace is in scope (or in a DM with the bot), and nothing
at all for people outside the workspace. No I/O here: every input is a value."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = {"none": 0, "read": 1, "operate": 2}


@dataclass(frozen=True)
class Scope:
    """A channel may name Spaces of `namespace` (`acme/*`), at most at `level` (read | operate)."""

    namespace: str
    level: str = "operate"

    @property
    def pattern(self) -> str:
        return f"{self.namespace}/*"


@dataclass(frozen=True)
class Situation:
    """Everything the decision looks at."""

    need: str                     # "none" (help), "read" or "operate"
    role: str                     # the user's own level: "none", "read" or "operate"
    channel: str                  # where it is asked (or where a watch would post)
    scopes: tuple[Scope, ...] = ()  # the channel's scopes; () = unscoped
    namespace: str | None = None  # the Space's namespace, when the command names one
    private: bool = False         # the Space is private on the Hub
    shows_private: bool = False   # the command shows variables, secrets' names, error text or logs
    same_workspace: bool = True   # the user belongs to the installing workspace or SPACEOPS_ALLOWED_TEAMS
    workspace: str = "this workspace"
    command: str = ""             # for the sentences: `restart`
    admins: str = "an admin"      # who to ask, for the sentences
    guest: bool = False
    scope_need: str | None = None  # what the channel's scope must allow, when less than `need` (watches read)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""       # why not, as a sentence (mrkdwn-safe: only our own words and ids)
    reveal: bool = True    # private details (error text, logs, variables) may be shown here


def is_user(place: str) -> bool:
    """A user id as a place: that user's App Home, or their DM with the bot (posting to a user id lands there)."""
    return place.startswith(("U", "W"))


def is_dm(channel: str) -> bool:
    """A DM with the bot, or a user's own Home: no one else reads there."""
    return channel.startswith("D") or is_user(channel)


def covering(scopes: tuple[Scope, ...], namespace: str | None) -> Scope | None:
    if namespace is None:
        return None
    return next((s for s in scopes if s.namespace.lower() == namespace.lower()), None)


def reveals(channel: str, scopes: tuple[Scope, ...], namespace: str | None, private: bool) -> bool:
    """Private details only in a DM with the bot or a channel scoped to the Space's namespace."""
    return not private or is_dm(channel) or covering(scopes, namespace) is not None


def decide(s: Situation) -> Verdict:
    if not s.same_workspace:
        return Verdict(False, f"Space Ops only takes commands from members of {s.workspace}.", reveal=False)
    if LEVELS[s.role] < LEVELS[s.need]:
        if s.role == "none":
            return Verdict(False, f"Reading Spaces needs the reader role (SPACEOPS_READERS), which you don't "
                                  f"have. Ask an admin: {s.admins}.", reveal=False)
        guest = " Guests are read-only unless an admin lists them." if s.guest else ""
        what = f"`{s.command}`" if s.command else "This"
        return Verdict(False, f"{what} changes a Space and needs the operator role, which you don't have.{guest} "
                              f"Ask an admin: {s.admins}.", reveal=False)
    reveal = reveals(s.channel, s.scopes, s.namespace, s.private)
    if s.scopes and s.namespace is not None and s.need != "none":
        scope = covering(s.scopes, s.namespace)
        allowed = ", ".join(f"`{x.pattern}` ({x.level})" for x in s.scopes)
        if scope is None:
            return Verdict(False, f"This channel may only name Spaces of {allowed}; `{s.namespace}/*` is not in "
                                  f"its scope. Ask in a channel scoped to it, or in a DM with Space Ops.", reveal)
        if LEVELS[scope.level] < LEVELS[s.scope_need or s.need]:
            return Verdict(False, f"This channel is read-only for `{scope.pattern}`: changes happen in a channel "
                                  f"scoped to operate on it.", reveal)
    if s.shows_private and not reveal:
        return Verdict(False, f"That Space is private: its variables, secrets, error text and logs are shown only "
                              f"in a channel scoped to `{s.namespace}/*` or in a DM with Space Ops.", reveal)
    return Verdict(True, "", reveal)


def may_alert(channel: str, scopes: tuple[Scope, ...], namespace: str, private: bool) -> bool:
    """An alert goes to a channel whose scope (if any) covers the Space, and a private Space's alerts only
    to a DM or a channel scoped to its namespace (never an unscoped one)."""
    if scopes and covering(scopes, namespace) is None:
        return False
    return reveals(channel, scopes, namespace, private)
