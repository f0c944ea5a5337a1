"""A stateful Hugging Face Hub emulator over HTTP, following ../shared/hub-api.md §10.

Run alone for the console: `python -m tests.emulators.hub --port 8900 --demo`, then
`HF_ENDPOINT=http://127.0.0.1:8900 HF_TOKEN=hf_demo python -m bot console`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode

from bot.core.flavors import SHIPPED

TOKEN = "hf_test_token"
FLAVORS = {f.name: f for f in SHIPPED} | {n: None for n in ("cpu-performance", "cpu-xl", "sprx8", "h200", "inf2x6")}
EXPANDABLE = {"author", "cardData", "createdAt", "datasets", "disabled", "lastModified", "likes", "models", "private",
              "region", "resourceGroup", "runtime", "sdk", "sha", "siblings", "subdomain", "tags", "trendingScore",
              "usedStorage"}
_SPACE_PATH = re.compile(r"^/api/spaces/([^/]+)/([^/]+)(?:/(.*))?$")
_REPO_PATH = re.compile(r"^/api/(models|datasets)/([^/]+)/([^/]+)(?:/revision/[^/]+)?$")
_KEY = re.compile(r"^[a-zA-Z][_a-zA-Z0-9]*$")


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class Fault:
    match: Callable[[str, str], bool]
    status: int = 500
    body: bytes | str | dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    hang: bool = False          # accept the request, then never answer (until the fault is cleared)
    stall: bool = False         # send headers and half the real body, then nothing more
    keepalive: float = 0.0      # an event stream: the real events, then a keep-alive comment this often, forever


HANG_CAP = 600.0  # a hung request is released after this long even if no test clears it
class HubEmulator:
    """Spaces with runtimes, variables and secrets; records every request; injects faults."""

    def __init__(self, token: str = TOKEN, user: str = "bot-user", latency: float = 0.0, page_size: int = 1000):
        self.token = token
        self.user = user
        self.page_size = page_size
        # Listing pages kept encoded until `add_space`/`set_stage` (the benchmark's Hub at 100,000 Spaces: what
        # the real Hub spends on a page is not the bot's time). Off by default: tests change Spaces directly.
        self.cache_pages = False
        self._pages: dict[tuple[str | None, str], tuple[bytes, dict]] = {}  # (author, query) → body, headers
        self.lock = threading.RLock()
        self.reset(latency)

    def reset(self, latency: float = 0.0) -> None:
        """Back to an empty Hub with no faults or limits (tests share one emulator per session)."""
        with self.lock:
            self.latency = latency
            self.spaces: dict[str, dict[str, Any]] = {}
            self.requests: list[Recorded] = []
            self.faults: list[Fault] = []
            self.writable: set[str] | None = None  # namespaces the token may change; None = all
            self.rate_limit: int | None = None  # requests left in the window; None = unlimited
            self.rate_window = 300
            self.rate_quota = 1000
            self.hardware_endpoint_up = True
            self.added_flavors: list = []  # flavors the Hub offers beyond the shipped table (add_flavor)
            self.logs: dict[str, list[str]] = {}        # run log lines of a Space
            self.build_logs: dict[str, list[str]] = {}  # build log lines of a Space
            self.repos: dict[tuple[str, str], bool] = {}  # ("model"|"dataset", id) → private
            self.plans: set[str] = set()  # namespaces on PRO / Team / Enterprise (may enable dev mode)
            self.webhooks: dict[str, dict[str, Any]] = {}
            # Called with each request as it arrives, before it is answered (what else held at that moment).
            self.on_request: Callable[[Recorded], None] | None = None
            self._reset_oauth()
            self._release_hung()

    def _release_hung(self) -> None:
        """Let every hung or stalled request of an earlier fault end (waitress threads are shared)."""
        released = getattr(self, "released", None)
        if released is not None:
            released.set()
        self.released = threading.Event()

    # ------------------------------------------------------------------ test-facing state

    def add_space(self, space_id: str, stage: str = "RUNNING", hardware: str | None = "cpu-basic",
                  requested: str | None = None, sleep: int | None = None, sdk: str = "gradio",
                  private: bool = False, error: str | None = None, variables: dict[str, str] | None = None,
                  secrets: dict[str, str] | None = None) -> dict:
        static = sdk == "static"
        requested = None if static else (requested or hardware)
        if sleep is None and not static and (requested or "cpu-basic") == "cpu-basic":
            sleep = 172800
        ns, name = space_id.split("/")
        space = {
            "id": space_id, "_id": uuid.uuid4().hex[:24], "author": ns, "sdk": sdk, "private": private,
            "stage": stage, "current": None if static else hardware, "requested": requested, "gcTimeout": sleep,
            "errorMessage": error, "replicas": 1, "devMode": False, "volumes": None,
            "variables": {k: {"value": v, "updatedAt": now_iso()} for k, v in (variables or {}).items()},
            "secrets": {k: {"updatedAt": now_iso(), "_value": v} for k, v in (secrets or {}).items()},
            "createdAt": now_iso(), "lastModified": now_iso(), "likes": 0, "sha": uuid.uuid4().hex[:40],
        }
        with self.lock:
            self.spaces[space_id] = space
            self._added = getattr(self, "_added", 0) + 1
            self._pages.clear()
        return space

    def add_flavor(self, name: str, price_per_hour: float, pretty: str = "") -> None:
        """A flavor the Hub started offering (listed by /api/spaces/hardware, accepted by /hardware)."""
        from bot.core.flavors import Flavor

        with self.lock:
            self.added_flavors.append(Flavor(name, pretty or name, price_per_hour, "8 vCPU · 64 GB"))

    def set_stage(self, space_id: str, stage: str, error: str | None = None, hardware: str | None = None) -> None:
        with self.lock:
            space = self.spaces[space_id]
            space["stage"] = stage
            space["errorMessage"] = error
            if hardware is not None:
                space["current"] = hardware
            # Only the cached pages that list this Space are encoded again (its author's, and the unfiltered ones).
            author = space["author"].lower()
            for cached in [k for k in self._pages if k[0] in (author, None)]:
                del self._pages[cached]

    def apply_requested_hardware(self, space_id: str) -> None:
        with self.lock:
            space = self.spaces[space_id]
            space["current"] = space["requested"]
            space["stage"] = "RUNNING"

    def inject(self, method: str | None = None, path: str = "", status: int = 500, body: Any = None,
               headers: dict[str, str] | None = None, delay: float = 0.0, times: int = 1, hang: bool = False,
               stall: bool = False, keepalive: float = 0.0, exact: bool = False) -> Fault:
        """The next `times` requests matching method and path (substring) get this answer instead.

        `hang`: never answer; `stall`: the real answer's headers and half its body, then silence;
        `keepalive`: the real answer (an event stream) followed by a keep-alive event every that many
        seconds, forever. These last until `clear_faults()` or `reset()`. `exact`: the path must be equal."""
        def match(m: str, p: str) -> bool:
            return (method is None or m == method) and (p == path if exact else path in p)
        fault = Fault(match, status, body, headers or {}, delay, times, hang, stall, keepalive)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self._release_hung()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    def runtime(self, space_id: str) -> dict:
        with self.lock:
            return self._runtime(self.spaces[space_id])

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        recorded = Recorded(method, path, query, body, headers)
        if self.on_request is not None:
            self.on_request(recorded)
        with self.lock:
            self.requests.append(recorded)
            fault = next((f for f in self.faults if f.times > 0 and f.match(method, path)), None)
            if fault:
                fault.times -= 1
        if self.latency:
            time.sleep(self.latency)
        released = self.released
        if fault and fault.hang:
            released.wait(HANG_CAP)
            return self._send(start_response, 503, {"error": "hung request released"}, {})
        if fault and not (fault.stall or fault.keepalive):
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:  # status 0: only slow, then answered as usual
                return self._send(start_response, fault.status, fault.body, fault.headers)
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        status, payload, extra = self._route(method, path, query, body, headers, f"http://{host}")
        if fault and fault.stall:
            return self._stalled(start_response, status, payload, extra, released)
        if fault and fault.keepalive:
            return self._keepalive(start_response, payload, fault.keepalive, released)
        with self.lock:
            if self.rate_limit is not None:
                extra = {**extra, "RateLimit": f'"api";r={max(self.rate_limit, 0)};t={self.rate_window}',
                         "RateLimit-Policy": f'"fixed window";"api";q={self.rate_quota};w=300'}
        return self._send(start_response, status, payload, extra)

    def _stalled(self, start_response, status, payload, headers, released: threading.Event):
        data = json.dumps(payload).encode() if isinstance(payload, (dict, list)) else bytes(payload or b"")
        start_response(f"{status} OK", [("Content-Type", "application/json; charset=utf-8"),
                                        ("Content-Length", str(len(data)))] + list(headers.items()))

        def body():
            yield data[:len(data) // 2]
            released.wait(HANG_CAP)
        return body()

    def _keepalive(self, start_response, payload, every: float, released: threading.Event):
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

        def body():
            yield bytes(payload or b"")
            deadline = time.monotonic() + HANG_CAP
            while not released.wait(every) and time.monotonic() < deadline:
                yield b": keep-alive\n\n"
        return body()

    def _send(self, start_response, status: int, payload: Any, headers: dict[str, str]):
        if isinstance(payload, (dict, list)):
            data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        elif isinstance(payload, bytes):
            data, ctype = payload, "text/plain"
        else:
            data, ctype = (payload or "").encode(), "text/plain"
        ctype = headers.pop("Content-Type", ctype) if "Content-Type" in headers else ctype
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Status")
        out = [("Content-Type", ctype), ("Content-Length", str(len(data))),
               ("X-Request-Id", f"Root=1-{uuid.uuid4().hex[:8]}")]
        out += [(k, v) for k, v in headers.items()]
        start_response(f"{status} {reason}", out)
        return [data]

    # ------------------------------------------------------------------ OAuth (hub-api.md §13)

    OAUTH_SCOPES = "openid profile read-memberships"

    def _reset_oauth(self) -> None:
        self.oauth_clients: set[str] | None = None   # accepted client ids; None = any
        self.oauth_clock: Callable[[], float] = time.time  # tests may inject their own
        self.oauth_interval = 5
        self.oauth_expires_in = 900
        self.oauth_token_ttl = 28800
        self.oauth_give_refresh = True
        self.oauth_enforce_interval = False  # True: a poll sooner than the interval gets slow_down (+5 s)
        self.members: dict[str, dict[str, Any]] = {}   # Hub user -> {"orgs": {org: role}, "restrictions": {org: [..]}}
        self.device_codes: dict[str, dict[str, Any]] = {}
        self.oauth_tokens: dict[str, str] = {}      # access token -> Hub user
        self.refresh_tokens: dict[str, str] = {}    # refresh token -> Hub user (rotated on use)

    def add_member(self, user: str, orgs: dict[str, str] | None = None,
                   restrictions: dict[str, list[str]] | None = None) -> None:
        """A Hub account with its role in each organization (no_access, read, contributor, write, admin)."""
        with self.lock:
            self.members[user] = {"orgs": dict(orgs or {}), "restrictions": {k: list(v) for k, v in (restrictions or {}).items()}}

    def set_role(self, user: str, org: str, role: str | None) -> None:
        """Change (or with None remove) a member's role in an org."""
        with self.lock:
            orgs = self.members.setdefault(user, {"orgs": {}, "restrictions": {}})["orgs"]
            if role is None:
                orgs.pop(org, None)
            else:
                orgs[org] = role

    def set_restrictions(self, user: str, org: str, restrictions: list[str]) -> None:
        """What the user has not completed for that org yet ("sso", "mfa", "ip", "token-policy")."""
        with self.lock:
            self.members.setdefault(user, {"orgs": {}, "restrictions": {}})["restrictions"][org] = list(restrictions)

    def _pending(self, user_code: str | None) -> dict[str, Any]:
        pending = [c for c in self.device_codes.values() if c["state"] == "pending"]
        code = next((c for c in pending if user_code is None or c["user_code"] == user_code), None)
        if code is None:
            raise KeyError(f"no pending device code {user_code or ''}".strip())
        return code

    def approve(self, user: str, user_code: str | None = None) -> None:
        """The user enters the code on the verification page and consents (the latest pending code if none given)."""
        with self.lock:
            code = self._pending(user_code)
            code["state"], code["user"] = "approved", user

    def deny(self, user_code: str | None = None) -> None:
        with self.lock:
            self._pending(user_code)["state"] = "denied"

    def expire(self, user_code: str | None = None) -> None:
        with self.lock:
            self._pending(user_code)["expires_at"] = self.oauth_clock() - 1

    def revoke(self, user: str) -> None:
        """The user revokes the app: every access and refresh token of theirs is refused from now on."""
        with self.lock:
            self.oauth_tokens = {t: u for t, u in self.oauth_tokens.items() if u != user}
            self.refresh_tokens = {t: u for t, u in self.refresh_tokens.items() if u != user}

    @staticmethod
    def _form(body: Any) -> dict[str, str]:
        if isinstance(body, dict):
            return {k: str(v) for k, v in body.items()}
        return {k: v[0] for k, v in parse_qs(body or "", keep_blank_values=True).items()}

    def _issue(self, user: str) -> dict[str, Any]:
        access = "hf_oauth_" + uuid.uuid4().hex
        self.oauth_tokens[access] = user
        out = {"access_token": access, "token_type": "bearer", "expires_in": self.oauth_token_ttl,
               "scope": self.OAUTH_SCOPES}
        if self.oauth_give_refresh:
            refresh = "hf_oauth_refresh_" + uuid.uuid4().hex
            self.refresh_tokens[refresh] = user
            out["refresh_token"] = refresh
        return out

    def _oauth_post(self, path: str, body: Any, base: str):
        form = self._form(body)
        with self.lock:
            client_id = form.get("client_id", "")
            if not client_id or (self.oauth_clients is not None and client_id not in self.oauth_clients):
                return 401, {"error": "invalid_client", "error_description": "Unknown client"}, {}
            now = self.oauth_clock()
            if path == "/oauth/device":
                device_code = uuid.uuid4().hex
                user_code = "-".join(uuid.uuid4().hex[:8].upper()[i:i + 4] for i in (0, 4))
                self.device_codes[device_code] = {
                    "device_code": device_code, "user_code": user_code, "client_id": client_id,
                    "scope": form.get("scope", ""), "state": "pending", "user": None,
                    "expires_at": now + self.oauth_expires_in, "interval": self.oauth_interval, "last_poll": None}
                return 200, {"device_code": device_code, "user_code": user_code,
                             "verification_uri": f"{base}/oauth/device",
                             "verification_uri_complete": f"{base}/oauth/device?user_code={user_code}",
                             "expires_in": self.oauth_expires_in, "interval": self.oauth_interval}, {}
            grant = form.get("grant_type", "")
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                code = self.device_codes.get(form.get("device_code", ""))
                if code is None or code["client_id"] != client_id or code["state"] == "used":
                    return 400, {"error": "invalid_grant", "error_description": "Unknown or used device code"}, {}
                if now >= code["expires_at"]:
                    return 400, {"error": "expired_token"}, {}
                if code["state"] == "denied":
                    return 400, {"error": "access_denied"}, {}
                if code["state"] == "pending":
                    last, code["last_poll"] = code["last_poll"], now
                    if self.oauth_enforce_interval and last is not None and now - last < code["interval"]:
                        code["interval"] += 5
                        return 400, {"error": "slow_down"}, {}
                    return 400, {"error": "authorization_pending"}, {}
                code["state"] = "used"
                return 200, self._issue(code["user"]), {}
            if grant == "refresh_token":
                user = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if user is None:
                    return 400, {"error": "invalid_grant", "error_description": "Refresh token expired or revoked"}, {}
                return 200, self._issue(user), {}
            return 400, {"error": "unsupported_grant_type"}, {}

    def _oauth_identity(self, path: str, token: str):
        with self.lock:
            user = self.oauth_tokens[token]
            member = self.members.get(user, {"orgs": {}, "restrictions": {}})
            orgs = [(org, role, member["restrictions"].get(org, [])) for org, role in sorted(member["orgs"].items())]
            if path == "/oauth/userinfo":
                out_orgs = []
                for org, role, restr in orgs:
                    item = {"sub": f"org-{org}", "name": org, "preferred_username": org, "picture": "", "roleInOrg": role}
                    if restr:
                        item["securityRestrictions"] = list(restr)
                    out_orgs.append(item)
                return 200, {"sub": f"user-{user}", "name": user, "preferred_username": user, "picture": "",
                             "isPro": False, "canPay": False, "orgs": out_orgs}, {}
            return 200, {"type": "user", "id": f"user-{user}", "name": user, "fullname": user, "isPro": False,
                         "orgs": [{"type": "org", "name": org, "fullname": org, "roleInOrg": role}
                                  for org, role, _ in orgs],
                         "auth": {"type": "oauth", "expiresAt": now_iso()}}, {}

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _error(status: int, message: str, code: str | None = None) -> tuple[int, dict, dict]:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        return status, {"error": message}, headers

    def _route(self, method, path, query, body, headers, base):
        if path == "/api/agent-harnesses":
            return 200, {"standardEnvVars": [], "harnesses": {}}, {}
        if path in ("/oauth/device", "/oauth/token") and method == "POST":
            return self._oauth_post(path, body, base)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return 401, {"error": "Invalid username or password."}, {}
        if path in ("/oauth/userinfo", "/api/whoami-v2") and auth[7:] in self.oauth_tokens:
            return self._oauth_identity(path, auth[7:])
        if auth[7:] != self.token:
            return self._error(401, "Invalid credentials in Authorization header")
        with self.lock:
            if self.rate_limit is not None:
                self.rate_limit -= 1
                if self.rate_limit < 0:
                    return self._error(429, "Rate limit exceeded")
            if path == "/api/whoami-v2":
                return 200, {"type": "user", "id": "u1", "name": self.user, "fullname": "Bot User",
                             "avatarUrl": "", "isPro": False, "orgs": [],
                             "auth": {"type": "access_token", "accessToken": {"displayName": "bot", "role": "write",
                                                                              "createdAt": now_iso()}}}, {}
            if path == "/api/spaces/hardware" and method == "GET":
                if not self.hardware_endpoint_up:
                    return self._error(503, "Service Unavailable")
                return 200, [self._hardware_item(f) for f in (*SHIPPED, *self.added_flavors)], {}
            if path == "/api/spaces" and method == "GET":
                if not self.cache_pages:
                    return self._list(query, base)
                author = (query.get("author") or [None])[0]
                page_key = (author.lower() if author else None, repr(sorted(query.items())) + base)
                if page_key not in self._pages:
                    status, items, headers = self._list(query, base)
                    if status != 200:
                        return status, items, headers
                    self._pages[page_key] = (json.dumps(items).encode(), headers)
                data, headers = self._pages[page_key]
                return 200, data, {**headers, "Content-Type": "application/json; charset=utf-8"}
            if path.startswith("/api/settings/webhooks"):
                return self._webhooks(method, path, body)
            repo = _REPO_PATH.match(path)
            if repo and method == "GET":  # a model or dataset (what a volume mounts): its visibility only
                kind, repo_id = repo.group(1)[:-1], f"{repo.group(2)}/{repo.group(3)}"
                if (kind, repo_id) not in self.repos:
                    return self._error(404, "Repository not found", "RepoNotFound")
                return 200, {"id": repo_id, "_id": uuid.uuid4().hex[:24], "author": repo.group(2),
                             "private": self.repos[(kind, repo_id)], "sha": "0" * 40, "lastModified": now_iso(),
                             "tags": [], "downloads": 0, "likes": 0}, {}
            match = _SPACE_PATH.match(path)
            if not match:
                return self._error(404, "Not Found")
            space_id, rest = f"{match.group(1)}/{match.group(2)}", match.group(3) or ""
            # Repo ids are case-insensitive on the Hub; answers carry the repo's own casing.
            space = self.spaces.get(space_id) or next(
                (s for sid, s in self.spaces.items() if sid.lower() == space_id.lower()), None)
            if space is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            return self._space_route(method, rest, space, query, body, base)

    COMMITS_PAGE = 50  # the real page size is not documented [unverified]; the client follows `Link`

    def _commits(self, space, query, base):
        """`list_repo_commits`: newest first, `space["history"]` commits (default 1), paged with `Link`."""
        total = int(space.get("history") or 1)
        start = int((query.get("p") or ["0"])[0]) * self.COMMITS_PAGE
        items = [{"id": (space["sha"] if i == 0 else f"{i:040x}"), "title": f"commit {total - i}",
                  "message": "", "authors": [{"user": "julien"}], "date": now_iso()}
                 for i in range(start, min(total, start + self.COMMITS_PAGE))]
        headers = {}
        if start + self.COMMITS_PAGE < total:
            page = start // self.COMMITS_PAGE + 1
            headers["Link"] = f'<{base}/api/spaces/{space["id"]}/commits/main?p={page}>; rel="next"'
        return 200, items, headers

    def _webhooks(self, method, path, body):
        """`/api/settings/webhooks` (create) and `/{id}` (get, delete): the shapes `HfApi` reads."""
        hooks = self.webhooks
        if path == "/api/settings/webhooks" and method == "POST":
            if not isinstance(body, dict) or not body.get("url") or not isinstance(body.get("watched"), list):
                return self._error(400, "Invalid webhook")
            hook = {"id": uuid.uuid4().hex[:24], "url": body["url"], "watched": body["watched"],
                    "domains": body.get("domains") or ["repo", "discussion"], "secret": body.get("secret"),
                    "disabled": False}
            hooks[hook["id"]] = hook
            return 200, {"webhook": hook}, {}
        hook_id = path.rsplit("/", 1)[-1]
        if hook_id not in hooks:
            return self._error(404, "Webhook not found")
        if method == "DELETE":
            del hooks[hook_id]
            return 200, {}, {}
        if method == "GET":
            return 200, {"webhook": hooks[hook_id]}, {}
        return self._error(405, "Method not allowed")

    def _hardware_item(self, flavor) -> dict:
        cpu, ram = (flavor.spec.split(" · ") + ["", ""])[:2]
        per_minute = (flavor.price_per_hour or 0) / 60
        return {"name": flavor.name, "prettyName": flavor.pretty, "cpu": cpu, "ram": ram,
                "accelerator": None, "unitCostMicroUSD": int(per_minute * 1e6), "unitCostUSD": per_minute,
                "unitLabel": "minute"}

    def _list(self, query, base):
        expand = query.get("expand", [])
        if unknown := [e for e in expand if e not in EXPANDABLE]:
            return self._error(400, f"Invalid expand value: {unknown[0]}")
        author = (query.get("author") or [None])[0]
        spaces = self._listed(author)
        limit = int((query.get("limit") or [self.page_size])[0])
        size = min(limit, self.page_size)
        cursor = int((query.get("cursor") or ["0"])[0])
        page = spaces[cursor:cursor + size]
        items = []
        for space in page:
            full = self._info(space)
            items.append({k: v for k, v in full.items() if k in ("id", "_id") or k in expand} if expand else
                         {k: full[k] for k in ("id", "_id", "author", "likes", "sdk", "private", "createdAt")})
        headers = {}
        if cursor + size < len(spaces):
            params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs] + [("cursor", cursor + size)]
            headers["Link"] = f'<{base}/api/spaces?{urlencode(params)}>; rel="next"'
        return 200, items, headers

    def _listed(self, author: str | None) -> list[dict]:
        """The Spaces of one author (or all), sorted by id: cached while the set of Spaces is the same (its size
        and last-added id say so), so a 100,000-Space bench does not sort the whole Hub for every page."""
        mark = (id(self.spaces), getattr(self, "_added", 0), len(self.spaces))
        if getattr(self, "_listed_mark", None) != mark:
            by_author: dict[str, list[dict]] = {}
            for space in sorted(self.spaces.values(), key=lambda s: s["id"]):
                by_author.setdefault(space["author"].lower(), []).append(space)
            self._listed_cache, self._listed_all, self._listed_mark = by_author, sorted(
                self.spaces.values(), key=lambda s: s["id"]), mark
        return self._listed_all if author is None else self._listed_cache.get(author.lower(), [])

    def _runtime(self, space) -> dict:
        runtime = {"stage": space["stage"], "hardware": {"current": space["current"], "requested": space["requested"]},
                   "storage": None, "gcTimeout": space["gcTimeout"],
                   "replicas": {"requested": space["replicas"]} | (
                       {"current": space["replicas"]} if space["stage"] == "RUNNING" else {}),
                   "devMode": space["devMode"],
                   **({"volumes": copy.deepcopy(space["volumes"])} if space.get("volumes") else {}),
                   "domains": [{"domain": space["id"].replace("/", "-") + ".hf.space", "stage": "READY"}]}
        if space["sdk"] == "static":
            runtime = {"stage": space["stage"], "hardware": {"current": None, "requested": None}, "storage": None,
                       "replicas": {"requested": 1, "current": 1}}
        if space["errorMessage"]:
            runtime["errorMessage"] = space["errorMessage"]
        if space["sdk"] != "static":
            runtime["sha"] = space["sha"]  # optional in the Hub's runtime (hub-api §6.1)
        return runtime

    def _info(self, space) -> dict:
        return {"_id": space["_id"], "id": space["id"], "author": space["author"], "sha": space["sha"],
                "lastModified": space["lastModified"], "createdAt": space["createdAt"], "private": space["private"],
                "sdk": space["sdk"], "tags": [], "likes": space["likes"],
                "subdomain": space["id"].replace("/", "-"), "runtime": self._runtime(space)}

    def _may_write(self, space) -> bool:
        return self.writable is None or space["author"] in self.writable

    def _space_route(self, method, rest, space, query, body, base):
        body = body if isinstance(body, dict) else {}
        static = space["sdk"] == "static"
        if rest == "" and method == "GET":
            return 200, self._info(space), {}
        if rest == "runtime" and method == "GET":
            return 200, self._runtime(space), {}
        if rest.startswith("commits/") and method == "GET":
            return self._commits(space, query, base)
        if rest in ("variables", "secrets") and method == "GET":
            if rest == "secrets" and not self._may_write(space):
                return self._error(403, "You don't have the rights to read secrets of this Space")
            items = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in space[rest].items()}
            return 200, items, {}
        if rest in ("logs/run", "logs/build") and method == "GET":
            if static:
                return self._error(404, "This Space has no logs (static)")
            store = self.build_logs if rest == "logs/build" else self.logs
            lines = store.get(space["id"], [])
            if "tail" in query:
                lines = lines[-int(query["tail"][0]):]
            stream = "".join(f"data: {json.dumps({'data': line, 'timestamp': now_iso()})}\n\n" for line in lines)
            return 200, stream.encode(), {"Content-Type": "text/event-stream"}
        if method in ("POST", "DELETE", "PUT") and not self._may_write(space):
            return self._error(403, "You don't have the rights to change this Space. Only its owner can")
        if rest in ("restart", "pause") and method == "POST":
            if static:
                return self._error(400, f"Cannot {rest} a static Space")
            space["stage"] = "BUILDING" if rest == "restart" else "PAUSED"
            space["errorMessage"] = None
            return 200, self._runtime(space), {}
        if rest == "dev-mode" and method == "POST":
            if static:
                return self._error(400, "Dev mode is not available on a static Space")
            enabled = bool(body.get("enabled"))
            if enabled and space["author"] not in self.plans:
                return self._error(403, "Dev mode is only available to PRO, Team or Enterprise accounts")
            space["devMode"] = enabled
            return 200, self._runtime(space), {}
        if rest == "volumes" and method == "PUT":
            volumes = body.get("volumes")
            if not isinstance(volumes, list):
                return self._error(400, "volumes must be a list")
            paths = [v.get("mountPath") for v in volumes]
            if any(not isinstance(p, str) or not p.startswith("/") for p in paths) or len(set(paths)) != len(paths):
                return self._error(400, "Each volume needs a distinct absolute mountPath")
            for v in volumes:
                if v.get("type") in ("model", "dataset", "space"):
                    v["readOnly"] = True
            space["volumes"] = copy.deepcopy(volumes) or None  # replaces the whole list
            space["stage"] = "BUILDING" if space["stage"] == "RUNNING" else space["stage"]
            return 200, {}, {}
        if rest == "volumes" and method == "DELETE":
            if not space.get("volumes"):
                return self._error(400, "This Space has no volumes")
            space["volumes"] = None
            return 200, {}, {}
        if rest == "hardware" and method == "POST":
            flavor = body.get("flavor")
            if flavor not in FLAVORS and flavor not in {f.name for f in self.added_flavors}:
                return self._error(400, "Invalid flavor")
            space["requested"] = flavor
            if "sleepTimeSeconds" in body:
                space["gcTimeout"] = body["sleepTimeSeconds"]
            elif flavor == "cpu-basic":
                space["gcTimeout"] = 172800
            if space["stage"] == "RUNNING":
                space["stage"] = "RUNNING_BUILDING"
            return 200, self._runtime(space), {}
        if rest == "sleeptime" and method == "POST":
            seconds = body.get("seconds")
            if not isinstance(seconds, int) or (seconds <= 0 and seconds != -1):
                return self._error(400, "Invalid sleep time")
            space["gcTimeout"] = None if seconds == -1 else seconds
            return 200, self._runtime(space), {}
        if rest in ("variables", "secrets") and method == "POST":
            key = body.get("key", "")
            if not _KEY.match(str(key)):
                return self._error(400, f"Invalid key: {key}")
            entry = {"updatedAt": now_iso()}
            if body.get("description"):
                entry["description"] = body["description"]
            if rest == "variables":
                space["variables"][key] = {"value": str(body.get("value", "")), **entry}
                return 200, copy.deepcopy(space["variables"]), {}
            space["secrets"][key] = {**entry, "_value": body.get("value")}
            return 200, {}, {}
        if rest in ("variables", "secrets") and method == "DELETE":
            space[rest].pop(body.get("key"), None)
            return 200, (copy.deepcopy(space["variables"]) if rest == "variables" else {}), {}
        if rest == "duplicate" and method == "POST":
            target = body.get("repository", "")
            if target in self.spaces:
                return self._error(409, "You already created this space repo", None)
            if "/" not in target:
                return self._error(400, "Invalid repository name")
            if target.split("/")[0] not in (self.writable or {target.split("/")[0]}):
                return self._error(403, "You don't have the rights to create a Space in this namespace")
            flavor = body.get("hardware") or "cpu-basic"
            if flavor not in FLAVORS:
                return self._error(400, "Invalid flavor")
            new = self.add_space(target, stage="BUILDING", hardware=None, requested=flavor,
                                 sleep=body.get("sleepTimeSeconds"), sdk=space["sdk"],
                                 private=body.get("visibility") == "private",
                                 variables={k: v["value"] for k, v in space["variables"].items()})
            return 200, {"url": f"https://huggingface.co/spaces/{new['id']}"}, {}
        return self._error(404, "Not Found")


