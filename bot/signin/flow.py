"""`/space login`, `/space whoami`, `/space logout`, and the device flow's polling (RFC 8628, hub-api.md §13.2).

A sign-in in progress is one Redis record per Slack user (the code is bound to who asked: nobody else's
command or click reaches it), with the device code sealed by the vault, and an index of when each is
next polled. Every replica runs the poll every few seconds; a Redis claim per user makes one replica poll
a given code at a time, and the state being in Redis lets a sign-in survive a restart. Time is Redis's
(`store.clock`).

The completion is taken once: the record is deleted by compare-and-delete on its id, and only the caller
that deleted it writes the link. A replayed or late completion (the user signed out, or ran a new
`/space login`, or Redis lost the record) finds nothing and does nothing; the Hub's device code is single
use too. The link and the refresh token are written only after the roles were read: a sign-in that fails
on the way leaves nothing half-linked.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Callable

from bot.commands.grammar import Command
from bot.core.deliver import SLACK_FAILURES, Deliveries
from bot.core.errors import StateUnavailable
from bot.core.jobs import Deadline, Jobs
from bot.core.permissions import Actor, declare
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store, key
from bot.core.words import Reply, error_reply, section
from bot.signin import words
from bot.signin.links import HubLink, Links
from bot.signin.oauth import Grant, HubOAuth, Identity, OAuthUnavailable
from bot.signin.vault import Vault

log = logging.getLogger(__name__)
# Signing in, out and looking at one's own link touch no Space: like help, the gate asks only that the member
# is of this workspace (an unlinked member under SPACEOPS_UNLINKED=none must still be able to sign in).
declare(anyone={"login", "whoami", "logout", "login.check"})
VERSION = 1
PENDING = key("{signin}", "pending")       # zset: Slack user → when their code is next polled
CLAIM_SECONDS = 90                          # longer than one poll can take (token + 2 userinfo, each a deadline)
PER_TICK = 20                               # codes polled per tick at most (the rest wait for the next)
SLOW_DOWN = 5                               # RFC 8628: slow_down adds 5 s to the interval
DONE_SECONDS = 3600                         # a finished flow's marker: tells "finished" from "lost"
IDENTITY_TRIES = 2
POLL_EVERY = 2                              # seconds between the scheduler's polls of what is due

# Delete the flow record if it is still the one with this id, and drop it from the pending index.
_TAKE = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, flow = pcall(cjson.decode, cur)
if not ok or flow['id'] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[3]))
return 1
"""


def flow_key(slack_user: str) -> str:
    return key("{signin}", "flow", slack_user)


def claim_key(slack_user: str) -> str:
    return key("{signin}", "claim", slack_user)


