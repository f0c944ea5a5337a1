"""The words of scopes and access refusals."""

from __future__ import annotations

from bot.access.rules import Scope
from bot.core.markup import code, escape
from bot.core.words import Reply, section


def scopes_reply(channel: str, scopes: tuple[Scope, ...], fallback: frozenset[str]) -> Reply:
    where = f"<#{escape(channel)}>"
    if scopes:
        rows = "\n".join(f"• {code(s.pattern)}: {'read and operate' if s.level == 'operate' else 'read only'}"
                         for s in scopes)
        text = (f"{where} may name only these Spaces:\n{rows}\nPrivate Spaces of these namespaces show their "
                f"variables, error text and logs here.")
    else:
        allowed = ", ".join(code(f"{ns}/*") for ns in sorted(fallback)) if fallback else "any namespace"
        text = (f"{where} has no scope: it may name {allowed} (SPACEOPS_NAMESPACES), and private Spaces show no "
                f"variables, error text or logs here. Admins: `/space scope #channel acme/* [read|operate]`.")
    return Reply(text, [section(text)])


def scope_set_reply(user: str, channel: str, scope: Scope) -> Reply:
    level = "read only" if scope.level == "read" else "read and operate"
    text = f"<@{escape(user)}> scoped <#{escape(channel)}> to {code(scope.pattern)} ({level})."
    return Reply(text, [section(text)], public=True)


def unscope_reply(user: str, channel: str, pattern: str, existed: bool, left: tuple[Scope, ...]) -> Reply:
    if not existed:
        text = f"<#{escape(channel)}> had no scope {code(pattern)}; nothing changed."
        return Reply(text, [section(text)])
    rest = (" It keeps " + ", ".join(code(s.pattern) for s in left) + ".") if left else \
        " It has no scope left: SPACEOPS_NAMESPACES applies there again."
    text = f"<@{escape(user)}> removed {code(pattern)} from <#{escape(channel)}>'s scope.{rest}"
    return Reply(text, [section(text)], public=True)


def private_watch_refused(space: str, channel: str, namespace: str) -> str:
    return (f"{code(space)} is private: its alerts (with error text and logs) go only to a channel scoped to "
            f"{code(namespace + '/*')} or a DM with Space Ops, and <#{escape(channel)}> is not. An admin can "
            f"scope it: `/space scope #channel {escape(namespace)}/* read`. Nothing was watched.")


def private_details_refused(space: str, namespace: str) -> str:
    return (f"{code(space)} is private: its variables, secrets, error text and logs are shown only in a channel "
            f"scoped to {code(namespace + '/*')} or in a DM with Space Ops. Nothing was shown here.")


SCOPE_ADMINS_ONLY = "Setting a channel's scope needs the admin role, which you don't have. Admins: {admins}."

SCOPES_UNKNOWN_CHANGE = ("Space Ops cannot reach its database, so it can't check this channel's scopes right now; "
                         "nothing was changed. Try again in a minute.")
SCOPES_UNKNOWN_DETAILS = ("Space Ops cannot reach its database, so it can't check this channel's scopes right now: it "
                          "shows no private Space and no private details here. Try again in a minute, or ask in a DM.")
SCOPES_UNKNOWN_SHOW = ("Space Ops cannot reach its database, so it can't read this channel's scopes right now. Try "
                       "again in a minute.")


# ---------------------------------------------------------------- rights from the Hub (SPACEOPS_ROLES_FROM)

# What a command does, as "restarting acme/chat needs `write`" says it.
DOING = {"restart": "restarting", "resume": "resuming", "pause": "pausing", "hw": "changing the hardware of",
         "sleep": "changing the sleep time of", "var set": "setting a variable on",
         "var rm": "removing a variable from",
         "secret set": "setting a secret on", "secret rm": "removing a secret from", "duplicate": "duplicating into",
         "watch": "watching", "unwatch": "unwatching", "mute": "muting", "unmute": "unmuting",
         "schedule": "scheduling", "unschedule": "unscheduling", "schedule pause": "pausing a schedule of",
         "schedule resume": "resuming a schedule of", "dev": "switching dev mode of", "volume add": "mounting on",
         "volume rm": "unmounting from", "var ls": "reading the variables of", "secret ls": "listing the secrets of",
         "logs": "reading the logs of", "audit": "reading the audit of"}
LOGIN = "`/space login`"


def doing_words(command: str, target: str | None, need: str) -> str:
    """`restarting acme/chat`, `reading acme/*`, `this`: the action a Hub refusal names."""
    what = escape(target) if target else ""
    verb = DOING.get(command.replace(".", " "))
    if verb is None:
        verb = f"`{escape(command.replace('.', ' '))}` on" if command else ("changing" if need != "read" else "reading")
    return f"{verb} {what}".strip() if what else ("this" if not command else verb.removesuffix(" on"))


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def hub_refused(standing, namespace: str, needed: str, doing: str, unlinked: str, private: bool = False,
                pattern: bool = False) -> str:
    """Why the Hub side says no, with what the person can do about it. `needed`: the least Hub role."""
    ns = escape(namespace)
    if not standing.linked:
        if standing.expired:
            return (f"Your Hugging Face sign-in (as {code(standing.hub_user)}) has ended: run {LOGIN} again, then "
                    f"try again.")
        if unlinked == "none":
            return (f"Space Ops takes what you may do from your Hugging Face account, and yours isn't linked: run "
                    f"{LOGIN} once, then try again.")
        if pattern:
            return (f"A view of all of `{ns}/*` may name private Spaces: without a linked Hugging Face account you "
                    f"may read public Spaces only, one by name. Run {LOGIN} to link yours.")
        if private and needed == "read":
            return (f"{_first_up(doing)} needs a linked Hugging Face account: that Space is private, and without "
                    f"one you may read public Spaces only. Run {LOGIN} to link yours.")
        return (f"{_first_up(doing)} needs `{needed}` in {code(namespace)} on Hugging Face, and your Hugging Face "
                f"account isn't linked: run {LOGIN}, then try again.")
    if standing.sso_pending:
        return (f"You haven't completed SSO for {code(namespace)} on Hugging Face. Complete the organization's "
                f"security requirements on the Hub (signed in as {code(standing.hub_user)}), then run {LOGIN} "
                f"again; until then Space Ops does nothing in {code(namespace)} for you.")
    if not standing.member:
        return (f"You are not a member of {code(namespace)} on Hugging Face (signed in as "
                f"{code(standing.hub_user)}): {doing} needs `{needed}` there. Ask {_an(namespace)} {ns} admin.")
    stale = (" (Space Ops could not refresh your roles from the Hub for over a day, so they count as `read`; "
             f"{LOGIN} reads them again.)") if standing.stale else ""
    return (f"Your Hugging Face role in {code(namespace)} is {code(standing.role)}: {doing} needs `{needed}`. "
            f"Ask {_an(namespace)} {ns} admin.{stale}")


LINKS_UNKNOWN = ("Space Ops cannot reach its database, so it can't read your Hugging Face role right now; nothing "
                 "was changed. Try again in a minute.")
