"""Delivery of decided alerts: a Redis stream drained at Slack's pace, each entry delivered once.

Entries are fanned out per channel when enqueued (watch filters and mutes apply then) and carry a
delivery id; a delivered id is remembered, so a retried or re-enqueued entry never posts twice.
An incident (a Space leaving RUNNING) is one message with the rest in its thread; the first message
is edited when the Space recovers.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from dataclasses import dataclass
from typing import Callable

import redis
from slack_sdk.errors import SlackApiError

from bot.alerts import words
from bot.alerts.transitions import Alert, Unreadable
from bot.alerts.watches import WatchSet, WatchStore, covers
from bot.core import metrics
from bot.core.clock import Clock
from bot.core.deliver import (CLAIM_TTL, DONE, DONE_TTL, POST_OP, STREAM, UPDATE_OP, Deliveries, done_key,
                              slack_error as _slack_error)
from bot.core.slack import retry_after
from bot.core.store import key

log = logging.getLogger(__name__)

THREADS = key("{outbox}", "threads")  # hash "channel|space" → {"ts", "text", "blocks", "incident"}
DEAD = key("{outbox}", "dead")        # entries that could not be delivered, with the reason
DEAD_COUNT = key("{outbox}", "dead_count")
TRIES = key("{outbox}", "tries")      # hash delivery id → failed attempts of an entry that raised
DEAD_MAXLEN = 10_000
MAX_TRIES = 4                         # an entry that raises this many times goes to the dead letters
SCAN_PAGE = 500
SCAN_MAX = 10_000                     # entries one drain looks at
FOLD_AT = 10                          # more alerts than this waiting for one channel become one message
LEASE_CHECK_EVERY = 25                # channels between two checks of the lease during a drain


def fold_key(burst_id: str) -> str:
    """The delivery ids a fold was first tried with: a retry folds the same ones (so it finds that post)."""
    return key("{outbox}", "fold", burst_id)


@dataclass
class Bucket:
    tokens: float
    at: float


class Outbox:
    """`enqueue` from the poller; `drain(now)` from the scheduler (leader only)."""

    def __init__(self, client: redis.Redis, deliveries: Deliveries, watch_store: WatchStore, hub_url: str,
                 per_second: float = 1.0, burst: float = 3.0, clock: Callable[[], float] | None = None,
                 may_post: Callable[[str, str], bool] | None = None, prepare: Callable[[set[str]], None] | None = None):
        self.redis = client
        self.clock = clock or Clock(client)  # Redis's
        # The one way out to Slack (bot/core/deliver.py): marks, looks before a retry, edits.
        self.deliveries = deliveries if isinstance(deliveries, Deliveries) else \
            Deliveries(client, deliveries, clock=self.clock)
        self.owner = self.deliveries.owner
        self._delivering: str | None = None
        self.watch_store = watch_store
        self.hub_url = hub_url
        self.per_second = per_second
        self.burst = burst
        self.buckets: dict[str, Bucket] = {}
        self.blocked_until: dict[str, float] = {}
        self.entry_blocked: dict[str, float] = {}  # delivery id → when an entry that raised may be tried again
        self.attempts: dict[str, int] = {}
        # Other features' deliveries (op → deliver(channel, payload)), e.g. approval message edits that
        # failed when first tried; registered by every replica, since the leader drains for all.
        self.handlers: dict[str, Callable[[str, str], None]] = {}
        # Whether an alert about a Space may go to a channel (channel scopes, private Spaces: access).
        self.may_post = may_post
        # Called once with every Space about to be enqueued, so `may_post` can look them up together.
        self.prepare = prepare
        # A channel that already sees this change another way (the command's follow-through message).
        self.skip: Callable[[Alert, str], bool] | None = None
        # The same two questions for a whole enqueue: given its channels (its Spaces), a checker that read what
        # it needs at once (one HMGET of the channels' scopes, of the Spaces' follow-throughs), not per alert.
        self.may_post_in: Callable[[set[str]], Callable[[str, str], bool]] | None = None
        self.skip_in: Callable[[set[str]], Callable[[Alert, str], bool]] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ enqueue

    def _add(self, pipe, delivery_id: str, channel: str, op: str, payload: str) -> None:
        self.deliveries.enqueue(pipe, delivery_id, channel, op, payload)
        metrics.alerts("queued")

    def _checks(self, alerts: list[Alert], watches: WatchSet) -> tuple[Callable | None, Callable | None]:
        """(may_post, skip) for this batch of alerts: the batch checkers where there are, else the per-alert ones."""
        may_post, skip = self.may_post, self.skip
        if self.may_post_in is not None:
            may_post = self.may_post_in({w.channel for a in alerts for w in watches.for_space(a.space)})
        if self.skip_in is not None:
            skip = self.skip_in({a.space for a in alerts})
        return may_post, skip

    def _audience(self, alert: Alert, watches: WatchSet, mutes: dict, payload: str | None = None,
                  checks: tuple[Callable | None, Callable | None] | None = None) -> list[str]:
        """Channels that get this alert now; muted ones count it for the line when the mute ends (`payload`:
        the alert's JSON, when the caller has it already; `checks`: `_checks` of its batch)."""
        may_post, skip = checks if checks is not None else (self.may_post, self.skip)
        channels: dict[str, bool] = {}
        for watch in watches.for_space(alert.space):
            channels[watch.channel] = channels.get(watch.channel, False) or alert.matches(watch.only)
        audience = []
        for channel, wanted in channels.items():
            if not wanted or (may_post is not None and not may_post(alert.space, channel)) \
                    or (skip is not None and skip(alert, channel)):
                continue
            mute = next(((chan, target) for (chan, target), until in mutes.items()
                         if chan == channel and until > alert.at and covers(target, alert.space)), None) \
                if mutes else None
            if mute:
                self.watch_store.hold_back(mute[0], mute[1], payload or alert.to_json())
                continue
            audience.append(channel)
        return audience

    def enqueue(self, alerts: list[Alert], watches: WatchSet) -> int:
        if self.prepare is not None and alerts:
            self.prepare({alert.space for alert in alerts})
        mutes = self.watch_store.mutes()
        checks = self._checks(alerts, watches)
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for alert in alerts:
            payload = alert.to_json()  # once per alert, whatever the number of channels
            for channel in self._audience(alert, watches, mutes, payload, checks):
                self._add(pipe, f"{alert.id}>{channel}", channel, "post", payload)
                if alert.closes:
                    self._add(pipe, f"{alert.id}>{channel}>edit", channel, "edit", payload)
                count += 1
        pipe.execute()
        return count

    def enqueue_summary(self, alerts: list[Alert], watches: WatchSet, gap: float, now: float) -> int:
        """After downtime: one message per channel listing what changed meanwhile."""
        if self.prepare is not None and alerts:
            self.prepare({alert.space for alert in alerts})
        mutes = self.watch_store.mutes()
        checks = self._checks(alerts, watches)
        per_channel: dict[str, list[Alert]] = {}
        edits: list[tuple[str, Alert]] = []
        for alert in alerts:
            for channel in self._audience(alert, watches, mutes, checks=checks):
                per_channel.setdefault(channel, []).append(alert)
                if alert.closes:
                    edits.append((channel, alert))
        pipe = self.redis.pipeline(transaction=False)
        # The summary is about the outage that began at the last good cycle: that, not the time it is
        # queued, names it (queued again after a crash, it is found delivered).
        since = int(round(now - gap))
        for channel, items in per_channel.items():
            payload = json.dumps({"gap": gap, "alerts": [a.to_json() for a in items]})
            self._add(pipe, f"summary:{since}>{channel}", channel, "summary", payload)
        for channel, alert in edits:
            self._add(pipe, f"{alert.id}>{channel}>edit", channel, "edit", alert.to_json())
        pipe.execute()
        return len(per_channel)

    def enqueue_mute_end(self, channel: str, target: str, count: int, latest: str | None, until: float) -> None:
        """The line when a mute ends, named by the mute's end (not by when it is queued)."""
        payload = json.dumps({"target": target, "count": count, "latest": latest})
        pipe = self.redis.pipeline(transaction=False)
        self._add(pipe, f"unmuted:{target}:{int(until * 1000)}>{channel}", channel, "line", payload)
        pipe.execute()

    def enqueue_one(self, delivery_id: str, channel: str, op: str, payload: str) -> None:
        """Queue one delivery for a registered handler op; delivered once however often it is queued."""
        pipe = self.redis.pipeline(transaction=False)
        self._add(pipe, delivery_id, channel, op, payload)
        pipe.execute()

    def pending(self) -> int:
        return self.redis.xlen(STREAM)

    def dead_letters(self) -> int:
        """How many entries were given up on since the stream began (they stay readable in DEAD)."""
        return int(self.redis.get(DEAD_COUNT) or 0)

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

    def _scan(self, limit: int):
        """Entries oldest first, page by page: every channel's head is seen, however long another's queue."""
        start, seen = "-", 0
        while seen < limit:
            page = self.redis.xrange(STREAM, min=start, count=min(SCAN_PAGE, limit - seen))
            yield from page
            seen += len(page)
            if len(page) < SCAN_PAGE:
                return
            start = "(" + page[-1][0]

    def drain(self, now: float, limit: int = SCAN_MAX, leading: Callable[[], bool] | None = None) -> int:
        """Deliver what Slack's pace allows now, channel by channel (each keeps its order; none waits behind
        another's backlog); many alerts waiting for one channel become one message. `leading()` is asked
        now and then during a long drain: when this replica lost the lease, it stops."""
        with self._lock:
            by_channel: dict[str, list[tuple[str, dict]]] = {}
            for entry_id, fields in self._scan(limit):
                channel, delivery_id = fields.get("channel"), fields.get("id")
                if not channel or not delivery_id or "op" not in fields or "payload" not in fields:
                    self._dead(entry_id, fields, "not an outbox entry (channel, id, op or payload missing)")
                    continue
                by_channel.setdefault(channel, []).append((entry_id, fields))
            delivered = 0
            for n, (channel, entries) in enumerate(by_channel.items()):
                if leading is not None and n and n % LEASE_CHECK_EVERY == 0 and not leading():
                    log.info("poll lease lost during a drain; the new leader delivers the rest")
                    break
                delivered += self._drain_channel(channel, entries, now)
            return delivered

    def _drain_channel(self, channel: str, entries: list[tuple[str, dict]], now: float) -> int:
        if self.blocked_until.get(channel, 0) > now:
            return 0
        ready = [(entry_id, fields) for entry_id, fields in entries if self.entry_blocked.get(fields["id"], 0) <= now]
        delivered = 0
        posts = [(entry_id, fields) for entry_id, fields in ready if fields["op"] == "post"]
        if len(posts) > FOLD_AT:
            outcome = self._fold(channel, posts, now)
            if outcome is False:
                return 0
            if outcome:
                delivered += 1
                folded = set(outcome)
                ready = [(entry_id, fields) for entry_id, fields in ready if entry_id not in folded]
        for entry_id, fields in ready:
            if fields["op"] == "edit" and not self._edit_needed(channel, fields["payload"]):
                self._mark_done(entry_id, fields["id"])  # nothing to edit: no Slack call, no token
                continue
            if self.blocked_until.get(channel, 0) > now or not self._take(channel, now):
                break
            outcome = self._attempt(entry_id, fields, now)
            if outcome is False:
                break
            if outcome:
                delivered += 1
            # None: this entry failed in our code; it waits alone and its channel goes on
        return delivered

    def _fold(self, channel: str, posts: list[tuple[str, dict]], now: float) -> list[str] | bool | None:
        """Many alerts for one channel → one message with the list in its thread. The folded entries' ids
        (done once the message is posted), False when the channel must wait, None to deliver one by one."""
        folded = []
        for entry_id, fields in posts:
            try:
                Alert.from_json(fields["payload"])
                folded.append((entry_id, fields))
            except Unreadable:
                continue  # delivered alone, where it is retried and dead-lettered
        if len(folded) <= FOLD_AT:
            return None
        if self.blocked_until.get(channel, 0) > now or not self._take(channel, now):
            return False
        # Named by the oldest alert it folds (a grown backlog adds newer ones behind it), and it folds the
        # alerts it was first tried with: a retry after a lost answer finds that post and marks those done.
        burst_id = f"burst:{folded[0][1]['id']}"
        ids = [f["id"] for _, f in folded]
        first = self.redis.set(fold_key(burst_id), json.dumps(ids), nx=True, ex=DONE_TTL, get=True)
        if first:
            try:
                members = set(json.loads(first))
            except ValueError:
                members = set(ids)
            folded = [(entry_id, f) for entry_id, f in folded if f["id"] in members]
        # Each alert as it was queued (its decoder reads it again when the burst is delivered).
        burst = {"id": burst_id, "channel": channel, "op": "burst",
                 "payload": json.dumps([f["payload"] for _, f in folded])}
        outcome = self._attempt(None, burst, now, also_done=folded)
        if outcome is True:
            log.info("%d alerts for %s folded into one message", len(folded), channel)
            return [entry_id for entry_id, _ in folded]
        return False if outcome is False else None

    def _edit_needed(self, channel: str, payload: str) -> bool:
        try:
            alert = Alert.from_json(payload)
        except Unreadable:
            return True  # let the delivery fail and be counted
        root = _root(self.redis.hget(THREADS, f"{channel}|{alert.space}"), alert.incident)
        return bool(root and not root.get("summary"))

    def _mark_done(self, entry_id: str | None, delivery_id: str, also: list[tuple[str, dict]] = ()) -> None:
        pipe = self.redis.pipeline(transaction=bool(also))
        for other_id, other in also:
            pipe.set(done_key(other["id"]), DONE, ex=DONE_TTL)
            pipe.xdel(STREAM, other_id)
        pipe.set(done_key(delivery_id), DONE, ex=DONE_TTL)
        if entry_id:
            pipe.xdel(STREAM, entry_id)
        if self.attempts.pop(delivery_id, None) is not None or delivery_id in self.entry_blocked:
            pipe.hdel(TRIES, delivery_id)
            self.entry_blocked.pop(delivery_id, None)
        pipe.execute()

    def _dead(self, entry_id: str | None, fields: dict, why: str) -> None:
        """Give up on one entry: into the dead-letter stream, counted, logged once; the drain goes on."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(DEAD, {**fields, "reason": why[:500]}, maxlen=DEAD_MAXLEN, approximate=True)
        pipe.incr(DEAD_COUNT)
        if entry_id:
            pipe.xdel(STREAM, entry_id)
        if fields.get("id"):
            pipe.hdel(TRIES, fields["id"])
        pipe.execute()
        metrics.alerts("dead_lettered")
        log.error("outbox entry %s to %s dead-lettered: %s", fields.get("id", entry_id), fields.get("channel", "?"),
                  why)

    def _attempt(self, entry_id: str | None, fields: dict, now: float,
                 also_done: list[tuple[str, dict]] = ()) -> bool | None:
        """Claim the delivery (so no other drainer posts it), deliver, and mark it done. True when delivered
        (or dead-lettered); False to retry the channel later; None when this entry failed on its own (a
        newer replica's entry, a bug) and waits, with backoff, while the others go on."""
        delivery_id = fields["id"]
        # One key is the claim and, once posted, the record that it was delivered: SET NX answers both.
        held = self.redis.set(done_key(delivery_id), f"claimed:{self.owner}", nx=True, ex=CLAIM_TTL, get=True)
        if held is not None:
            if held == DONE:  # delivered already (queued twice, or by another drainer meanwhile)
                self._mark_done(entry_id, delivery_id, also_done)
                return True
            return False  # another drainer is delivering it right now
        outcome = None
        try:
            self._delivering = delivery_id
            outcome = self._try(entry_id, fields, now)
            if outcome is True:
                self._mark_done(entry_id, delivery_id, also_done)
            return outcome
        finally:
            self._delivering = None
            if outcome is not True:
                self.redis.delete(done_key(delivery_id))  # release the claim: a later drain retries

    def _try(self, entry_id: str | None, fields: dict, now: float) -> bool | None:
        channel, delivery_id = fields["channel"], fields["id"]
        try:
            self._deliver(fields["op"], channel, fields["payload"])
            return True
        except redis.RedisError:
            raise  # Redis itself is away: the whole drain stops, and the next one retries
        except (SlackApiError, OSError, http.client.HTTPException) as err:
            wait = retry_after(err) if not isinstance(err, http.client.HTTPException) else 1.0
            if wait is None:
                self._dead(entry_id, fields, f"Slack said {_slack_error(err)}")
                return None
            if getattr(getattr(err, "response", None), "status_code", 0) == 429:
                self.blocked_until[channel] = now + wait
                log.warning("Slack rate limit for %s: retrying in %.0f s", channel, wait)
                return False
            return self._backoff(channel, delivery_id, now, _slack_error(err))
        except Exception as err:  # noqa: BLE001 — one entry must never stop the drain of the others
            return self._poisoned(entry_id, fields, now, err)

    def _poisoned(self, entry_id: str | None, fields: dict, now: float, err: Exception) -> None:
        delivery_id = fields["id"]
        tries = int(self.redis.hincrby(TRIES, delivery_id, 1))
        why = f"{type(err).__name__}: {str(err)[:200]}"
        if tries >= MAX_TRIES:
            self._dead(entry_id, fields, f"failed {tries} times, last: {why}")
            self.entry_blocked.pop(delivery_id, None)
            return None
        self.entry_blocked[delivery_id] = now + min(300.0, 2.0 ** tries)
        if tries == 1:
            log.warning("outbox entry %s to %s failed (%s); retrying up to %d times", delivery_id, fields["channel"],
                        why, MAX_TRIES)
        return None

    def _backoff(self, channel: str, delivery_id: str, now: float, why: str) -> bool:
        tries = self.attempts.get(delivery_id, 0) + 1
        self.attempts[delivery_id] = tries
        metrics.alerts("retried")
        wait = min(300.0, 2.0 ** tries)
        self.blocked_until[channel] = now + wait
        log.warning("alert %s to %s not delivered (%s), attempt %d; next in %.0f s", delivery_id, channel, why,
                    tries, wait)
        return False

    def _post(self, channel: str, text: str, blocks: list | None, thread_ts: str | None = None) -> str:
        """Post the delivery being attempted through the one way out (marked, looked for before a retry)."""
        return self.deliveries.post(channel, text, blocks, thread_ts=thread_ts, delivery_id=self._delivering)

    def _thread_list(self, channel: str, ts: str, alerts: list[Alert], delivery_id: str) -> None:
        """Every alert's line in the thread of `ts`, queued like any message (paced, each part once)."""
        pipe = self.redis.pipeline(transaction=False)
        for n, part in enumerate(words.burst_parts(alerts, self.hub_url), 1):
            self._add(pipe, f"{delivery_id}#{n}", channel, "thread",
                      json.dumps({"thread_ts": ts, "text": part.text, "blocks": part.blocks}))
        pipe.execute()

    def _follow_in(self, channel: str, ts: str, alerts: list[Alert]) -> None:
        # An incident that began here continues in this message's thread; the message itself is not edited on
        # recovery (it speaks of other Spaces too). One write for all of them (a burst folds hundreds).
        threads = {f"{channel}|{alert.space}": json.dumps({"ts": ts, "incident": alert.incident, "summary": True})
                   for alert in alerts if alert.incident is not None and not alert.closes}
        if threads:
            self.redis.hset(THREADS, mapping=threads)

    def _deliver(self, op: str, channel: str, payload: str) -> None:
        if op in (POST_OP, UPDATE_OP):
            with self.deliveries.delivering(self._delivering):
                self.deliveries.deliver_queued(op, channel, payload)
            return
        if op in self.handlers:
            # Other features' ops post through `deliveries` too, under the id being delivered.
            with self.deliveries.delivering(self._delivering):
                self.handlers[op](channel, payload)
            return
        if op == "summary":
            data = json.loads(payload)
            alerts = [Alert.from_json(a) for a in data["alerts"]]
            reply = words.downtime_summary(alerts, self.hub_url, float(data["gap"]))
            ts = self._post(channel, reply.text, reply.blocks)
            self._follow_in(channel, ts, alerts)
            if len(alerts) > words.SUMMARY_LINES:
                self._thread_list(channel, ts, alerts, self._delivering or f"summary:{ts}>{channel}")
            return
        if op == "burst":
            alerts = [Alert.from_json(a) for a in json.loads(payload)]
            reply = words.burst_message(alerts)
            ts = self._post(channel, reply.text, reply.blocks)
            self._follow_in(channel, ts, alerts)
            self._thread_list(channel, ts, alerts, self._delivering or f"burst:{ts}>{channel}")
            return
        if op == "thread":
            data = json.loads(payload)
            self._post(channel, data["text"], data["blocks"], thread_ts=data["thread_ts"])
            return
        if op == "line":
            data = json.loads(payload)
            latest = words.alert_line(Alert.from_json(data["latest"]), self.hub_url) if data["latest"] else "?"
            reply = words.mute_ended_message(data["target"], data["count"], latest, self.hub_url)
            self._post(channel, reply.text, reply.blocks)
            return
        if op not in ("post", "edit"):
            raise ValueError(f"unknown outbox op {op!r} (written by a newer replica?)")
        alert = Alert.from_json(payload)
        thread_field = f"{channel}|{alert.space}"
        root = _root(self.redis.hget(THREADS, thread_field), alert.incident)
        if op == "edit":
            if root and not root.get("summary"):
                reply = words.recovered_message(root["text"], root["blocks"], alert.incident or alert.at, alert.at)
                self.deliveries.update(channel, root["ts"], reply.text, reply.blocks)
                self.redis.hdel(THREADS, thread_field)
            return
        reply = words.alert_message(alert, self.hub_url)
        if root and not alert.opens:
            self._post(channel, reply.text, reply.blocks, thread_ts=root["ts"])
            return
        ts = self._post(channel, reply.text, reply.blocks)
        if alert.incident is not None and not alert.closes:
            # The first alert of an incident this channel hears about becomes its thread.
            self.redis.hset(THREADS, thread_field, json.dumps({"ts": ts, "text": reply.text, "blocks": reply.blocks,
                                                                "incident": alert.incident}))


def _root(raw: str | None, incident: float | None) -> dict | None:
    if not raw or incident is None:
        return None
    try:
        root = json.loads(raw)
    except ValueError:
        return None  # an unreadable thread record: the alert starts a new message
    return root if isinstance(root, dict) and root.get("incident") == incident and root.get("ts") else None