def done_key(flow_id: str) -> str:
    return key("{signin}", "done", flow_id)


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress (Redis-clock seconds); `sealed` is the device code, sealed by the vault."""

    id: str
    slack_user: str
    user_code: str
    uri: str
    sealed: str
    interval: int
    expires_at: float
    started_at: float
    next_poll: float
    last_poll: float = 0.0
    channel: str = ""
    version: int = VERSION

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, raw) -> Flow | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(id=str(data["id"]), slack_user=str(data["slack_user"]), user_code=str(data["user_code"]),
                       uri=str(data.get("uri") or ""), sealed=str(data["sealed"]),
                       interval=max(1, int(data.get("interval") or 5)), expires_at=float(data["expires_at"]),
                       started_at=float(data.get("started_at") or 0), next_poll=float(data.get("next_poll") or 0),
                       last_poll=float(data.get("last_poll") or 0), channel=str(data.get("channel") or ""),
                       version=int(data.get("version") or VERSION))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("a sign-in record could not be read (%s): it counts as none", type(err).__name__)
            return None


class SignIn:
    """The sign-in commands and the device-code poll. `links` is what the access gate reads."""

    def __init__(self, settings: Settings, store: Store, deliveries: Deliveries, links: Links | None = None,
                 vault: Vault | None = None, oauth: HubOAuth | None = None):
        self.settings = settings
        self.store = store
        self.redis = store.redis
        self.clock: Callable[[], float] = store.clock
        self.deliveries = deliveries
        self.links = links or Links(store.redis)
        self.enabled = settings.signin_enabled
        self.vault = vault or (Vault(settings.secret_keys, store.redis) if settings.secret_keys else None)
        self.oauth = oauth or HubOAuth(settings.hf_endpoint, settings.hub_oauth_client_id, settings.hub_timeout)
        self._take = store.redis.register_script(_TAKE)
        self.owner = secrets.token_hex(8)
        # Sign-ins this process started and has not seen end: one whose record vanished without its done
        # marker was lost with Redis, and its user is told to start again.
        self._started: dict[str, tuple[str, float]] = {}
        # The poll runs on every replica's scheduler every POLL_EVERY s, in the guard of bot/core/jobs.py.
        self.jobs = Jobs()
        self.jobs.add("signin-poll", lambda now, leading, deadline: self.tick(now, deadline), deadline=20.0,
                      takes_lease=True)

    def scheduled(self) -> None:
        """The scheduler's call: a claim per code, not the poll lease, keeps replicas apart."""
        self.jobs.run_tick(self.clock(), lambda: True)

    def commands(self) -> dict:
        return {"login": self.login, "whoami": self.whoami, "logout": self.logout,
                "login.check": lambda cmd, actor: self.check(actor, cmd.request_id or "")}

    # ------------------------------------------------------------------ records

    def flow(self, slack_user: str) -> Flow | None:
        return Flow.decode(self.redis.get(flow_key(slack_user)))

    def _save(self, flow: Flow, new: bool = False) -> bool:
        """Write the record and its place in the poll index: a new one only if the user has none (two
        `/space login` at once keep one code), an update only if it still exists (not signed out meanwhile)."""
        ttl = max(1, int(flow.expires_at - self.clock()) + 60)
        if not self.redis.set(flow_key(flow.slack_user), flow.encode(), ex=ttl, nx=new, xx=not new):
            return False
        self.redis.zadd(PENDING, {flow.slack_user: flow.next_poll})
        return True

    def _claim(self, slack_user: str) -> bool:
        return bool(self.redis.set(claim_key(slack_user), self.owner, nx=True, ex=CLAIM_SECONDS))

    def _release(self, slack_user: str) -> None:
        try:
            if self.redis.get(claim_key(slack_user)) == self.owner:
                self.redis.delete(claim_key(slack_user))
        except REDIS_ERRORS:
            pass  # it expires by itself

    # ------------------------------------------------------------------ commands

    def login(self, cmd: Command, actor: Actor) -> Reply:
        if not self.enabled:
            return error_reply(words.NOT_SET_UP)
        self.store.require()
        now = self.clock()
        live = self.flow(actor.user)
        if live is not None and live.expires_at > now:
            return words.code_reply(live.user_code, live.uri, live.expires_at, now, live.id, again=True)
        try:
            started = self.oauth.device_code()
        except OAuthUnavailable as err:
            log.warning("sign-in not started for %s: the Hub's /oauth/device failed (%s)", actor.user, err.reason)
            self.store.audit(actor.user, "signin.start", "", {}, result=f"failed: {err.reason}", per_space=False)
            return words.hub_unreachable(err.reason)
        now = self.clock()
        flow = Flow(id=secrets.token_urlsafe(12), slack_user=actor.user, user_code=started.user_code,
                    uri=started.uri, sealed=self.vault.seal(started.device_code, actor.user, "device"),
                    interval=started.interval, expires_at=now + started.expires_in, started_at=now,
                    next_poll=now + started.interval, channel=actor.channel)
        if live is not None:
            self.redis.delete(flow_key(actor.user))  # an expired one: replaced
        if not self._save(flow, new=True):
            # Two `/space login` at once: the other one's code stands, and this one's is never polled.
            other = self.flow(actor.user)
            if other is not None:
                return words.code_reply(other.user_code, other.uri, other.expires_at, now, other.id, again=True)
            raise StateUnavailable("The sign-in could not be saved (database busy); try `/space login` again.")
        self._started[actor.user] = (flow.id, flow.expires_at)
        self.store.audit(actor.user, "signin.start", "", {"expires_in": started.expires_in}, per_space=False)
        return words.code_reply(flow.user_code, flow.uri, flow.expires_at, now, flow.id, again=False)

    def whoami(self, cmd: Command, actor: Actor) -> Reply:
        link = self.links.get(actor.user)
        next_refresh = None
        if link is not None and link.refreshable:
            next_refresh = link.roles_at + self.settings.hub_roles_ttl
        return words.whoami_reply(actor.user, link, self.clock(), next_refresh, self.settings.roles_from)

    def logout(self, cmd: Command, actor: Actor) -> Reply:
        self.store.require()
        link = self.links.get(actor.user)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(flow_key(actor.user))
        pipe.zrem(PENDING, actor.user)
        pipe.execute()
        self._started.pop(actor.user, None)
        self.links.forget(actor.user)
        if self.vault is not None:
            self.vault.forget(actor.user)
        self.store.audit(actor.user, "signin.logout", "", {"hub_user": link.hub_user if link else ""},
                         per_space=False)
        return words.logout_reply(link.hub_user if link else None)

    def check(self, actor: Actor, flow_id: str) -> Reply:
        """The "I've approved it" button: poll now, for the user who asked for this very code only."""
        if not self.enabled:
            return error_reply(words.NOT_SET_UP)
        flow = self.flow(actor.user)
        if flow is None or not flow_id or not secrets.compare_digest(flow.id, flow_id):
            self.store.audit(actor.user, "signin.check", "", {}, result="refused: not their sign-in", per_space=False)
            return words.not_yours()
        now = self.clock()
        if now - flow.last_poll < flow.interval:
            return words.still_waiting(flow.user_code)  # polled moments ago: sooner would earn a slow_down
        if not self._claim(actor.user):
            return words.still_waiting(flow.user_code)
        try:
            outcome = self._poll(flow, now)
        finally:
            self._release(actor.user)
        return words.done_elsewhere() if outcome != "pending" else words.still_waiting(flow.user_code)

    # ------------------------------------------------------------------ the poll

    def tick(self, now: float | None = None, deadline: Deadline | None = None) -> int:
        """Poll every code that is due (those another replica holds wait); returns how many were polled.
        One code's failure is logged and the others go on."""
        now = self.clock() if now is None else now
        self._notice_lost(now)
        if not self.enabled:
            return 0
        polled = 0
        for raw in self.redis.zrangebyscore(PENDING, "-inf", now, start=0, num=PER_TICK):
            slack_user = raw.decode() if isinstance(raw, bytes) else raw
            if deadline is not None and deadline.passed():
                break
            if not self._claim(slack_user):
                continue
            try:
                flow = self.flow(slack_user)
                if flow is None:
                    self.redis.zrem(PENDING, slack_user)  # ended, or lost: nothing to poll
                    continue
                self._poll(flow, now)
                polled += 1
            except (*REDIS_ERRORS, *SLACK_FAILURES) as err:
                log.warning("sign-in poll for %s failed (%s); tried again next tick", slack_user, type(err).__name__)
            finally:
                self._release(slack_user)
        return polled

    def _poll(self, flow: Flow, now: float) -> str:
        """One token request for `flow` (the claim is held); acts on the answer and returns its kind."""
        if now >= flow.expires_at:
            self._end(flow, "expired")
            return "expired"
        device_code = self.vault.open(flow.sealed, flow.slack_user, "device")
        if device_code is None:
            self._end(flow, "lost")
            return "lost"
        grant = self.oauth.poll(device_code)
        if grant.kind in ("pending", "slow_down", "inconclusive"):
            interval = flow.interval + (SLOW_DOWN if grant.kind == "slow_down" else 0)
            if grant.kind == "inconclusive":
                log.info("sign-in poll for %s inconclusive (%s); polling on until the code expires",
                         flow.slack_user, grant.detail)
            self._save(Flow(**{**asdict(flow), "interval": interval, "last_poll": now, "next_poll": now + interval}))
            return "pending"
        if grant.kind != "granted":
            self._end(flow, grant.kind, grant.detail)
            return grant.kind
        return self._complete(flow, grant)

    def _identity(self, grant: Grant) -> Identity | str:
        reason = ""
        for _ in range(IDENTITY_TRIES):
            try:
                return self.oauth.identity(grant.access_token)
            except OAuthUnavailable as err:
                reason = err.reason
        return reason

    def _complete(self, flow: Flow, grant: Grant) -> str:
        identity = self._identity(grant)  # the access token is used here and then dropped (bot.signin.vault)
        if not self._take(keys=[flow_key(flow.slack_user), PENDING, done_key(flow.id)],
                          args=[flow.id, flow.slack_user, DONE_SECONDS]):
            log.info("sign-in of %s completed after it ended (signed out or started again): nothing linked",
                     flow.slack_user)
            return "ended"
        self._started.pop(flow.slack_user, None)
        if isinstance(identity, str):
            self.store.audit(flow.slack_user, "signin.link", "", {}, result=f"failed: roles unreadable ({identity})",
                             per_space=False)
            self._say(flow, "unreadable", words.ended_text("unreadable", identity))
            return "unreadable"
        now = self.clock()
        before = self.links.get(flow.slack_user)
        refreshable = bool(grant.refresh_token)
        link = HubLink(slack_user=flow.slack_user, hub_user=identity.hub_user, orgs=dict(identity.orgs),
                       restricted=identity.restricted, linked_at=now, roles_at=now,
                       expires_at=0.0 if refreshable else now + self.settings.hub_link_days * 86400,
                       refreshable=refreshable)
        try:
            if refreshable:
                self.vault.put_refresh(flow.slack_user, grant.refresh_token)
            else:
                self.vault.forget(flow.slack_user)
            self.links.put(link)
        except REDIS_ERRORS:
            self._undo(flow.slack_user)
            raise
        shared = sorted(u for u in self.links.all_users() if u != flow.slack_user
                        and getattr(self.links.get(u), "hub_user", "").lower() == identity.hub_user.lower())
        self.store.audit(flow.slack_user, "signin.link", "", {
            "hub_user": identity.hub_user, "orgs": dict(sorted(identity.orgs.items())),
            "restricted": list(identity.restricted), "refreshable": refreshable,
            **({"also_linked": sorted(shared)} if shared else {})}, per_space=False)
        self._say(flow, "linked", words.linked_text(identity.hub_user, identity.orgs, identity.restricted,
                                                    relinked=before is not None))
        return "linked"

    def _undo(self, slack_user: str) -> None:
        try:
            self.links.forget(slack_user)
            self.vault.forget(slack_user)
        except REDIS_ERRORS:
            log.error("a half-written Hub link of %s could not be removed (Redis unreachable)", slack_user)

    def _end(self, flow: Flow, kind: str, detail: str = "") -> None:
        if not self._take(keys=[flow_key(flow.slack_user), PENDING, done_key(flow.id)],
                          args=[flow.id, flow.slack_user, DONE_SECONDS]):
            return
        self._started.pop(flow.slack_user, None)
        self.store.audit(flow.slack_user, "signin.link", "", {}, result=f"ended: {kind}"
                         + (f" ({detail})" if detail and detail != kind else ""), per_space=False)
        self._say(flow, kind, words.ended_text(kind, detail))

    def _say(self, flow: Flow, kind: str, text: str) -> None:
        """A DM to the user who signed in (the one way out to Slack, once per flow and outcome)."""
        self.deliveries.send(f"signin:{flow.id}:{kind}", flow.slack_user, text, [section(text)])

    def _notice_lost(self, now: float) -> None:
        """Sign-ins this process started whose record is gone without a done marker: lost with Redis."""
        for slack_user, (flow_id, expires_at) in list(self._started.items()):
            try:
                current = self.flow(slack_user)
                if current is not None and current.id == flow_id:
                    continue
                if current is not None or self.redis.exists(done_key(flow_id)) or now >= expires_at:
                    self._started.pop(slack_user, None)
                    continue
            except REDIS_ERRORS:
                return  # Redis away: look again when it answers
            self._started.pop(slack_user, None)
            log.warning("the sign-in in progress of %s was lost (its record vanished); they are asked to start again",
                        slack_user)
            self.store.audit(slack_user, "signin.link", "", {}, result="ended: lost", per_space=False)
            text = words.ended_text("lost")
            self.deliveries.send(f"signin:{flow_id}:lost", slack_user, text, [section(text)])
