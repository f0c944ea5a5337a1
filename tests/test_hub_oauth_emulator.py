"""The Hub emulator's OAuth device flow, userinfo and whoami-v2 for OAuth tokens (hub-api.md §13), via the real client."""

from huggingface_hub import HfApi
from huggingface_hub.utils import get_session

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _post(hub, path, **form):
    return get_session().post(f"{hub.base}{path}", data=form, timeout=5)


def test_device_flow_pending_approve_single_use_then_identity(hub):
    hub.add_member("alice-ml", {"acme": "write", "corp": "admin"}, {"corp": ["sso"]})
    start = _post(hub, "/oauth/device", client_id="app", scope="openid profile read-memberships").json()
    assert start["verification_uri_complete"].endswith(start["user_code"]) and start["expires_in"] == 900
    poll = dict(grant_type=GRANT, device_code=start["device_code"], client_id="app")
    assert _post(hub, "/oauth/token", **poll).json()["error"] == "authorization_pending"
    hub.approve("alice-ml", start["user_code"])
    tokens = _post(hub, "/oauth/token", **poll).json()
    assert tokens["token_type"] == "bearer" and tokens["refresh_token"]
    assert _post(hub, "/oauth/token", **poll).json()["error"] == "invalid_grant"  # single use
    me = HfApi(endpoint=hub.base).whoami(token=tokens["access_token"])
    assert me["name"] == "alice-ml" and me["auth"]["type"] == "oauth"
    assert {o["name"]: o["roleInOrg"] for o in me["orgs"]} == {"acme": "write", "corp": "admin"}
    info = get_session().get(f"{hub.base}/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                             timeout=5).json()
    assert {o["name"]: o.get("securityRestrictions", []) for o in info["orgs"]} == {"acme": [], "corp": ["sso"]}
    # Refresh rotates; the old refresh token is then invalid_grant.
    again = _post(hub, "/oauth/token", grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="app")
    assert again.json()["refresh_token"] != tokens["refresh_token"]
    old = _post(hub, "/oauth/token", grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="app")
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


def test_denied_expired_and_slow_down(hub):
    poll = lambda s: dict(grant_type=GRANT, device_code=s["device_code"], client_id="app")  # noqa: E731
    a = _post(hub, "/oauth/device", client_id="app").json()
    hub.deny(a["user_code"])
    assert _post(hub, "/oauth/token", **poll(a)).json()["error"] == "access_denied"
    b = _post(hub, "/oauth/device", client_id="app").json()
    hub.expire(b["user_code"])
    assert _post(hub, "/oauth/token", **poll(b)).json()["error"] == "expired_token"
    hub.oauth_enforce_interval = True
    c = _post(hub, "/oauth/device", client_id="app").json()
    assert _post(hub, "/oauth/token", **poll(c)).json()["error"] == "authorization_pending"
    assert _post(hub, "/oauth/token", **poll(c)).json()["error"] == "slow_down"
    assert hub.device_codes[c["device_code"]]["interval"] == 10
