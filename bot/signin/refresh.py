"""The roles refresh: on the poll leader's tick, each link whose roles are SPACEOPS_HUB_ROLES_TTL old is read
again from the Hub with its refresh token (the new refresh token, when the Hub rotates it, replaces the old).

- The Hub refuses the refresh (`invalid_grant`: revoked or expired): the link and its token are forgotten
  at once, so the rights go with them; the user hears why (DM).
- The roles come back changed (a role lowered, a membership removed): the link is rewritten at once.
- The refresh fails for a transient reason (5xx, timeout, no answer): the last roles stay, with
  `refresh_failed_at` set (bot.signin.links counts them as `read` once they are 24 h old); tried again
  after RETRY_SECONDS.
- No refresh token: nothing to refresh; the link ends at its `expires_at` (SPACEOPS_HUB_LINK_DAYS) and the
  user is asked to sign in again.

Each link is its own failure path: one that fails is logged and the others go on.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.core.deliver import Deliveries
from bot.core.jobs import Deadline, LeaseLost
from bot.core.settings import Settings
from bot.core.store import Store, key
from bot.core.words import section
from bot.signin import words
from bot.signin.links import HubLink, Links
from bot.signin.oauth import HubOAuth, OAuthUnavailable
from bot.signin.vault import Vault

log = logging.getLogger(__name__)
RETRY_SECONDS = 900  # after a transient failure, at most this long before the next try (or the TTL if shorter)


def retry_key(slack_user: str) -> str:
    return key("signin", "retry", slack_user)


class Refresh:
    def __init__(self, settings: Settings, store: Store, deliveries: Deliveries, links: Links, vault: Vault,
                 oauth: HubOAuth):
        self.settings, self.store, self.deliveries = settings, store, deliveries
        self.links, self.vault, self.oauth = links, vault, oauth
        self.redis = store.redis

    def run(self, now: float, leading=lambda: True, deadline: Deadline | None = None) -> dict[str, int]:
        """One pass over every link; returns how many were refreshed, changed, removed, expired, failed."""
        counts = {"refreshed": 0, "changed": 0, "removed": 0, "expired": 0, "failed": 0}
        for slack_user in self.links.all_users():
            if deadline is not None and deadline.passed():
                break  # the rest wait for the next tick
            try:
                outcome = self.one(slack_user, now, leading)
            except LeaseLost:
                raise
            except Exception as err:  # noqa: BLE001 — one link's failure must not stop the others
                log.warning("roles refresh of %s failed (%s); tried again next tick", slack_user, type(err).__name__)
                outcome = "failed"
            if outcome in counts:
                counts[outcome] += 1
        return counts

    def _due(self, link: HubLink, now: float) -> bool:
        return now - link.roles_at >= self.settings.hub_roles_ttl and not self.redis.exists(retry_key(link.slack_user))

    def one(self, slack_user: str, now: float, leading=lambda: True) -> str:
        link = self.links.get(slack_user)
        if link is None:
            return "skipped"
        if link.expires_at and now >= link.expires_at:
            self._check(leading)
            self._forget(link, "expired", "ended: no refresh token, SPACEOPS_HUB_LINK_DAYS passed",
                         words.expired_link_text(link.hub_user))
            return "expired"
        if not link.refreshable or not self._due(link, now):
            return "skipped"
        token = self.vault.get_refresh(slack_user)
        if token is None:
            self._check(leading)
            self._forget(link, "removed", "revoked: refresh token unreadable",
                         words.revoked_text(link.hub_user, "token unreadable"))
            return "removed"
        self._check(leading)
        grant = self.oauth.refresh(token)
        if grant.kind == "invalid":
            self._forget(link, "removed", f"revoked: {grant.detail}", words.revoked_text(link.hub_user, grant.detail))
            return "removed"
        if grant.kind != "granted":
            return self._failed(link, now, grant.detail)
        if grant.refresh_token:
            self.vault.put_refresh(slack_user, grant.refresh_token)  # rotated: the old one is void now
        try:
            identity = self.oauth.identity(grant.access_token)
        except OAuthUnavailable as err:
            return self._failed(link, now, err.reason)
        current = self.links.get(slack_user)
        if current is None or current.linked_at != link.linked_at:
            return "skipped"  # signed out or signed in again meanwhile: that link is not ours to write
        fresh = replace(link, hub_user=identity.hub_user, orgs=dict(identity.orgs), restricted=identity.restricted,
                        roles_at=now, refresh_failed_at=0.0)
        self.links.put(fresh)
        self.redis.delete(retry_key(slack_user))
        changed = (fresh.orgs, fresh.restricted) != (link.orgs, link.restricted)
        params = {"hub_user": identity.hub_user, "orgs": dict(sorted(identity.orgs.items())),
                  "restricted": list(identity.restricted)}
        if changed:
            params["before"] = dict(sorted(link.orgs.items()))
        self.store.audit(slack_user, "signin.refresh", "", params, result="changed" if changed else "ok",
                         per_space=False)
        if changed:
            text = words.roles_changed_text(identity.hub_user, link.orgs, identity.orgs)
            self.deliveries.send(f"signin:roles:{slack_user}:{int(now)}", slack_user, text, [section(text)])
            return "changed"
        return "refreshed"

    def _failed(self, link: HubLink, now: float, detail: str) -> str:
        log.warning("roles refresh of %s inconclusive (%s): the last roles stay", link.slack_user, detail)
        current = self.links.get(link.slack_user)
        if current is not None and current.linked_at == link.linked_at and not current.refresh_failed_at:
            self.links.put(replace(current, refresh_failed_at=now))
        self.redis.set(retry_key(link.slack_user), "1", ex=min(RETRY_SECONDS, self.settings.hub_roles_ttl))
        self.store.audit(link.slack_user, "signin.refresh", "", {"hub_user": link.hub_user},
                         result=f"failed: {detail}", per_space=False)
        return "failed"

    def _forget(self, link: HubLink, kind: str, result: str, text: str) -> None:
        self.links.forget(link.slack_user)
        self.vault.forget(link.slack_user)
        self.redis.delete(retry_key(link.slack_user))
        self.store.audit(link.slack_user, "signin.refresh", "", {"hub_user": link.hub_user}, result=result,
                         per_space=False)
        self.deliveries.send(f"signin:{kind}:{link.slack_user}:{int(link.linked_at)}", link.slack_user, text,
                             [section(text)])

    @staticmethod
    def _check(leading) -> None:
        if not leading():
            raise LeaseLost()
