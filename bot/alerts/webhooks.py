"""Hub push webhooks: `POST /hub/webhook` makes a pushed Space hot at once, and alerts name the commit.

The Hub sends `repo.content` events with the secret in `X-Webhook-Secret` (compared in constant time),
`repo.name`, `repo.type`, `repo.headSha` and `updatedRefs` ([{"ref", "oldSha", "newSha"}]). A delivery
is checked, deduplicated in Redis (by Space and new commit) and answered at once: the only work is a
few Redis commands. Webhooks are a shortcut, not the source of truth: the batched read's `sha` still
notices a push whose webhook never came (and Socket Mode teams, without a public URL, rely on it).

Which commit an alert names: the short sha with a link to it, from the webhook or the `sha` read.
`HfApi.list_repo_commits` reads the whole history, one request per page, so a title and author would
cost the request budget per push in proportion to the Space's history (see docs/alerts.md); we do not call it.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass

import redis

from bot.alerts import words
from bot.alerts.hot import PUSHES, HotSet
from bot.core import hub
from bot.core.changes import Changes, Why
from bot.core.errors import BadInput, NotAllowed
from bot.core.permissions import declare, namespace_of
from bot.core.store import REDIS_ERRORS, key

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(self_checked={"webhook", "webhook.enable", "webhook.disable"})

MAX_WEBHOOK_BODY = 64 * 1024     # a repo.content payload is a few KB
SEEN_TTL = 7 * 86400
STATE = key("webhook", "state")   # hash: id, url, namespaces, by, at
MAIN_REFS = frozenset({"refs/heads/main"})


def seen_key(space: str, sha: str) -> str:
    return key("webhook", "seen", space, sha)


@dataclass(frozen=True)
class Push:
    space: str
    sha: str


class BadPayload(ValueError):
    """Not a Hub webhook body we understand."""


def parse_push(body: bytes) -> Push | None:
    """A push to a Space's main branch, None for any other event; BadPayload when it is not a Hub payload."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BadPayload("not JSON") from err
    if not isinstance(data, dict):
        raise BadPayload("not an object")
    event, repo = data.get("event"), data.get("repo")
    if not isinstance(event, dict) or not isinstance(repo, dict):
        raise BadPayload("no event or repo")
    if event.get("scope") != "repo.content" or repo.get("type") != "space":
        return None
    name = repo.get("name")
    if not isinstance(name, str) or name.count("/") != 1 or len(name) > 200:
        raise BadPayload("no Space name")
    refs = data.get("updatedRefs")
    if refs is not None and not isinstance(refs, list):
        raise BadPayload("updatedRefs is not a list")
    main = [r for r in refs or [] if isinstance(r, dict) and r.get("ref") in MAIN_REFS]
    if refs and not main:
        return None                   # a push to another branch (or a tag) does not rebuild the Space
    sha = (main[0].get("newSha") if main else None) or repo.get("headSha")
    if not isinstance(sha, str) or not sha.isalnum() or not 7 <= len(sha) <= 64:
        raise BadPayload("no commit")
    return Push(name, sha.lower())


def secret_status(given: str | None, expected: str) -> int | None:
    """None when the secret matches; else the HTTP status: 401 missing, 403 wrong (constant-time compare)."""
    if not given:
        return 401
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        return 403
    return None


class WebhookReceiver:
    """Checks and applies one delivery; returns (HTTP status, JSON body). Nothing changes unless it is
    authentic, well-formed, new and about a watched Space."""

    def __init__(self, client: redis.Redis, hot: HotSet, secret: str, is_watched):
        self.redis = client
        self.hot = hot
        self.secret = secret
        self.is_watched = is_watched

    def receive(self, secret_header: str | None, body: bytes, now: float) -> tuple[int, dict]:
        if not self.secret:
            return 404, {"error": "webhooks are not set up (SPACEOPS_HUB_WEBHOOK_SECRET)"}
        status = secret_status(secret_header, self.secret)
        if status:
            return status, {"error": "missing secret" if status == 401 else "wrong secret"}
        if len(body) > MAX_WEBHOOK_BODY:
            return 413, {"error": "body too large"}
        try:
            push = parse_push(body)
        except BadPayload as err:
            return 400, {"error": f"malformed payload: {err}"}
        if push is None:
            return 200, {"ok": True, "ignored": "not a push to a Space's main branch"}
        try:
            return self._apply(push, now)
        except REDIS_ERRORS as err:
            # Nothing was recorded: the Hub may deliver again, and the batched read sees the commit anyway.
            log.warning("push to %s not taken: Redis unreachable (%s)", push.space, type(err).__name__)
            return 503, {"error": "state store unreachable; try again"}

    def _apply(self, push: Push, now: float) -> tuple[int, dict]:
        if not self.redis.set(seen_key(push.space, push.sha), repr(now), nx=True, ex=SEEN_TTL):
            return 200, {"ok": True, "duplicate": True}
        if not self.is_watched(push.space):
            return 200, {"ok": True, "ignored": "not watched"}
        self.redis.hset(PUSHES, push.space, json.dumps({"sha": push.sha, "at": now}))
        self.hot.heat(push.space, now, "push", sha=push.sha)
        log.info("push to %s (%s): reading it every few seconds", push.space, push.sha[:7])
        return 200, {"ok": True, "hot": push.space}


