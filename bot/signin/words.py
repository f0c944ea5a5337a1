"""What a person reads about signing in: the code, the DMs, `/space whoami`, `/space logout`."""

from __future__ import annotations

from bot.access.hubroles import ACTIONS, RIGHTS
from bot.core.markup import code, escape
from bot.core.words import Reply, button, context, duration_words, error_reply, notice_reply, section, when_words

OPEN_ACTION = "signin:open"    # the link button to the Hub's verification page (Slack opens it)
CHECK_ACTION = "signin:check"  # "I've approved it": poll now rather than at the next interval

# What a Hub role lets its holder do here (SPACEOPS_ROLES_FROM=hub|both), said from the gate's own table
# (bot/access/hubroles.RIGHTS), so these words cannot drift from what is decided.
_MEANS_BY_RIGHTS = {
    frozenset(ACTIONS): "you may operate its Spaces, approve paid changes and run its admin commands",
    frozenset({"read", "operate"}): "you may restart, pause, change sleep time and variables; paid changes still "
                                    "need an approver",
    frozenset({"read"}): "you may read its Spaces",
    frozenset(): "nothing here",
}
ROLE_MEANS = {role: _MEANS_BY_RIGHTS[rights] for role, rights in RIGHTS.items()}
ROLE_MEANS["contributor"] += "; changing them needs `write`"
RESTRICTED_MEANS = "nothing until you complete its SSO / security checks on Hugging Face"

NOT_SET_UP = ("Sign-in with Hugging Face is not set up here: an admin sets SPACEOPS_HUB_OAUTH_CLIENT_ID and "
              "SPACEOPS_SECRET_KEY (see the docs, “Sign in with Hugging Face”).")
START_AGAIN = "Run `/space login` to start again."


def role_line(org: str, role: str, restricted: bool = False, own: bool = False) -> str:
    what = RESTRICTED_MEANS if restricted else ROLE_MEANS.get(role, ROLE_MEANS["read"])
    label = "your own namespace: admin" if own else ("SSO pending" if restricted else role)
    return f"{escape(org)}: {escape(label)} → {what}."


def roles_lines(hub_user: str, orgs: dict[str, str], restricted: tuple[str, ...]) -> list[str]:
    lines = [role_line(hub_user, "admin", own=True)]
    lines += [role_line(org, role, org in restricted) for org, role in sorted(orgs.items())]
    return lines


def code_reply(user_code: str, uri: str, expires_at: float, now: float, flow_id: str, again: bool) -> Reply:
    """The private answer to `/space login`: the code, the button to the Hub's page, how long it is valid."""
    left = duration_words(max(0, expires_at - now))
    first = "Your sign-in code is still valid" if again else "Sign in with Hugging Face"
    text = (f"{first}: open the Hugging Face page and confirm the code {code(user_code)} (valid {left} more, "
            f"until {when_words(expires_at)}). I'll DM you when it's done.")
    link = {"type": "button", "text": {"type": "plain_text", "text": "Open Hugging Face"}, "url": uri[:3000],
            "action_id": OPEN_ACTION, "style": "primary"}
    blocks = [section(text), {"type": "actions", "elements": [link, button("I've approved it", CHECK_ACTION, flow_id)]},
              context("Space Ops reads your name and your organizations' roles; it never acts on the Hub as you.")]
    return Reply(text, blocks)


def linked_text(hub_user: str, orgs: dict[str, str], restricted: tuple[str, ...], relinked: bool = False) -> str:
    head = f"Signed in as {code(hub_user)} (Hugging Face)."
    if relinked:
        head += " This replaces your earlier link."
    lines = [role_line(org, role, org in restricted) for org, role in sorted(orgs.items())]
    if not lines:
        lines = ["You belong to no organization the Hub told us about (or you granted none at consent)."]
    return head + " " + "\n".join(lines)


