"""Rights from the Hub: a member's role in a Space's namespace (hub-api.md §13) turned into what Space Ops
lets them do there. A plain function over values, no I/O: the gate (bot/access/service.py) reads the link,
the clock and the Space's privacy, and asks here.

operate = restart, pause, resume, sleep, hardware, variables, secrets, duplicate into it, dev mode,
volumes, watch, schedules; admin commands = scopes, budgets, the Hub webhook, cancelling others' requests.

| Hub role in the namespace                          | read              | operate | approve | admin |
|----------------------------------------------------|-------------------|---------|---------|-------|
| admin (and the user's own namespace)               | yes               | yes     | yes     | yes   |
| write                                              | yes               | yes     | no      | no    |
| contributor                                        | yes               | no      | no      | no    |
| read                                               | yes               | no      | no      | no    |
| no_access, not a member, SSO/MFA pending, ended    | no                | no      | no      | no    |
| not linked, SPACEOPS_UNLINKED=read                 | public Spaces     | no      | no      | no    |
| not linked, SPACEOPS_UNLINKED=none                 | no                | no      | no      | no    |

`contributor` is read only. On the Hub a contributor may write the repos they created, but nothing the
Hub tells the bot says who created a Space: `SpaceInfo.author` (and `list_spaces(author=…)`) is the
namespace that owns it, not the member who made it, and no endpoint of hub-api.md names a creator. Guessing
from the audit of our own `duplicate` would grant rights the Hub never gave for Spaces made elsewhere, so
contributor gets what it is sure to hold: read.

`both` takes the lower of the Slack level (SPACEOPS_OPERATORS/READERS…) and the Hub level: the lists are a
ceiling over the Hub role, and the Hub role one over the lists."""

from __future__ import annotations

from dataclasses import dataclass

# What Space Ops lets someone do in a namespace, lowest first. `approve` and `admin` go together on the Hub.
ACTIONS = ("read", "operate", "approve", "admin")
RIGHTS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "write": frozenset({"read", "operate"}),
    "contributor": frozenset({"read"}),
    "read": frozenset({"read"}),
    "no_access": frozenset(),
}
# The least Hub role that allows each action: what a refusal says is needed.
NEEDS = {"read": "read", "operate": "write", "approve": "admin", "admin": "admin"}
LEVELS = {"none": 0, "read": 1, "operate": 2}  # the gate's levels (bot/access/rules.py)
MODES = ("slack", "hub", "both")


@dataclass(frozen=True)
class Standing:
    """What the Hub says of one member in one namespace, as the gate found it."""

    linked: bool                 # a live link to a Hub account exists
    role: str = "no_access"      # `HubLink.role_in(namespace, now)`: admin/write/contributor/read/no_access
    sso_pending: bool = False    # the org is in the user's securityRestrictions
    expired: bool = False        # the link's time is over: sign in again
    stale: bool = False          # roles older than a day after failed refreshes: they count as read
    hub_user: str = ""
    member: bool = False         # the namespace is the user's own or one of their orgs


def hub_allows(standing: Standing, action: str, private: bool, unlinked: str = "read") -> bool:
    """Whether the Hub side lets `standing` do `action` on a Space (`private`: the Hub says it is)."""
    if not standing.linked:
        return unlinked == "read" and action == "read" and not private
    return action in RIGHTS.get(standing.role, frozenset())


def hub_level(standing: Standing, private: bool, unlinked: str = "read") -> str:
    """The gate's level (none | read | operate) the Hub side gives in that namespace."""
    if hub_allows(standing, "operate", private, unlinked):
        return "operate"
    return "read" if hub_allows(standing, "read", private, unlinked) else "none"


def effective(mode: str, slack_level: str, hub: str) -> str:
    """The level that counts: Slack's lists, the Hub's role, or the lower of the two."""
    if mode == "slack":
        return slack_level
    if mode == "hub":
        return hub
    return min(slack_level, hub, key=LEVELS.__getitem__)


def combined(mode: str, slack_ok: bool, hub_ok: bool) -> bool:
    """A yes/no right (approve, admin) under `mode`."""
    return {"slack": slack_ok, "hub": hub_ok}.get(mode, slack_ok and hub_ok)


__all__ = ["ACTIONS", "MODES", "NEEDS", "RIGHTS", "Standing", "combined", "effective", "hub_allows", "hub_level"]
