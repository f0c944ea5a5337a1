"""The one way out to Slack for what the bot says on its own: alerts, announcements, digests, notes, reports.

Every such message has a delivery id derived from what it is about. The id is claimed before the post
(`SET NX`: one key is the claim and, once posted, the record that it was delivered), the post carries the
id in its metadata, and a post tried before (its answer was lost) is looked for in the channel's history
before it is posted again. Where history is readable, each id is posted once; where it is not (no history
scope), a retry after a lost answer may post twice: at-least-once.

The alert outbox (bot/alerts/outbox.py) queues and paces deliveries and calls `post`/`update` here;
features call `now` (the ts is needed at once), `send` (now, or queued with the same id when Slack fails)
and `edit`. The answer to the person who acted (ack, `respond`) does not come here: it has its own
response_url, answered once per request.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import uuid
from typing import Callable

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.clock import Clock
from bot.core.slack import SlackPoster, with_retries
from bot.core.store import REDIS_ERRORS, key
from bot.core.words import message_pages

log = logging.getLogger(__name__)

STREAM = key("{outbox}", "stream")    # the outbox's queue (drained by the poll leader, bot/alerts/outbox.py)
STREAM_MAXLEN = 100_000
SCHEMA = 1                            # `v` of every entry; a reader ignores fields it does not know
DONE = "1"                            # value of done_key once delivered ("claimed:<owner>" while posting)
DONE_TTL = 7 * 86400
CLAIM_TTL = 60                        # seconds a claim holds (then another replica may try)
EVENT_TYPE = "space_ops_alert"        # message metadata: finds a post whose answer was lost
LOOKBACK = 120                        # seconds before the first attempt searched in the channel's history
POST_OP = "deliver.post"              # queued message: {"text", "blocks", "thread_ts"}
UPDATE_OP = "deliver.update"          # queued edit: {"ts", "text", "blocks"}
THREAD_MESSAGES = 20                  # a long message: its first part, the rest in its thread (then "not shown")
# A Slack call whose failure leaves it unknown whether Slack acted, or that may work when tried again.
SLACK_FAILURES = (SlackApiError, OSError, http.client.HTTPException)


def done_key(delivery_id: str) -> str:
    return key("{outbox}", "done", delivery_id)


def tried_key(delivery_id: str) -> str:
    """Set when a delivery is first posted (its time): a retry looks for it before posting."""
    return key("{outbox}", "tried", delivery_id)


class Deliveries:
    """Posts, edits and uploads marked with a delivery id, each id once (see the module's docstring)."""

    def __init__(self, client: redis.Redis, poster, clock: Callable[[], float] | None = None):
        self.redis = client
        self.raw = poster  # permalinks and group members; never posts (tests/test_one_way_out.py)
        self.poster = without_connection_retries(poster)
        self.clock = clock or Clock(client)  # Redis's: when a delivery was first tried, for the history lookup
        self.owner = uuid.uuid4().hex
        self.finder: Callable[[str, str, str | None, float], str | None] = self.find_posted
        self._current = threading.local()

    # ------------------------------------------------------------------ the outbox's side

    def enqueue(self, pipe, delivery_id: str, channel: str, op: str, payload: str) -> None:
        pipe.xadd(STREAM, {"v": SCHEMA, "id": delivery_id, "channel": channel, "op": op, "payload": payload},
                  maxlen=STREAM_MAXLEN, approximate=True)

    def later(self, delivery_id: str, channel: str, op: str, payload: str) -> None:
        """Queue one delivery for the outbox (an op it knows); delivered once however often it is queued."""
        pipe = self.redis.pipeline(transaction=False)
        self.enqueue(pipe, delivery_id, channel, op, payload)
        pipe.execute()

    def claim(self, delivery_id: str) -> str | None:
        """None when this caller now holds the delivery; else DONE or another's claim."""
        return self.redis.set(done_key(delivery_id), f"claimed:{self.owner}", nx=True, ex=CLAIM_TTL, get=True)

    def release(self, delivery_id: str) -> None:
        self.redis.delete(done_key(delivery_id))

    def delivering(self, delivery_id: str | None):
        """Context: the delivery the outbox is attempting on this thread (its handlers post under it)."""
        deliveries = self

        class _Delivering:
            def __enter__(self):
                self.before = getattr(deliveries._current, "id", None)
                deliveries._current.id = delivery_id

            def __exit__(self, *exc):
                deliveries._current.id = self.before

        return _Delivering()

    @property
    def current(self) -> str | None:
        return getattr(self._current, "id", None)

    # ------------------------------------------------------------------ one Slack call

    def post(self, channel: str, text: str, blocks: list | None = None, thread_ts: str | None = None,
             delivery_id: str | None = None) -> str:
        """Post marked with its delivery id (default: the one being delivered); the ts. Blocks too long for
        one message continue in its thread (or the thread it is in), each part under an id of its own."""
        delivery_id = delivery_id or self.current
        if not delivery_id:
            raise ValueError("every message the bot posts on its own needs a delivery id")
        (text, blocks), *rest = message_pages(text, blocks, THREAD_MESSAGES, "a message and its thread",
                                              in_thread=True)
        ts = self._post_once(channel, text, blocks, thread_ts, delivery_id)
        for n, (more_text, more_blocks) in enumerate(rest, 2):
            self._post_once(channel, more_text, more_blocks, thread_ts or ts, f"{delivery_id}#{n}")
        return ts

    def _post_once(self, channel: str, text: str, blocks: list | None, thread_ts: str | None,
                   delivery_id: str) -> str:
        """If an earlier attempt may have reached Slack (its answer was lost), look for the id in the channel
        first: found, not again."""
        first = self.redis.set(tried_key(delivery_id), repr(self.clock()), nx=True, ex=DONE_TTL, get=True)
        if first:
            found = self.finder(channel, delivery_id, thread_ts, float(first))
            if found:
                log.info("delivery %s to %s was posted already (found in the channel); not posting again",
                         delivery_id, channel)
                return found
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"id": delivery_id}}
        return self.poster.post(channel, text, blocks, thread_ts=thread_ts, metadata=metadata)

    def update(self, channel: str, ts: str, text: str, blocks: list | None = None) -> None:
        """Edit a message to this content: the same edit made twice shows the same message (idempotent).
        An edit is one message: what does not fit is said not to be shown."""
        if blocks:
            (text, blocks), = message_pages(text, blocks, 1, "one message")
        self.poster.update(channel, ts, text, blocks)

    def upload(self, channel: str, thread_ts: str | None, content: bytes, filename: str, title: str) -> bool:
        """A file into a channel (or thread); False when there is no Slack client (the console)."""
        client = getattr(self.poster, "client", None)
        if client is None:
            log.info("no Slack client: %s not uploaded", filename)
            return False
        client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=content, filename=filename, title=title)
        return True

    def permalink(self, channel: str, ts: str) -> str:
        return self.raw.permalink(channel, ts)

    # ------------------------------------------------------------------ for features

    def now(self, delivery_id: str, channel: str, text: str, blocks: list | None = None,
            thread_ts: str | None = None, budget: float = 10.0) -> str | None:
        """Claim, post (retrying failures while `budget` seconds allow, each retry looking first), mark done;
        the ts. None when the id was delivered already or another replica is posting it. Raises Slack's
        error when it could not be posted (the claim is released)."""
        try:
            held = self.claim(delivery_id)
        except REDIS_ERRORS as err:
            # Without Redis nothing can be claimed or remembered: post once, marked, never silent (a retry
            # elsewhere may then post again: at-least-once while Redis is away).
            log.warning("Redis unreachable (%s): %s posted without a claim", type(err).__name__, delivery_id)
            metadata = {"event_type": EVENT_TYPE, "event_payload": {"id": delivery_id}}
            (text, blocks), *_ = message_pages(text, blocks, 1, "one message")
            return self.poster.post(channel, text, blocks, thread_ts=thread_ts, metadata=metadata)
        if held is not None:
            return None
        posted = False
        try:
            ts = with_retries(lambda: self.post(channel, text, blocks, thread_ts, delivery_id), budget)
            self.redis.set(done_key(delivery_id), DONE, ex=DONE_TTL)
            posted = True
            return ts
        finally:
            if not posted:
                self.release(delivery_id)

    def send(self, delivery_id: str, channel: str, text: str, blocks: list | None = None,
             thread_ts: str | None = None) -> str | None:
        """Post now if Slack answers; else the outbox delivers it later under the same id (so a post whose
        answer was lost is found, not repeated). The ts when posted now."""
        try:
            return self.now(delivery_id, channel, text, blocks, thread_ts, budget=0.0)
        except SLACK_FAILURES as err:
            log.warning("message %s to %s not posted now (%s); queued", delivery_id, channel, type(err).__name__)
            self._queue(delivery_id, channel, POST_OP, {"text": text, "blocks": blocks, "thread_ts": thread_ts})
            return None

    def edit(self, delivery_id: str, channel: str, ts: str, text: str, blocks: list | None = None) -> None:
        """Edit now if Slack answers; else queued under `delivery_id` (an id per content: the edit is made
        once, and made again it would change nothing)."""
        try:
            self.update(channel, ts, text, blocks)
        except SLACK_FAILURES as err:
            log.warning("edit %s in %s not made now (%s); queued", delivery_id, channel, type(err).__name__)
            self._queue(delivery_id, channel, UPDATE_OP, {"ts": ts, "text": text, "blocks": blocks})

    def _queue(self, delivery_id: str, channel: str, op: str, payload: dict) -> None:
        try:
            self.later(delivery_id, channel, op, json.dumps(payload))
        except REDIS_ERRORS:
            log.error("delivery %s to %s lost: neither Slack nor Redis answered", delivery_id, channel)

    def deliver_queued(self, op: str, channel: str, payload: str) -> None:
        """The outbox's delivery of a queued POST_OP/UPDATE_OP (under the id being delivered)."""
        data = json.loads(payload)
        if op == POST_OP:
            self.post(channel, data.get("text") or "", data.get("blocks") or None, data.get("thread_ts"))
        else:
            self.update(channel, data["ts"], data.get("text") or "", data.get("blocks"))

    # ------------------------------------------------------------------ the history lookup

    def find_posted(self, channel: str, delivery_id: str, thread_ts: str | None, first: float) -> str | None:
        """The ts of a message this bot posted for `delivery_id` (its metadata), searched from a little
        before the first attempt; None when not found or when the channel cannot be read."""
        client = getattr(self.poster, "client", None)
        if client is None:
            return None
        oldest = f"{first - LOOKBACK:.6f}"
        try:
            if thread_ts:
                response = client.conversations_replies(channel=channel, ts=thread_ts, oldest=oldest, limit=200,
                                                        include_all_metadata=True)
            else:
                response = client.conversations_history(channel=channel, oldest=oldest, limit=200,
                                                        include_all_metadata=True)
        except SlackApiError as err:
            # (A network error raises: the delivery is tried again later, and looks again.)
            # Without history scopes it cannot be checked: posting again is at-least-once (docs/alerts.md says so).
            log.warning("could not look for delivery %s in %s (%s); posting again", delivery_id, channel,
                        slack_error(err))
            return None
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (metadata.get("event_type") == EVENT_TYPE
                    and (metadata.get("event_payload") or {}).get("id") == delivery_id):
                return message.get("ts")
        return None


def without_connection_retries(poster):
    """A copy of the Slack client without slack_sdk's connection-error retry, which would post a second
    time when the connection dropped after Slack recorded the first; retries here look first."""
    if isinstance(poster, SlackPoster) and poster.client.retry_handlers:
        client = poster.client
        return SlackPoster(WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout,
                                     retry_handlers=[]))
    return poster


def slack_error(err: Exception) -> str:
    """Short words for a log line: "HTTP 503 internal_error", or the network error's name."""
    if isinstance(err, SlackApiError):
        error = (err.response.get("error") if hasattr(err.response, "get") else None) or ""
        return f"HTTP {getattr(err.response, 'status_code', 0)} {error}".strip()
    return type(err).__name__
