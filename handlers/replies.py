"""Running work off the listener thread and delivering its reply through `response_url`."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from slack_sdk.webhook import WebhookClient

from bot.core import metrics
from bot.core.permissions import READS
from bot.core.slack import retry_after_header
from bot.core.words import Reply, busy_reply, hub_silent_reply, internal_error_reply, message_pages, waiting_reply
from bot.core.work import PoolFull
from handlers.dedupe import TTL as CLAIM_TTL

log = logging.getLogger(__name__)
RETRIES = 3
# A response_url takes 5 posts within 30 minutes (slack-notes §1.4); "Waiting…", a deadline's note and the
# deletion of a private note before a public answer may use three: a long answer gets the other two.
ANSWER_MESSAGES = 2


SLACK_HOOK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


def response_url_allowed(response_url: str, slack_api_url: str = "") -> bool:
    """Only Slack's own hooks host (https), or the host of SLACK_API_URL when that is not Slack's (an
    on-prem gateway, the tests' emulator): a forged payload can't make the bot POST anywhere else."""
    try:
        url = urlsplit(response_url)
        host, port = (url.hostname or "").lower(), url.port
    except ValueError:
        return False
    if url.scheme == "https" and host in SLACK_HOOK_HOSTS and port in (None, 443) and not url.username:
        return True
    try:
        api = urlsplit(slack_api_url) if slack_api_url else None
        api_host = (api.hostname or "").lower() if api else ""
        api_port = api.port if api else None
    except ValueError:
        return False
    if not api_host or api_host == "slack.com" or api_host.endswith(".slack.com"):
        return False
    return (url.scheme, host, port) == (api.scheme, api_host, api_port) and not url.username


def deliver(response_url: str, reply: Reply | None, replace_original: bool = False, slack_api_url: str = "") -> bool:
    """POST the reply to `response_url`; retry Slack's 429/5xx and network errors a few times.
    `reply=None` deletes the message this URL posted before."""
    if not response_url:
        log.warning("reply dropped: no response_url")
        return False
    if not response_url_allowed(response_url, slack_api_url):
        log.warning("reply dropped: response_url is not on Slack's hooks host")  # forged payload
        return False
    if reply is None:
        payloads = [{"delete_original": True}]
    else:  # a long answer in several messages (nothing cut: bot/core/blocks.py), the first replacing
        payloads = [{"text": text, "blocks": blocks or None, "replace_original": replace_original and n == 0,
                     "response_type": "in_channel" if reply.public else "ephemeral"}
                    for n, (text, blocks) in enumerate(message_pages(reply.text, reply.blocks, ANSWER_MESSAGES))]
    client = WebhookClient(response_url, timeout=10)
    return all(_post(client, payload) for payload in payloads)


def _post(client: WebhookClient, payload: dict) -> bool:
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


class Answer:
    """One piece of work's replies through its response_url, in order: maybe "Waiting for the Hub…" (after
    `WAITING_AFTER`), maybe a sentence at `ANSWER_WITHIN` (the Hub did not answer; or, for work still
    waiting for a worker, "busy", and it will not start), then the answer, which replaces whatever was shown
    (a public answer deletes the private note and is posted to the channel). Both count from the ack."""

    def __init__(self, response_url: str, change: bool, replace: bool = True, slack_api_url: str = ""):
        self.response_url = response_url
        self.slack_api_url = slack_api_url
        self.change = change
        # A button's response_url "original" is the message holding the button (an approval request, an alert):
        # replies to clicks never replace or delete it, they follow as new private messages.
        self.replace = replace
        self.lock = threading.Lock()  # held while posting, so the posts reach Slack in order
        self.shown = False
        self.started = False
        self.done = False

    def start(self) -> bool:
        """The work may start: False when the user was already told it would not."""
        with self.lock:
            self.started = not self.done
            return self.started

    def waiting(self) -> None:
        with self.lock:
            if not self.shown and not self.done:
                self.shown = deliver(self.response_url, waiting_reply(), slack_api_url=self.slack_api_url)

    def give_up(self) -> None:
        with self.lock:
            if self.done:
                return
            if not self.started:
                log.warning("no worker free within %.0f s: not started, answered busy", ANSWER_WITHIN)
                self.done = True
                deliver(self.response_url, busy_reply(), replace_original=self.shown and self.replace,
                        slack_api_url=self.slack_api_url)
                return
            log.warning("the Hub did not answer within %.0f s; the user was told", ANSWER_WITHIN)
            self.shown = deliver(self.response_url, hub_silent_reply(self.change), slack_api_url=self.slack_api_url,
                                 replace_original=self.shown and self.replace) or self.shown

    def final(self, reply: Reply) -> None:
        with self.lock:
            self.done = True
            if reply.posted:  # a followed change: the bot announced it in the channel already
                if self.shown and self.replace:
                    deliver(self.response_url, None, slack_api_url=self.slack_api_url)
                return
            if self.shown and self.replace and reply.public:
                deliver(self.response_url, None, slack_api_url=self.slack_api_url)
            deliver(self.response_url, reply, replace_original=self.shown and self.replace and not reply.public,
                    slack_api_url=self.slack_api_url)


WAITING_AFTER = 3.0
ANSWER_WITHIN = 8.0


def run_and_reply(ctx, work, answer: Answer, what: str, timers: list, claim: str | None = None) -> None:
    """`work()` returns a Reply; a bug becomes a polite reply and a logged traceback, never silence.
    `claim`: the delivery id, claimed here first (handlers/dedupe.py); a repeat delivery does nothing."""
    if not answer.start():
        metrics.command_done(what, "busy")
        return  # waited past the deadline for a worker; the user read "busy" and nothing was done
    if claim is not None and not ctx.store.once(claim, ttl=CLAIM_TTL):
        for timer in timers:
            timer.cancel()
        metrics.command_done(what, "repeat")
        return  # Slack delivered this request before: that delivery runs it and answers
    outcome = "ok"
    try:
        reply = work()
    except Exception:  # noqa: BLE001 — the one place a bug is turned into a message for the user
        log.exception("unexpected error while running %s", what)
        reply, outcome = internal_error_reply(), "bug"
    finally:
        for timer in timers:
            timer.cancel()
    if outcome == "ok" and reply.text.startswith(":warning:"):
        outcome = "error"
    metrics.command_done(what, outcome)
    answer.final(reply)


def submit(ctx, work, response_url: str, what: str, replace: bool = True, claim: str | None = None) -> None:
    """Run `work` on the pool and deliver its reply; the deadlines (`ctx.reply_deadlines`) start now.
    `replace=False` for clicks: their response_url would replace the message that holds the button.
    `claim`: a delivery id not yet claimed (a `/space` command's, handlers/dedupe.py): claimed on the pool."""
    waiting_after, answer_within = getattr(ctx, "reply_deadlines", (WAITING_AFTER, ANSWER_WITHIN))
    answer = Answer(response_url, change=what not in READS, replace=replace,
                    slack_api_url=ctx.settings.slack_api_url)
    timers = [ctx.timers.after(waiting_after, answer.waiting), ctx.timers.after(answer_within, answer.give_up)] \
        if getattr(ctx, "timers", None) else []
    try:
        ctx.pool.submit(run_and_reply, ctx, work, answer, what, timers, claim)
    except PoolFull:
        for timer in timers:
            timer.cancel()
        log.warning("work pool full: %s refused with a busy reply", what)
        metrics.command_done(what, "busy")
        deliver(response_url, busy_reply(), slack_api_url=ctx.settings.slack_api_url)
