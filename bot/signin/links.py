"""Who a Slack user is on the Hub: the link `/space login` makes, as a plain record (no tokens here; the
OAuth tokens, when kept at all, live encrypted in `bot.signin.vault`). The access gate reads it
(`Links.get`), the sign-in flow and the roles refresh write it (`Links.put`, `Links.forget`).

Stored as one JSON string per Slack user with a version, decoded tolerantly: an older or newer replica's
record, or a broken one, reads as "not linked" rather than stopping anyone."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace

from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)
VERSION = 1
ROLES = ("admin", "write", "contributor", "read", "no_access")  # the Hub's org roles, highest first (§13)
STALE_SECONDS = 24 * 3600  # a transient refresh failure keeps the last roles this long, then they count as read


def link_key(slack_user: str) -> str:
    return key("hublink", slack_user)


@dataclass(frozen=True)
class HubLink:
    """A Slack user's Hub account and their role in each org, as the Hub last said (Redis-clock seconds)."""

    slack_user: str
    hub_user: str                                   # the Hub username (`preferred_username` / `name`)
    orgs: dict[str, str] = field(default_factory=dict)  # org name → roleInOrg (admin/write/contributor/read)
    restricted: tuple[str, ...] = ()               # orgs in securityRestrictions (SSO/MFA pending): no_access
    linked_at: float = 0.0                          # when the user signed in
    roles_at: float = 0.0                           # when the roles were last read from the Hub
    refresh_failed_at: float = 0.0                  # first transient refresh failure since roles_at (0 = none)
    expires_at: float = 0.0                         # the link ends (no refresh token: SPACEOPS_HUB_LINK_DAYS)
    refreshable: bool = False                       # the vault holds a refresh token for it
    version: int = VERSION

    def role_in(self, namespace: str, now: float) -> str:
        """The Hub role that counts in `namespace`: the user's own namespace is admin, a restricted org
        no_access, roles older than STALE_SECONDS after a failed refresh count as read at most."""
        ns = namespace.lower()
        if self.expires_at and now >= self.expires_at:
            return "no_access"
        if ns in (r.lower() for r in self.restricted):
            return "no_access"
        role = "admin" if ns == self.hub_user.lower() else next(
            (r for org, r in self.orgs.items() if org.lower() == ns), "no_access")
        if role not in ROLES:
            role = "read"  # a role this release doesn't know: the least that membership means
        if self.refresh_failed_at and now - self.roles_at >= STALE_SECONDS and role != "no_access":
            return "read"
        return role

    def encode(self) -> str:
        data = asdict(self)
        data["restricted"] = list(self.restricted)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def decode(cls, raw: str | bytes | None) -> HubLink | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            link = cls(
                slack_user=str(data["slack_user"]), hub_user=str(data["hub_user"]),
                orgs={str(k): str(v) for k, v in (data.get("orgs") or {}).items()},
                restricted=tuple(str(x) for x in data.get("restricted") or ()),
                linked_at=float(data.get("linked_at") or 0), roles_at=float(data.get("roles_at") or 0),
                refresh_failed_at=float(data.get("refresh_failed_at") or 0),
                expires_at=float(data.get("expires_at") or 0), refreshable=bool(data.get("refreshable")),
                version=int(data.get("version") or VERSION))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("a Hub link record could not be read (%s): it counts as not linked", type(err).__name__)
            return None
        return link if link.hub_user else None


class Links:
    """The links in Redis. `get` is on every gate decision in hub/both mode: one GET."""

    def __init__(self, redis_client):
        self.redis = redis_client

    def get(self, slack_user: str) -> HubLink | None:
        return HubLink.decode(self.redis.get(link_key(slack_user)))

    def put(self, link: HubLink) -> None:
        self.redis.set(link_key(link.slack_user), link.encode())

    def forget(self, slack_user: str) -> bool:
        return bool(self.redis.delete(link_key(slack_user)))

    def all_users(self) -> list[str]:
        prefix = link_key("")
        found = (k.decode() if isinstance(k, bytes) else k for k in self.redis.scan_iter(match=prefix + "*", count=500))
        return [k[len(prefix):] for k in found]


__all__ = ["HubLink", "Links", "ROLES", "STALE_SECONDS", "REDIS_ERRORS", "link_key", "replace"]
