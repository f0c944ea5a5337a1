"""The Slack Web API edge for messages the bot posts on its own (approvals, alerts, DMs)."""

from __future__ import annotations

import http.client
import logging
import re
import time
from typing import Callable, Protocol, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.core.settings import Settings
from bot.core.render import PLAIN, TERMINAL, Style, render

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})


def make_web_client(settings: Settings) -> WebClient:
    # Rate limits are not retried here: a 429 surfaces as SlackApiError so callers (the alert outbox)
    # can defer instead of sleeping in a listener thread.
    return WebClient(token=settings.slack_bot_token or None, base_url=settings.slack_api_base, timeout=10,
                     retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)])


def retry_after_header(headers, default: float) -> float:
    """Seconds from a `Retry-After` header (any case, maybe a one-item list); `default` when absent or odd."""
    headers = headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value[0] if isinstance(value, list) else value)
    except (TypeError, ValueError, IndexError):
        return default


def retry_after(err: Exception) -> float | None:
    """Seconds to wait before a failed Slack call may help to try again; None when it can't help."""
    if isinstance(err, SlackApiError):
        response = err.response
        status = getattr(response, "status_code", 0)
        if status == 429:
            return retry_after_header(getattr(response, "headers", None), 1.0)
        error = response.get("error") if hasattr(response, "get") else None
        return 1.0 if status >= 500 or error in RETRYABLE_ERRORS else None
    # A network error, or an answer cut short (IncompleteRead): Slack may or may not have acted.
    return 1.0 if isinstance(err, (OSError, http.client.HTTPException)) else None


def with_retries(call: Callable[[], T], budget: float = 10.0) -> T:
    """Run a Slack call, waiting out 429s, 5xx and network errors while `budget` seconds allow.

    For a call whose result the caller needs now (an approval message's ts): off the listener
    threads only. The last error is raised when the budget runs out.
    """
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            return call()
        except (SlackApiError, OSError, http.client.HTTPException) as err:
            wait = retry_after(err)
            if wait is None:
                raise
            wait = max(wait, 0.25 * 2 ** attempt)
            if time.monotonic() + wait > deadline:
                raise
            log.warning("Slack call failed (%s); trying again in %.1f s", type(err).__name__, wait)
            time.sleep(wait)
            attempt += 1


class Poster(Protocol):
    def post(self, channel: str, text: str, blocks: list[dict] | None = None,
             thread_ts: str | None = None, metadata: dict | None = None) -> str: ...

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None: ...

    def permalink(self, channel: str, ts: str) -> str: ...


class SlackPoster:
    """Posts with the bot token; raises `slack_sdk.errors.SlackApiError` on failure."""

    def __init__(self, client: WebClient):
        self.client = client

    def post(self, channel, text, blocks=None, thread_ts=None, metadata=None) -> str:
        # `metadata` ({"event_type", "event_payload"}) marks the message so a post whose answer was lost
        # can be found again in the channel's history instead of being posted twice.
        response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks or None,
                                                thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
                                                metadata=metadata)
        return response["ts"]

    def update(self, channel, ts, text, blocks=None) -> None:
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks if blocks is not None else [])

    def permalink(self, channel, ts) -> str:
        try:
            return self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"]
        except Exception:  # noqa: BLE001 — a link is a nicety; the message itself was posted
            log.warning("no permalink for %s/%s", channel, ts)
            return ""

    def group_members(self, group: str) -> list[str]:
        return list(self.client.usergroups_users_list(usergroup=group)["users"])


class ConsolePoster:
    """Stands in for Slack in `python -m bot console`: shows what would be posted, drawn by `bot.core.render`.

    Channel posts read `[#channel] …`, thread replies `[#channel, thread] …`, edits `[#channel, edited] …`.
    The console sets `screen` (bot/console.py) so a message arriving while the prompt shows redraws it."""

    def __init__(self, out, style: Style | None = None):
        self.out = out
        self.style = style
        self.count = 0
        self.screen = None  # bot.console.Screen, while the console runs
        # The buttons each shown message carries, so the console can press them: (channel, ts) → elements.
        self.buttons: dict[tuple[str, str], list[dict]] = {}

    def _style(self) -> Style:
        if self.style is not None:
            return self.style
        isatty = getattr(self.out, "isatty", None)
        return TERMINAL if isatty is not None and isatty() else PLAIN

    def post(self, channel, text, blocks=None, thread_ts=None, metadata=None) -> str:
        self.count += 1
        ts = f"console.{self.count}"
        self._show(f"#{channel}" + (", thread" if thread_ts else ""), channel, ts, text, blocks)
        return ts

    def update(self, channel, ts, text, blocks=None) -> None:
        self._show(f"#{channel}, edited", channel, ts, text, blocks)

    def _show(self, label: str, channel: str, ts: str, text: str, blocks) -> None:
        shown = f"[{label}] {render(text, blocks, self._style())}{self._remember(channel, ts, blocks)}"
        if self.screen is not None:
            self.screen.message(shown)
        else:
            print(f"\n{shown}\n", file=self.out, flush=True)

    def _remember(self, channel: str, ts: str, blocks) -> str:
        """Keep the message's buttons; return the hint that says how to press them."""
        elements = [e for b in blocks or [] for e in (b.get("elements", []) if b.get("type") == "actions"
                                                      else [b.get("accessory") or {}])
                    if e.get("type") == "button" and e.get("text") and e.get("action_id")]
        self.buttons[(channel, ts)] = elements
        if not elements:
            return ""
        presses = " or ".join(f"[{e['text']['text']}] {e.get('value', '')}".rstrip() for e in elements)
        return f"\n(to press a button, type {presses})"

    def permalink(self, channel, ts) -> str:
        return ""



# ---------------------------------------------------------------- Socket Mode logs without secrets

SOCKET_MODE_LOGGER = "slack_sdk.socket_mode.spaceops"
# A typed value in a submitted form (`"value": "…"` in JSON, `'value': '…'` in a repr): a secret's value.
_TYPED_VALUE = re.compile(r"""(["'](?:value|private_metadata)["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""", re.S)
_FRAME = re.compile(r"(data frame \(session id: [^,]*, (?:opcode: [^,]*, )?payload: ).*", re.S)


def scrub(text: str) -> str:
    """An envelope or frame as a log line may show it, with typed values and raw frame payloads removed."""
    text = _FRAME.sub(r"\1[not logged]", text)
    return _TYPED_VALUE.sub(r"\1\2[redacted]\2", text)


class ScrubEnvelopes(logging.Filter):
    """slack_sdk's Socket Mode client logs every raw envelope and frame at DEBUG, and a `view_submission`
    envelope carries what was typed in the secret form: those lines are rewritten before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def socket_mode_logger() -> logging.Logger:
    """The logger to hand the Socket Mode client (instead of Bolt's app logger, which it uses by default)."""
    logger = logging.getLogger(SOCKET_MODE_LOGGER)
    if not any(isinstance(f, ScrubEnvelopes) for f in logger.filters):
        logger.addFilter(ScrubEnvelopes())
    return logger
