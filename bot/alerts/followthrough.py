"""Command follow-through: the announcement of a change is posted by the bot and edited as the Space moves.

"@alice restarted acme/chat: now building." is posted with `chat.postMessage` (a `response_url` message
cannot be edited later), the Space becomes hot, and each hot read edits the message: "building… (1 min)",
then "running again after 2 min 13 s", or "crashed after 40 s: CUDA out of memory" with the last log
lines and a Restart button. It stops after 30 min ("still building after 30 min: stuck?", or "could not
read it" when no read came lately). A channel that watches the Space and is the channel of the change gets
no second message for a transition the announcement reports (`reports`): both the hot reads and the batched
poll feed the announcement, so a starved hot budget delays its edits by one poll interval, never hides them.
A record ends on the outcome, when a later change to the Space takes over, 30 min after the change (swept
on every poll tick), and at the latest when Redis expires the whole hash (`FOLLOW_KEEP`), whatever runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from typing import Callable

import redis

from bot.alerts import words
from bot.alerts.hot import GRACE, HotSet
from bot.alerts.transitions import ERRORS, STARTING, WITH_LOGS, Alert, Observation
from bot.core.clock import Clock
from bot.core.deliver import SLACK_FAILURES, Deliveries
from bot.core.permissions import Actor
from bot.core.store import REDIS_ERRORS, key
from bot.core.words import Reply

log = logging.getLogger(__name__)

FOLLOWS = key("{poll}", "follows")  # hash space → Follow json
FOLLOW_FOR = 30 * 60
FOLLOW_KEEP = 2 * FOLLOW_FOR   # Redis drops the hash this long after the last record written (no tick needed)
UNREAD = 5 * 60                # a last read older than this at the end: "could not read", never "stuck?"
EDIT_OP = "follow.edit"
# The changes whose effect shows in the Space's stage (a sleep time or a removed key does not restart it).
FOLLOWED = frozenset({"restart", "resume", "hw", "var.set", "secret.set", "duplicate"})
HEATED = FOLLOWED | {"sleep"}
POST_BUDGET = 2.0  # seconds the announcement may take (a dropped answer is looked for, then it is known)
# Update or end a record only while it is still the same announcement (its ts): a read that loaded it just
# before a later change took over neither overwrites nor ends the later one. KEYS: follows.
# ARGV: space, ts, new json ('' = end it), seconds the hash is kept.
_SAME = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local ok, data = pcall(cjson.decode, cur)
if not ok or type(data) ~= 'table' or tostring(data['ts']) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Follow:
    space: str
    channel: str
    ts: str
    text: str
    started: float
    stage: str = ""        # last stage seen
    status: str = ""       # last status line shown
    moved: bool = False    # seen in a transitional stage since the change
    read: float = 0.0      # when the last read of the Space came (0: none yet)
    hardware: str = ""     # an approved hardware move: followed until it runs on this flavor
    v: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, space: str, raw: str | None) -> "Follow | None":
        try:
            data = json.loads(raw or "")
            return cls(space=space, channel=str(data["channel"]), ts=str(data["ts"]), text=str(data["text"]),
                       started=float(data["started"]), stage=str(data.get("stage") or ""),
                       status=str(data.get("status") or ""), moved=bool(data.get("moved")),
                       read=float(data.get("read") or 0.0), hardware=str(data.get("hardware") or ""))
        except (ValueError, TypeError, KeyError):
            return None


def reports(follow: Follow, alert: Alert) -> bool:
    """True when the announcement itself reports this alert: a stage change seen while it is followed (every
    read of a followed Space reaches `FollowThrough.observed`, which shows or ends on each stage)."""
    return alert.kind == "transition" and follow.started <= alert.at < follow.started + FOLLOW_FOR


class FollowThrough:
    """Implements the commands' change listener; listens to hot reads; tells the outbox what to skip."""

    def __init__(self, client: redis.Redis, deliveries: Deliveries, hot: HotSet, hub_url: str,
                 log_lines: Callable[[str, bool], tuple[str, ...] | None] | None = None,
                 clock: Callable[[], float] | None = None, later: Callable[[str, str, str, str], None] | None = None,
                 reveals: Callable[[str, str], bool] | None = None):
        self.redis = client
        self.deliveries = deliveries
        self.hot = hot
        self.hub_url = hub_url
        self.log_lines = log_lines
        self.clock = clock or Clock(client)  # Redis's: the leader compares follow records' times
        # Edits go through the outbox (`later(delivery_id, channel, op, payload)`): Slack's pace, retried on
        # 429/5xx, each once. Without one (a bare FollowThrough), they are made at once.
        self.later = later
        # Whether a Space's private details (error text, log lines) may be shown in a channel: the gate's
        # answer (bot/access); wired in bot/app.py. Asked at the moment the details would be shown.
        self.reveals = reveals or (lambda space, channel: True)
        self._same = client.register_script(_SAME)

    # ------------------------------------------------------------------ from the commands

    def changed(self, name: str, space: str, actor: Actor, reply: Reply) -> Reply:
        """A change went through: heat the Space and, for changes that move it, post the announcement
        ourselves so it can be edited. If Slack refuses the post, the reply goes the usual way."""
        now = self.clock()
        if name not in HEATED or not space:
            return reply
        try:
            self.hot.heat(space, now, name)
        except REDIS_ERRORS as err:
            # The change went through; without Redis it is simply not followed (the reply stays true).
            log.warning("change to %s not followed: Redis unreachable (%s)", space, type(err).__name__)
            return reply
        if name not in FOLLOWED or not actor.channel or not reply.public:
            return reply
        try:
            # Named by the change (its Space, what, by whom, when): a retry after a lost answer finds it.
            ts = self.deliveries.now(f"follow:{space}:{name}:{actor.user}:{now!r}>{actor.channel}", actor.channel,
                                     reply.text, reply.blocks, budget=POST_BUDGET)
        except SLACK_FAILURES as err:
            log.info("follow-through not posted in %s (%s); answering through response_url", actor.channel,
                     type(err).__name__)
            return reply
        if ts is None:
            return reply  # another replica holds this very announcement (cannot happen twice for one change)
        try:
            earlier = self.get(space)
            if earlier is not None and earlier.ts != ts:
                # A later change takes over: the earlier announcement ends saying where it is followed now.
                self._edit(earlier, words.follow_superseded(actor.channel, earlier.channel == actor.channel))
            self._store(Follow(space, actor.channel, ts, reply.text, now))
        except REDIS_ERRORS as err:
            log.warning("change to %s announced but not followed: Redis unreachable (%s)", space,
                        type(err).__name__)
        return replace(reply, posted=True)

    def follow_applied(self, space: str, channel: str, ts: str, text: str, flavor: str) -> None:
        """An approved hardware move was announced (the thread note at `ts`): edit it as the Space moves, like
        a restart's announcement, until it runs on `flavor` (never fails the approval)."""
        try:
            earlier = self.get(space)
            if earlier is not None and earlier.ts != ts:
                self._edit(earlier, words.follow_superseded(channel, earlier.channel == channel))
            self._store(Follow(space, channel, ts, text, self.clock(), hardware=flavor))
        except REDIS_ERRORS as err:
            log.warning("approved move of %s not followed: Redis unreachable (%s)", space, type(err).__name__)

    def heat_applied(self, space: str) -> None:
        """An approved change was applied: read the Space often (never fails the approval)."""
        try:
            self.hot.heat(space, self.clock(), "hw")
        except REDIS_ERRORS as err:
            log.warning("approved change to %s not read often: Redis unreachable (%s)", space, type(err).__name__)

    # ------------------------------------------------------------------ from hot reads

    def get(self, space: str) -> Follow | None:
        return Follow.decode(space, self.redis.hget(FOLLOWS, space))

    def observed(self, result: Observation | str, space: str, now: float) -> None:
        """A hot read of one Space."""
        follow = self.get(space)
        if follow is not None:
            self._observe(follow, result, now)

    def observed_all(self, results: dict[str, Observation | str], now: float) -> None:
        """The reads of a batched poll cycle, and the sweep of the others: one Redis read for both."""
        self._sweep(now, results)

    def _observe(self, follow: Follow, result: Observation | str, now: float) -> None:
        if not isinstance(result, Observation) or now < follow.read:
            return
        stage, elapsed = result.stage, now - follow.started
        moved = follow.moved or stage in STARTING or stage in ERRORS
        follow = replace(follow, read=now)
        if follow.hardware and stage not in ERRORS:
            status, last = words.follow_hardware_status(follow.hardware, stage, result.hardware, result.requested,
                                                        elapsed, stopped=elapsed >= FOLLOW_FOR)
            if last:
                self._finish(follow, status)
            else:
                self._show(replace(follow, stage=stage, moved=moved), status)
            return
        if elapsed >= FOLLOW_FOR:
            self._finish(follow, words.follow_status(stage, elapsed, moved, stopped=True))
        elif stage in STARTING:
            self._show(replace(follow, stage=stage, moved=True), words.follow_status(stage, elapsed, True))
        elif stage in ERRORS:
            if not self._reveals(follow.space, follow.channel):
                status = words.follow_status(stage, elapsed, True) + words.follow_hidden(follow.space)
                self._finish(follow, status, restart=True)
                return
            logs = self.log_lines(follow.space, stage == "BUILD_ERROR") \
                if self.log_lines and stage in WITH_LOGS else None
            self._finish(follow, words.follow_status(stage, elapsed, True, result.error), logs=logs, restart=True)
        elif follow.moved or elapsed >= GRACE or stage != "RUNNING":
            self._finish(follow, words.follow_status(stage, elapsed, follow.moved))
        else:
            self._show(replace(follow, stage=stage), follow.status)

    def _reveals(self, space: str, channel: str) -> bool:
        try:
            return bool(self.reveals(space, channel))
        except Exception:  # noqa: BLE001 — when it can't be told, private details stay hidden
            log.warning("could not tell whether %s's details may show in %s; hidden", space, channel, exc_info=True)
            return False

    def sweep(self, now: float) -> None:
        """Stop following after 30 min even when no read came (the budget ran low, the Hub was away); runs on
        every poll tick and hot tick. Without a recent read the last line says so instead of "stuck?"."""
        self._sweep(now, {})

    def _sweep(self, now: float, results: dict[str, Observation | str]) -> None:
        for space, raw in self.redis.hgetall(FOLLOWS).items():
            follow = Follow.decode(space, raw)
            if follow is None:
                self.redis.hdel(FOLLOWS, space)
                continue
            if isinstance(results.get(space), Observation):
                self._observe(follow, results[space], now)
                continue
            elapsed = now - follow.started
            if elapsed < FOLLOW_FOR:
                continue
            if follow.read and now - follow.read <= UNREAD:
                status = words.follow_status(follow.stage or "BUILDING", elapsed, follow.moved, stopped=True)
            else:
                status = words.follow_unread(follow.stage, elapsed, now - follow.read if follow.read else None)
            self._finish(follow, status)

    def _show(self, follow: Follow, status: str) -> None:
        """Keep what this read saw and, when the status line changed, edit the announcement (if still ours)."""
        shown = replace(follow, status=status) if status and status != follow.status else follow
        if self._keep(shown) and shown is not follow and not self._edit(follow, status):
            self._keep(follow)  # not edited: the next read tries again

    def _keep(self, follow: Follow) -> bool:
        return bool(self._same(keys=[FOLLOWS], args=[follow.space, follow.ts, follow.to_json(), int(FOLLOW_KEEP)]))

    def _store(self, follow: Follow) -> None:
        """A new announcement's record (it replaces whatever was followed for the Space)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(FOLLOWS, follow.space, follow.to_json())
        pipe.expire(FOLLOWS, int(FOLLOW_KEEP))
        pipe.execute()

    def deliver(self, channel: str, payload: str) -> None:
        """The outbox's `follow.edit` op (raises Slack's errors so the outbox retries)."""
        data = json.loads(payload)
        self.deliveries.update(channel, data["ts"], data["text"], data["blocks"])

    def _finish(self, follow: Follow, status: str, logs=None, restart: bool = False) -> None:
        """End the record if it is still this announcement's, then give the announcement its last line."""
        if self._same(keys=[FOLLOWS], args=[follow.space, follow.ts, "", int(FOLLOW_KEEP)]):
            self._edit(follow, status, logs, restart)

    def _edit(self, follow: Follow, status: str, logs=None, restart: bool = False) -> bool:
        reply = words.follow_message(follow.text, follow.space, status, self.hub_url, logs, restart)
        if self.later is not None:
            digest = hashlib.sha1(reply.text.encode()).hexdigest()[:12]
            self.later(f"follow:{follow.space}:{follow.ts}:{digest}", follow.channel, EDIT_OP,
                       json.dumps({"ts": follow.ts, "text": reply.text, "blocks": reply.blocks}))
            return True
        try:
            self.deliveries.update(follow.channel, follow.ts, reply.text, reply.blocks)
            return True
        except SLACK_FAILURES as err:
            log.warning("follow-through edit of %s in %s failed (%s)", follow.space, follow.channel,
                        type(err).__name__)
            return False

    # ------------------------------------------------------------------ for the outbox

    def covering(self, spaces: set[str]) -> Callable[[Alert, str], bool]:
        """`covers` for a batch of alerts about these Spaces: their follow-throughs read in one HMGET."""
        wanted = sorted(spaces)
        follows = dict(zip(wanted, self.redis.hmget(FOLLOWS, wanted))) if wanted else {}

        def covers(alert: Alert, channel: str) -> bool:
            if alert.kind != "transition":
                return False
            if alert.space not in follows:
                return self.covers(alert, channel)
            return _reported_in(Follow.decode(alert.space, follows[alert.space]), alert, channel)
        return covers

    def covers(self, alert: Alert, channel: str) -> bool:
        """True when this channel already sees this change in the follow-through message."""
        if alert.kind != "transition":
            return False
        return _reported_in(self.get(alert.space), alert, channel)


def _reported_in(follow: Follow | None, alert: Alert, channel: str) -> bool:
    """Whether this follow-through message, in this channel, already tells this alert's change."""
    return follow is not None and follow.channel == channel and reports(follow, alert)
