"""A whole bot wired to a real Redis and both emulators, driven through signed HTTP like Slack does."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.app import build_app, build_context
from bot.core.settings import Settings
from bot.web import create_server, make_wsgi_app, run_in_thread
from tests.emulators import blockkit

SIGNING_SECRET = "test-signing-secret"
_ids = itertools.count(1)


@dataclass
class HttpAnswer:
    status: int
    body: str
    response_id: str = ""

    @property
    def json(self):
        return json.loads(self.body)


class Bot:
    """`bot.command("/space restart acme/chat", user="U1")` → what the user saw."""

    def __init__(self, settings: Settings, redis_client, hub, slack, slack_url: str):
        self.settings, self.hub, self.slack, self.slack_url = settings, hub, slack, slack_url
        self.ctx = build_context(settings, redis_client=redis_client)
        self.app = build_app(self.ctx)
        self.server = create_server(make_wsgi_app(self.app, self.ctx), "127.0.0.1", 0, threads=8)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._stop = run_in_thread(self.server)

    def close(self) -> None:
        self._stop()
        self.ctx.close()

    # ------------------------------------------------------------------ raw HTTP

    def post(self, body: bytes, content_type: str, headers: dict | None = None, sign: bool = True,
             secret: str = SIGNING_SECRET, timestamp: int | None = None) -> HttpAnswer:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers["X-Slack-Request-Timestamp"] = ts
            all_headers["X-Slack-Signature"] = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url + "/slack/events", data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return HttpAnswer(response.status, response.read().decode())
        except urllib.error.HTTPError as err:
            return HttpAnswer(err.code, err.read().decode())

    def get(self, path: str) -> HttpAnswer:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return HttpAnswer(response.status, response.read().decode())
        except urllib.error.HTTPError as err:
            return HttpAnswer(err.code, err.read().decode())

    # ------------------------------------------------------------------ like a person in Slack

    def send_command(self, text: str, user: str = "U1", channel: str = "C1", **sign) -> HttpAnswer:
        """POST a signed slash command; returns the HTTP answer (the ack) with its response_url id."""
        rid = f"r{next(_ids)}"
        form = {"token": "legacy", "team_id": "T1", "team_domain": "acme", "channel_id": channel,
                "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": "/space",
                "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
                "response_url": f"{self.slack_url}/respond/{rid}", "trigger_id": f"trig.{rid}"}
        answer = self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **sign)
        answer.response_id = rid
        return answer

    def command(self, text: str, user: str = "U1", channel: str = "C1", timeout: float = 5.0) -> dict:
        """Run a command and return what the user saw: the ack text, the first response_url post, or the
        bot's own announcement of a followed change in the channel."""
        text = text.removeprefix("/space").strip()
        # Counted before sending: the work pool may post the announcement before the ack is read here.
        before = len(self.slack.posts(channel))
        answer = self.send_command(text, user, channel)
        assert answer.status == 200, (answer.status, answer.body)
        if answer.body:
            ack = json.loads(answer.body)
            # An ack's message is shown by Slack as a response_url post would be: the same limits.
            refusal = blockkit.message_refusal(ack.get("text"), ack.get("blocks"))
            assert refusal is None and not blockkit.missing_fallback(ack.get("text"), ack.get("blocks")), refusal
            return {"text": ack.get("text", ""), "response_type": ack.get("response_type", "ephemeral"),
                    "blocks": ack.get("blocks"), "via": "ack"}
        if text.startswith("secret set"):
            return {"text": "", "via": "modal"}

        def announced():
            # A followed change is announced by the bot itself with chat.postMessage, so it can be edited.
            return [{**p, "response_type": "in_channel", "via": "chat.postMessage"}
                    for p in self.slack.posts(channel)[before:]
                    if not p.get("thread_ts") and str(p.get("text", "")).startswith(f"<@{user}> ")]

        posted = self.slack.wait(lambda: self.slack.responses(answer.response_id) or announced(), timeout)
        assert posted, f"no reply to {text!r} within {timeout}s"
        return {"via": "response_url", **posted[0]}

    def interact(self, payload: dict, **sign) -> HttpAnswer:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **sign)

    def click(self, action_id: str, value: str, user: str = "U2", channel: str = "C1", message_ts: str = "1.0",
              **sign) -> HttpAnswer:
        rid = f"r{next(_ids)}"
        payload = {
            "type": "block_actions", "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": f"trig.{rid}", "response_url": f"{self.slack_url}/respond/{rid}",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
            "channel": {"id": channel, "name": "general"},
            "message": {"type": "message", "ts": message_ts, "text": "", "blocks": []},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                         "text": {"type": "plain_text", "text": action_id}, "action_ts": str(time.time())}],
        }
        answer = self.interact(payload, **sign)
        answer.response_id = rid
        return answer

    def submit_view(self, callback_id: str, values: dict, private_metadata: str, user: str = "U1") -> HttpAnswer:
        state = {block: {action: {"type": "plain_text_input", "value": value}}
                 for block, (action, value) in values.items()}
        payload = {"type": "view_submission", "team": {"id": "T1", "domain": "acme"},
                   "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "api_app_id": "A1",
                   "token": "legacy", "trigger_id": f"trig.v{next(_ids)}",
                   "view": {"id": "V1", "type": "modal", "callback_id": callback_id,
                            "private_metadata": private_metadata, "state": {"values": state},
                            "hash": "h", "title": {"type": "plain_text", "text": "t"}, "blocks": []}}
        return self.interact(payload)