class WebhookCommands:
    """`/space webhook [enable|disable]`: one Hub webhook for the watched namespaces, made with the bot's token."""

    def __init__(self, settings, api, records, watch_store, is_admin, changes: Changes | None = None,
                 require_admin=None):
        self.settings = settings
        self.api = api
        self.records = records          # bot.core.store.Store: audit trail and the Redis check
        # The one way a change reaches the Hub: audited before and after, with a deadline.
        self.changes = changes or Changes(api, records, None, 2 * settings.hub_timeout)
        self.watch_store = watch_store
        self.is_admin = is_admin
        # bot/access's (SPACEOPS_ROLES_FROM=hub|both: `admin` on the Hub in every namespace the webhook covers).
        self.require_admin = require_admin

    def _state(self) -> dict:
        return self.records.redis.hgetall(STATE)

    def _namespaces(self) -> list[str]:
        return sorted({namespace_of(w.target) for w in self.watch_store.load().watches})

    def show(self, cmd, actor):

        return words.webhook_state_reply(self._state(), bool(self.settings.public_url),
                                         bool(self.settings.hub_webhook_secret))

    def enable(self, cmd, actor):

        self._admin(actor, self._namespaces(), "setting up the Hub webhook for",
                    "Setting up the Hub webhook needs the admin role (SPACEOPS_ADMINS).")
        if not self.settings.public_url or not self.settings.hub_webhook_secret:
            raise BadInput("The Hub webhook needs SPACEOPS_PUBLIC_URL (where the Hub can reach this bot) and "
                           "SPACEOPS_HUB_WEBHOOK_SECRET. Without them (Socket Mode), pushes are noticed from the "
                           "commit in each poll.")
        namespaces = self._namespaces()
        if not namespaces:
            raise BadInput("Nothing is watched yet: watch a Space first (`/space watch acme/chat`).")
        self.records.require()
        old = self._state().get("id")
        whoami = hub.call(self.api.whoami)
        me = whoami.get("name") if isinstance(whoami, dict) else None
        watched = [{"type": "user" if ns == me else "org", "name": ns} for ns in namespaces]
        url = f"{self.settings.public_url}/hub/webhook"
        info = self.changes.add_webhook(Why(actor.user, "webhook.enable", {"namespaces": namespaces}), url, watched,
                                        ["repo"], self.settings.hub_webhook_secret)
        self.records.redis.hset(STATE, mapping={"id": info.id, "url": url, "namespaces": ",".join(namespaces),
                                                "by": actor.user})
        if old and old != info.id:
            self.changes.remove_webhook(Why(actor.user, "webhook.disable", {"replaced": old}), old)
        return words.webhook_enabled_reply(actor.user, url, namespaces)

    def disable(self, cmd, actor):

        covered = [n for n in (self._state().get("namespaces") or "").split(",") if n]
        self._admin(actor, covered, "removing the Hub webhook of",
                    "Removing the Hub webhook needs the admin role (SPACEOPS_ADMINS).")
        self.records.require()
        hook_id = self._state().get("id")
        if not hook_id:
            return words.webhook_state_reply({}, bool(self.settings.public_url),
                                             bool(self.settings.hub_webhook_secret))
        self.changes.remove_webhook(Why(actor.user, "webhook.disable"), hook_id)
        self.records.redis.delete(STATE)
        return words.webhook_disabled_reply(actor.user)

    def _admin(self, actor, namespaces: list[str], doing: str, refusal: str) -> None:
        if self.require_admin is not None:
            self.require_admin(actor.user, namespaces, f"{doing} {', '.join(namespaces) or 'no namespace'}", refusal)
        elif not self.is_admin(actor.user):
            raise NotAllowed(refusal)

    def commands(self):
        return {"webhook": self.show, "webhook.enable": self.enable, "webhook.disable": self.disable}