def serve(emulator, host: str = "127.0.0.1", port: int = 0, threads: int = 32):
    """Serve a WSGI emulator from a background thread; returns (stop, base_url)."""
    from waitress.server import create_server

    from bot.web import run_in_thread

    server = create_server(emulator, host=host, port=port, threads=threads, ident="emulator",
                           channel_timeout=60, connection_limit=1000)
    return run_in_thread(server), f"http://{host}:{server.effective_port}"


def seed_demo(hub: HubEmulator) -> None:
    """Demo Spaces: some running, one crashed, one paused on paid hardware, one asleep, one static."""
    hub.add_space("acme/chat", variables={"MODEL": "gpt2"})
    hub.add_space("acme/gpu-demo", hardware="t4-medium", sleep=3600)
    hub.add_space("acme/broken", stage="RUNTIME_ERROR", hardware="t4-small",
                  error="CUDA out of memory. Tried to allocate 2.00 GiB")
    hub.build_logs["acme/broken"] = [
        "===== Build Queued at 2026-12-02 09:12:03 / Commit SHA: 3f2a1c9 =====",
        "--> FROM docker.io/library/python:3.11",
        "--> RUN pip install -r requirements.txt",
        "Successfully installed accelerate-1.2.0 gradio-5.9.1 torch-2.5.1 transformers-4.47.0",
        "--> Pushing image",
        "DONE 41.2s",
    ]
    hub.logs["acme/broken"] = [
        "===== Application Startup at 2026-12-02 09:13:10 =====",
        "Logging in to the Hub with HF_TOKEN=hf_demoAbCdEfGhIjKlMnOp",   # masked before it is shown
        "Loading model meta-llama/Llama-3.1-8B-Instruct...",
        "Traceback (most recent call last):",
        '  File "/home/user/app/app.py", line 12, in <module>',
        "    model = AutoModelForCausalLM.from_pretrained(MODEL).to(\"cuda\")",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ]
    hub.repos[("dataset", "acme/corpus")] = False
    hub.plans.add("acme")  # a PRO / Team plan: `/space dev acme/... on` works in the demo
    hub.add_space("acme/finetune", stage="PAUSED", hardware="a10g-large", sleep=7200)
    hub.add_space("acme/sketch", stage="SLEEPING")
    hub.add_space("acme/docs", sdk="static")


def settle(hub: HubEmulator) -> None:
    """What the real Hub does a little later: builds finish, requested hardware is applied."""
    with hub.lock:
        for space in hub.spaces.values():
            if space["stage"] in ("BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING"):
                space["stage"] = "RUNNING"
                space["current"] = space["requested"] or space["current"]
                space["errorMessage"] = None


def main() -> None:
    parser = argparse.ArgumentParser(description="Hub emulator for trying Space Ops without huggingface.co")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--token", default="hf_demo")
    parser.add_argument("--demo", action="store_true", help="seed a few Spaces (acme/chat, acme/gpu-demo, …)")
    args = parser.parse_args()
    hub = HubEmulator(token=args.token)
    if args.demo:
        seed_demo(hub)
    stop, base = serve(hub, port=args.port)
    print(f"Hub emulator on {base} (token {args.token}). Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
