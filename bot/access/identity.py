"""Who a Slack member is on the Hub, as far as rights go: their `Standing` in a namespace (for the gate)
and the words "alice-ml, write in acme" (for the audit and approval messages). Reads the link that
`/space login` keeps (bot/signin/links.py `Links`, handed in at wiring: bot/access imports nothing of
bot/signin, so the sign-in flow may use these rights in its own words without a circle): one Redis GET; no
tokens are ever read here."""

from __future__ import annotations

import logging

from bot.access.hubroles import Standing
from bot.core.permissions import namespace_of
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS

log = logging.getLogger(__name__)


def standing_of(link, namespace: str, now: float) -> Standing:
    """The Hub's word on `namespace` for this link (a `bot.signin.links.HubLink`; None: not linked)."""
    if link is None:
        return Standing(linked=False)
    if link.expires_at and now >= link.expires_at:
        return Standing(linked=False, expired=True, hub_user=link.hub_user)
    ns = namespace.lower()
    role = link.role_in(namespace, now)
    member = ns == link.hub_user.lower() or any(org.lower() == ns for org in link.orgs)
    sso = any(org.lower() == ns for org in link.restricted)
    # Roles as the Hub last said them: lower now only because refreshes failed for over a day.
    stale = role != link.role_in(namespace, link.roles_at)
    return Standing(linked=True, role=role, sso_pending=sso, stale=stale, hub_user=link.hub_user, member=member)


class Identities:
    """The Hub side of a Slack member, read from their link; nothing at all under SPACEOPS_ROLES_FROM=slack."""

    def __init__(self, settings: Settings, links=None):
        self.settings = settings
        self.links = links  # bot.signin.links.Links; None: nobody is linked

    @property
    def active(self) -> bool:
        return self.settings.roles_from != "slack"

    def link(self, user: str):
        """The member's HubLink or None. Raises Redis's errors: an unreadable link is not "not linked"."""
        return self.links.get(user) if user and self.links is not None else None

    def standing(self, user: str, namespace: str, now: float) -> Standing:
        return standing_of(self.link(user), namespace, now)

    def describe(self, user: str, space: str, now: float) -> dict[str, str]:
        """{"user": "alice-ml", "role": "write", "namespace": "acme"} for the audit ({} unlinked, slack mode,
        or when the link can't be read: an audit entry is never lost for want of it)."""
        if not self.active or not user or not user.startswith(("U", "W")):
            return {}
        try:
            link = self.link(user)
        except REDIS_ERRORS as err:
            log.warning("the Hub identity of an audit entry could not be read (%s)", type(err).__name__)
            return {}
        if link is None:
            return {}
        if not space:
            return {"user": link.hub_user}
        namespace = namespace_of(space)
        return {"user": link.hub_user, "role": standing_of(link, namespace, now).role, "namespace": namespace}


__all__ = ["Identities", "standing_of"]
