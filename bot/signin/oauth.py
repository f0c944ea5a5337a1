"""The Hub's OAuth endpoints for a sign-in: the device code, the token grants, and who the user is.

huggingface_hub has no public device-flow API for an app of our own (its `utils._oauth_device` helpers are
private and send the CLI's client id, hub-api.md §13.2), and `HfApi.whoami` reads whoami-v2, which has no
`securityRestrictions`. So these four requests are made here, and only here, on huggingface_hub's own HTTP
session (`get_session()`: the process-wide client bot.core.hub gives a timeout and observes), each with a
deadline of its own: never a hand-written HTTP client.

Nothing here logs, raises or returns a token inside a message: outcomes carry the tokens as fields, and
every failure is described by the Hub's short error code or the exception's type name only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from huggingface_hub.utils import get_session, httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = "openid profile read-memberships"
# The transport's failures (refused, reset, timed out, a broken body): a poll that says nothing.
TRANSPORT_ERRORS = (httpx.HTTPError, httpx.StreamError, OSError)


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)
    user_code: str
    uri: str           # verification_uri_complete when the Hub gives it, else verification_uri
    interval: int
    expires_in: int


@dataclass(frozen=True)
class Grant:
    """The answer to a token request: `kind` is granted, pending, slow_down, denied, expired, invalid (an
    invalid_grant: used, revoked or expired), refused (any other error) or inconclusive (5xx, no JSON,
    the network)."""

    kind: str
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    detail: str = ""   # the Hub's error code or the failure's type name: safe to log and show


@dataclass(frozen=True)
class Identity:
    hub_user: str
    orgs: dict[str, str]            # org → roleInOrg
    restricted: tuple[str, ...]     # orgs with securityRestrictions left to complete


class OAuthUnavailable(Exception):
    """The Hub did not answer usefully; `reason` is short ("HTTP 503", "ReadTimeout") and holds no secret."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HubOAuth:
    def __init__(self, endpoint: str, client_id: str, timeout: float):
        self.endpoint = endpoint.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout

    def _post(self, path: str, form: dict[str, str]):
        return get_session().post(f"{self.endpoint}{path}", data=form, timeout=self.timeout)

    def device_code(self) -> DeviceCode:
        """POST /oauth/device: a new code, or OAuthUnavailable."""
        try:
            response = self._post("/oauth/device", {"client_id": self.client_id, "scope": SCOPES})
            data = response.json() if response.status_code == 200 else None
        except TRANSPORT_ERRORS as err:
            raise OAuthUnavailable(type(err).__name__) from None
        except ValueError:
            raise OAuthUnavailable("not JSON") from None
        if not isinstance(data, dict) or not data.get("device_code") or not data.get("user_code"):
            raise OAuthUnavailable(f"HTTP {response.status_code}")
        try:
            return DeviceCode(str(data["device_code"]), str(data["user_code"]),
                              str(data.get("verification_uri_complete") or data.get("verification_uri") or ""),
                              max(1, int(data.get("interval") or 5)), max(1, int(data.get("expires_in") or 900)))
        except (TypeError, ValueError):
            raise OAuthUnavailable("malformed answer") from None

    def poll(self, device_code: str) -> Grant:
        return self._token({"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": self.client_id})

    def refresh(self, refresh_token: str) -> Grant:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                            "client_id": self.client_id})

    def _token(self, form: dict[str, str]) -> Grant:
        try:
            response = self._post("/oauth/token", form)
        except TRANSPORT_ERRORS as err:
            return Grant("inconclusive", detail=type(err).__name__)
        if response.status_code >= 500:
            return Grant("inconclusive", detail=f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            return Grant("inconclusive", detail="not JSON")
        if not isinstance(data, dict):
            return Grant("inconclusive", detail="not an object")
        if response.status_code == 200 and data.get("access_token"):
            return Grant("granted", str(data["access_token"]), str(data.get("refresh_token") or ""))
        error = str(data.get("error") or f"HTTP {response.status_code}")[:40]
        kind = {"authorization_pending": "pending", "slow_down": "slow_down", "access_denied": "denied",
                "expired_token": "expired", "invalid_grant": "invalid"}.get(error, "refused")
        if kind == "refused" and response.status_code == 429:
            kind = "inconclusive"  # rate limited: try again later
        return Grant(kind, detail=error)

    def identity(self, access_token: str) -> Identity:
        """GET /oauth/userinfo with the user's token: who they are, each org's role and restrictions."""
        try:
            response = get_session().get(f"{self.endpoint}/oauth/userinfo", timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {access_token}"})
            data = response.json() if response.status_code == 200 else None
        except TRANSPORT_ERRORS as err:
            raise OAuthUnavailable(type(err).__name__) from None
        except ValueError:
            raise OAuthUnavailable("not JSON") from None
        if not isinstance(data, dict):
            raise OAuthUnavailable(f"HTTP {response.status_code}")
        user = str(data.get("preferred_username") or data.get("name") or "")
        if not user:
            raise OAuthUnavailable("no user name")
        orgs, restricted = {}, []
        for org in data.get("orgs") or []:
            if not isinstance(org, dict):
                continue
            name = str(org.get("preferred_username") or org.get("name") or "")
            if not name:
                continue
            orgs[name] = str(org.get("roleInOrg") or "read")
            if org.get("securityRestrictions"):
                restricted.append(name)
        return Identity(user, orgs, tuple(restricted))
