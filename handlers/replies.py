"""Running work off the listener thread and delivering its reply through `response_url`."""

from __future__ import annotations

import logging
import time

from slack_sdk.webhook import WebhookClient

from bot.core.slack import retry_after_header
from bot.core.words import Reply, internal_error_reply

log = logging.getLogger(__name__)
RETRIES = 3


def deliver(response_url: str, reply: Reply, replace_original: bool = False) -> bool:
    """POST the reply to `response_url`; retry Slack's 429/5xx and network errors a few times."""
    if not response_url:
        log.warning("reply dropped: no response_url")
        return False
    if not response_url.startswith(("https://", "http://")):
        log.warning("reply dropped: response_url is not an http(s) URL")  # forged; urllib would open ftp: or file:
        return False
    payload = {"text": reply.text, "blocks": reply.blocks or None,
               "response_type": "in_channel" if reply.public else "ephemeral",
               "replace_original": replace_original}
    client = WebhookClient(response_url, timeout=10)
    for attempt in range(RETRIES + 1):
        try:
            response = client.send_dict({k: v for k, v in payload.items() if v is not None})
            status, headers = response.status_code, response.headers
        except OSError as err:
            status, headers = None, None
            log.warning("response_url post failed (%s), attempt %d", type(err).__name__, attempt + 1)
        if status is not None and status < 300:
            return True
        if status is not None and status not in (429,) and status < 500:
            log.error("response_url refused the reply: HTTP %s", status)
            return False
        if attempt < RETRIES:
            time.sleep(min(retry_after_header(headers, 0.5 * 2 ** attempt), 10.0))
    log.error("reply not delivered after %d attempts", RETRIES + 1)
    return False


def run_and_reply(ctx, work, response_url: str, what: str) -> None:
    """`work()` returns a Reply; a bug becomes a polite reply and a logged traceback, never silence."""
    try:
        reply = work()
    except Exception:  # noqa: BLE001 — the one place a bug is turned into a message for the user
        log.exception("unexpected error while running %s", what)
        reply = internal_error_reply()
    if not reply.posted:  # a followed change was announced in the channel by the bot already
        deliver(response_url, reply)


def submit(ctx, work, response_url: str, what: str) -> None:
    ctx.pool.submit(run_and_reply, ctx, work, response_url, what)