def ended_text(kind: str, detail: str = "") -> str:
    if kind == "denied":
        return f"Sign-in with Hugging Face was declined on the Hub, so nothing was linked. {START_AGAIN}"
    if kind == "expired":
        return f"Your sign-in code expired before it was approved; nothing was linked. {START_AGAIN}"
    if kind == "lost":
        return (f"Your sign-in in progress was lost (the bot's database was reset); nothing was linked. "
                f"{START_AGAIN}")
    if kind == "unreadable":
        return (f"Hugging Face approved the sign-in but did not say who you are or your organizations "
                f"({escape(detail)}); nothing was linked. {START_AGAIN}")
    return f"Hugging Face ended the sign-in ({code(detail or 'error')}); nothing was linked. {START_AGAIN}"


def hub_unreachable(reason: str) -> Reply:
    return error_reply(f"Hugging Face did not answer ({escape(reason)}), so no sign-in was started. Try "
                       f"`/space login` again in a minute.")


def not_yours() -> Reply:
    return error_reply(f"That sign-in is not yours, or it has ended; nothing was done. {START_AGAIN}")


def still_waiting(user_code: str) -> Reply:
    return notice_reply(f"Not approved on Hugging Face yet: confirm the code {code(user_code)} there. I'll DM you "
                        f"when it's done.")


def done_elsewhere() -> Reply:
    return notice_reply("Done: see my DM.")


def whoami_reply(slack_user: str, link, now: float, next_refresh: float | None, rights_from: str) -> Reply:
    if link is None:
        text = f"<@{slack_user}>: not signed in with Hugging Face. `/space login` links your Hub account."
        return Reply(text, [section(text)])
    lines = [f"<@{slack_user}> is {code(link.hub_user)} on Hugging Face, signed in {when_words(link.linked_at)}."]
    lines += ["• " + line for line in roles_lines(link.hub_user, link.orgs, link.restricted)]
    read = f"Roles read {when_words(link.roles_at)}"
    if link.refresh_failed_at:
        read += f"; the Hub has not answered a refresh since {when_words(link.refresh_failed_at)} (the last roles " \
                f"count until 24 h old, then as `read`)"
    if next_refresh:
        read += f"; next refresh {when_words(next_refresh)}"
    if link.expires_at:
        read += f"; the link ends {when_words(link.expires_at)} (sign in again then)"
    lines.append(read + ".")
    if rights_from == "slack":
        lines.append("Rights here still come from the Slack lists (SPACEOPS_ROLES_FROM=slack): these roles are shown, "
                     "not used.")
    elif rights_from == "both":
        lines.append("Rights here are the lower of these roles and the Slack lists (SPACEOPS_ROLES_FROM=both).")
    text = "\n".join(lines)
    return Reply(text, [section(text)])


def logout_reply(hub_user: str | None) -> Reply:
    if not hub_user:
        return notice_reply("You were not signed in with Hugging Face; nothing to forget.")
    return notice_reply(f"Signed out: the link to {code(hub_user)} and its tokens are forgotten. Revoke the app on "
                        f"huggingface.co/settings/connected-applications too if you like.")


def expired_link_text(hub_user: str) -> str:
    return (f"Your Hugging Face link ({code(hub_user)}) has ended: the Hub gave no way to refresh it. "
            f"{START_AGAIN}")


def revoked_text(hub_user: str, detail: str) -> str:
    return (f"Hugging Face no longer accepts your sign-in as {code(hub_user)} ({code(detail)}): your Hub-based "
            f"rights are removed. {START_AGAIN}")


def roles_changed_text(hub_user: str, before: dict[str, str], after: dict[str, str]) -> str:
    changes = []
    for org in sorted(set(before) | set(after)):
        old, new = before.get(org), after.get(org)
        if old != new:
            changes.append(f"{code(org)}: {escape(old or 'not a member')} → {escape(new or 'not a member')}")
    return f"Your Hugging Face roles ({code(hub_user)}) changed: " + "; ".join(changes) + "."
