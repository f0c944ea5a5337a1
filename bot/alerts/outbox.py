"""Delivery of decided alerts: a Redis stream drained at Slack's pace, each entry delivered once.

Entries are fanned out per channel when enqueued (watch filters and mutes apply then) and carry a
delivery id; a delivered id is remembered, so a retried or re-enqueued entry never posts twice.
An incident (a Space leaving RUNNING) is one message with the rest in its thread; the first message
is edited when the Space recovers.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Callable

import redis
from slack_sdk.errors import SlackApiError

from bot.alerts import words
from bot.alerts.transitions import Alert
from bot.alerts.watches import WatchSet, WatchStore, covers
from bot.core.slack import retry_after
from bot.core.store import key

log = logging.getLogger(__name__)

STREAM = key("{outbox}", "stream")
THREADS = key("{outbox}", "threads")  # hash "channel|space" → {"ts", "text", "blocks", "incident"}
DONE_TTL = 7 * 86400
STREAM_MAXLEN = 100_000


def done_key(delivery_id: str) -> str:
    return key("{outbox}", "done", delivery_id)


@dataclass
class Bucket:
    tokens: float
    at: float


class Outbox:
    """`enqueue` from the poller; `drain(now)` from the scheduler (leader only)."""

    def __init__(self, client: redis.Redis, poster, watch_store: WatchStore, hub_url: str,
                 per_second: float = 1.0, burst: float = 3.0):
        self.redis = client
        self.poster = poster
        self.watch_store = watch_store
        self.hub_url = hub_url
        self.per_second = per_second
        self.burst = burst
        self.buckets: dict[str, Bucket] = {}
        self.blocked_until: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        # Other features' deliveries (op → deliver(channel, payload)), e.g. approval message edits that
        # failed when first tried; registered by every replica, since the leader drains for all.
        self.handlers: dict[str, Callable[[str, str], None]] = {}
        # A channel that already sees this change another way (the command's follow-through message).
        self.skip: Callable[[Alert, str], bool] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ enqueue

    def _add(self, pipe, delivery_id: str, channel: str, op: str, payload: str) -> None:
        pipe.xadd(STREAM, {"id": delivery_id, "channel": channel, "op": op, "payload": payload},
                  maxlen=STREAM_MAXLEN, approximate=True)

    def _audience(self, alert: Alert, watches: WatchSet, mutes: dict) -> list[str]:
        """Channels that get this alert now; muted ones count it for the line when the mute ends."""
        channels: dict[str, bool] = {}
        for watch in watches.for_space(alert.space):
            channels[watch.channel] = channels.get(watch.channel, False) or alert.matches(watch.only)
        audience = []
        for channel, wanted in channels.items():
            if not wanted or (self.skip is not None and self.skip(alert, channel)):
                continue
            mute = next(((chan, target) for (chan, target), until in mutes.items()
                         if chan == channel and until > alert.at and covers(target, alert.space)), None)
            if mute:
                self.watch_store.hold_back(mute[0], mute[1], alert.to_json())
                continue
            audience.append(channel)
        return audience

    def enqueue(self, alerts: list[Alert], watches: WatchSet) -> int:
        mutes = self.watch_store.mutes()
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for alert in alerts:
            for channel in self._audience(alert, watches, mutes):
                self._add(pipe, f"{alert.id}>{channel}", channel, "post", alert.to_json())
                if alert.closes:
                    self._add(pipe, f"{alert.id}>{channel}>edit", channel, "edit", alert.to_json())
                count += 1
        pipe.execute()
        return count

    def redeliver(self, alerts: list[Alert]) -> int:
        """Enqueue alerts again (a leader died between deciding and enqueueing); delivery ids dedupe."""
        return self.enqueue(alerts, self.watch_store.load())

    def enqueue_summary(self, alerts: list[Alert], watches: WatchSet, gap: float, now: float) -> int:
        """After downtime: one message per channel listing what changed meanwhile."""
        mutes = self.watch_store.mutes()
        per_channel: dict[str, list[Alert]] = {}
        edits: list[tuple[str, Alert]] = []
        for alert in alerts:
            for channel in self._audience(alert, watches, mutes):
                per_channel.setdefault(channel, []).append(alert)
                if alert.closes:
                    edits.append((channel, alert))
        pipe = self.redis.pipeline(transaction=False)
        for channel, items in per_channel.items():
            payload = json.dumps({"gap": gap, "alerts": [a.to_json() for a in items]})
            self._add(pipe, f"summary:{int(now * 1000)}>{channel}", channel, "summary", payload)
        for channel, alert in edits:
            self._add(pipe, f"{alert.id}>{channel}>edit", channel, "edit", alert.to_json())
        pipe.execute()
        return len(per_channel)

    def enqueue_mute_end(self, channel: str, target: str, count: int, latest: str | None, now: float) -> None:
        payload = json.dumps({"target": target, "count": count, "latest": latest})
        pipe = self.redis.pipeline(transaction=False)
        self._add(pipe, f"unmuted:{target}:{int(now * 1000)}>{channel}", channel, "line", payload)
        pipe.execute()

    def enqueue_one(self, delivery_id: str, channel: str, op: str, payload: str) -> None:
        """Queue one delivery for a registered handler op; delivered once however often it is queued."""
        pipe = self.redis.pipeline(transaction=False)
        self._add(pipe, delivery_id, channel, op, payload)
        pipe.execute()

    def pending(self) -> int:
        return self.redis.xlen(STREAM)

    # ------------------------------------------------------------------ drain

    def _take(self, channel: str, now: float) -> bool:
        """About one message per second per channel, with a short burst (Slack's chat.postMessage tier)."""
        bucket = self.buckets.get(channel) or Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.per_second)
        bucket.at = now
        self.buckets[channel] = bucket
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def drain(self, now: float, limit: int = 500) -> int:
        """Deliver what Slack's pace allows now, oldest first; a channel that must wait keeps its order."""
        with self._lock:
            delivered = 0
            waiting: set[str] = set()
            for entry_id, fields in self.redis.xrange(STREAM, count=limit):
                channel, delivery_id = fields["channel"], fields["id"]
                if channel in waiting:
                    continue
                if self.redis.exists(done_key(delivery_id)):
                    self.redis.xdel(STREAM, entry_id)
                    continue
                if self.blocked_until.get(channel, 0) > now or not self._take(channel, now):
                    waiting.add(channel)
                    continue
                if not self._attempt(fields, now):
                    waiting.add(channel)
                    continue
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(done_key(delivery_id), "1", ex=DONE_TTL)
                pipe.xdel(STREAM, entry_id)
                pipe.execute()
                self.attempts.pop(delivery_id, None)
                delivered += 1
            return delivered

    def _attempt(self, fields: dict, now: float) -> bool:
        """True when delivered (or undeliverable for good); False to retry later."""
        channel, delivery_id = fields["channel"], fields["id"]
        try:
            self._deliver(fields["op"], channel, fields["payload"])
            return True
        except (SlackApiError, OSError) as err:
            wait = retry_after(err)
            if wait is None:
                log.error("alert %s to %s dropped: Slack said %s", delivery_id, channel, _slack_error(err))
                return True
            if getattr(getattr(err, "response", None), "status_code", 0) == 429:
                self.blocked_until[channel] = now + wait
                log.warning("Slack rate limit for %s: retrying in %.0f s", channel, wait)
                return False
            return self._backoff(channel, delivery_id, now, _slack_error(err))

    def _backoff(self, channel: str, delivery_id: str, now: float, why: str) -> bool:
        tries = self.attempts.get(delivery_id, 0) + 1
        self.attempts[delivery_id] = tries
        wait = min(300.0, 2.0 ** tries)
        self.blocked_until[channel] = now + wait
        log.warning("alert %s to %s not delivered (%s), attempt %d; next in %.0f s", delivery_id, channel, why,
                    tries, wait)
        return False

    def _deliver(self, op: str, channel: str, payload: str) -> None:
        if op in self.handlers:
            self.handlers[op](channel, payload)
            return
        if op == "summary":
            data = json.loads(payload)
            alerts = [Alert.from_json(a) for a in data["alerts"]]
            reply = words.downtime_summary(alerts, self.hub_url, data["gap"])
            ts = self.poster.post(channel, reply.text, reply.blocks)
            for alert in alerts:
                if alert.incident is not None and not alert.closes:
                    # An incident that began during the outage continues in the summary's thread; the
                    # summary itself is not edited on recovery (it speaks of other Spaces too).
                    self.redis.hset(THREADS, f"{channel}|{alert.space}",
                                    json.dumps({"ts": ts, "incident": alert.incident, "summary": True}))
            return
        if op == "line":
            data = json.loads(payload)
            latest = words.alert_line(Alert.from_json(data["latest"]), self.hub_url) if data["latest"] else "?"
            reply = words.mute_ended_message(data["target"], data["count"], latest, self.hub_url)
            self.poster.post(channel, reply.text, reply.blocks)
            return
        alert = Alert.from_json(payload)
        thread_field = f"{channel}|{alert.space}"
        root = _root(self.redis.hget(THREADS, thread_field), alert.incident)
        if op == "edit":
            if root and not root.get("summary"):
                reply = words.recovered_message(root["text"], root["blocks"], alert.incident or alert.at, alert.at)
                self.poster.update(channel, root["ts"], reply.text, reply.blocks)
                self.redis.hdel(THREADS, thread_field)
            return
        reply = words.alert_message(alert, self.hub_url)
        if root and not alert.opens:
            self.poster.post(channel, reply.text, reply.blocks, thread_ts=root["ts"])
            return
        ts = self.poster.post(channel, reply.text, reply.blocks)
        if alert.incident is not None and not alert.closes:
            # The first alert of an incident this channel hears about becomes its thread.
            self.redis.hset(THREADS, thread_field, json.dumps({"ts": ts, "text": reply.text, "blocks": reply.blocks,
                                                                "incident": alert.incident}))


def _root(raw: str | None, incident: float | None) -> dict | None:
    if not raw or incident is None:
        return None
    root = json.loads(raw)
    return root if root.get("incident") == incident else None


def _slack_error(err: Exception) -> str:
    """Short words for a log line: "HTTP 503 internal_error", or the network error's name."""
    if isinstance(err, SlackApiError):
        error = (err.response.get("error") if hasattr(err.response, "get") else None) or ""
        return f"HTTP {getattr(err.response, 'status_code', 0)} {error}".strip()
    return type(err).__name__
