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
