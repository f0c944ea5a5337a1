"""A Slack Web API emulator: records every call with its body, keeps messages, catches response_url posts."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.emulators import blockkit


@dataclass
class Call:
    method: str  # Web API method ("chat.postMessage") or "respond/<id>"
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackFault:
    method: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    refuse: bool = False
    # Do the call (record the message), then lose the answer: True cuts it short (IncompleteRead); "reset"
    # closes the connection before any byte of it (RemoteDisconnected, which slack_sdk's own handler retries).
    drop: bool | str = False


class SlackEmulator:
    """`/api/<method>` for the bot token, `/respond/<id>` for response_url posts."""

    def __init__(self, token: str = "xoxb-test"):
        self.token = token
        self._ts = itertools.count(1)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        """Forget every call, message, fault and user group (tests share one emulator per session)."""
        with self.lock:
            self.calls: list[Call] = []
            self.messages: dict[tuple[str, str], dict[str, Any]] = {}
            self.groups: dict[str, list[str]] = {}
            self.faults: list[SlackFault] = []
            # users.info answers: user id → fields (team_id, is_restricted, tz…); others are members of T1
            self.users: dict[str, dict[str, Any]] = {}
            self.channels: dict[str, str] = {}  # conversations.list: name → id
            self.slow_calls: list[list] = []
            self.views: dict[str, dict[str, Any]] = {}     # user → {"view", "hash"} (views.publish)
            self.uploads: dict[str, dict[str, Any]] = {}   # file id → {"filename", "length", "bytes"}
            self.files: list[dict[str, Any]] = []          # completed uploads: id, title, channel, thread_ts, bytes
            # link_shared events sent: (channel, message_ts or unfurl_id) → the URLs Slack would accept an unfurl of
            self.shared: dict[tuple[str, str], set[str]] = {}
            self.unfurled: dict[tuple[str, str], dict[str, Any]] = {}  # what chat.unfurl attached, per message
            # function_executed events sent: execution id → {"state": running|completed|failed, outputs, error}
            self.executions: dict[str, dict[str, Any]] = {}
            # What Slack would have refused or warned about (tests/emulators/blockkit.py): (method, error,
            # messages). The `slack` fixture fails a test that leaves any here; a test expecting one takes it.
            self.refused: list[tuple[str, str, list[str]]] = []

    # ------------------------------------------------------------------ test-facing

    def share(self, channel: str, ts: str, urls: list[str]) -> None:
        """A link_shared event is being sent for these URLs of that message: chat.unfurl may answer it."""
        with self.lock:
            self.shared[(channel, ts)] = set(urls)

    def execute(self, execution: str) -> None:
        """A function_executed event is being sent: functions.complete* may finish it, once."""
        with self.lock:
            self.executions[execution] = {"state": "running"}

    def fail(self, method: str, status: int = 500, body: Any = None, headers: dict | None = None,
             times: int = 1, drop: bool | str = False) -> None:
        """The next `times` calls to `method` (or "respond") get this answer. `drop`: the call is done as
        usual (a message is recorded), then the connection drops before the client has the answer (True:
        after a few bytes of it; "reset": before any)."""
        with self.lock:
            self.faults.append(SlackFault(method, status, body, headers or {}, times, drop=drop))

    def slow(self, method: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls to `method` are answered only after `seconds` (a Slack that hangs)."""
        with self.lock:
            self.slow_calls = [*getattr(self, "slow_calls", []), [method, seconds, times]]

    def _slowness(self, path: str) -> float:
        method = path[len("/api/"):] if path.startswith("/api/") else path.strip("/")
        with self.lock:
            for entry in getattr(self, "slow_calls", []):
                if entry[0] == method and entry[2] > 0:
                    entry[2] -= 1
                    return entry[1]
        return 0.0

    def take_refused(self) -> list[tuple[str, str, list[str]]]:
        """What was refused (or warned about) since the last take: a test that breaks a limit on purpose."""
        with self.lock:
            taken, self.refused = self.refused, []
            return taken

    def of(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def responses(self, response_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies posted to response_url (all, or for one id)."""
        with self.lock:
            return [c.body for c in self.calls if c.method.startswith("respond/")
                    and (response_id is None or c.method == f"respond/{response_id}")]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [c.body for c in self.of("chat.postMessage") if channel is None or c.body.get("channel") == channel]

    def wait(self, predicate, timeout: float = 5.0):
        """Wait until predicate() is truthy (work continues on the bot's threads after the ack)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    return result
                self.changed.wait(min(left, 0.05))

    def _history(self, method: str, body: dict) -> dict:
        """Messages newest first: a channel's top level (history) or one thread (replies), `oldest` excluded,
        with their metadata only when `include_all_metadata` is asked for."""
        channel, oldest = body.get("channel", ""), float(body.get("oldest") or 0)
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for (chan, ts), message in self.messages.items():
            if chan != channel or float(ts) <= oldest:
                continue
            if method == "conversations.history" and message["thread_ts"] not in (None, ts):
                continue
            if method == "conversations.replies" and body.get("ts") not in (ts, message["thread_ts"]):
                continue
            item = {"type": "message", "ts": ts, "text": message["text"], "bot_id": "B1"}
            if message["thread_ts"]:
                item["thread_ts"] = message["thread_ts"]
            if with_metadata and message.get("metadata"):
                item["metadata"] = message["metadata"]
            found.append(item)
        found.sort(key=lambda m: float(m["ts"]), reverse=method == "conversations.history")
        limit = int(body.get("limit") or 100)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        delay = self._slowness(path)
        if delay:
            time.sleep(delay)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if path.startswith("/upload/"):
            return self._upload(path[len("/upload/"):], environ["wsgi.input"].read(length), start_response)
        raw = environ["wsgi.input"].read(length).decode() if length else ""
        ctype = environ.get("CONTENT_TYPE", "")
        if "json" in ctype:
            body = json.loads(raw or "{}")
        else:
            body = {k: v[0] for k, v in parse_qs(raw).items()}
            for name in ("blocks", "view", "attachments"):
                if isinstance(body.get(name), str):
                    try:
                        body[name] = json.loads(body[name])
                    except ValueError:
                        pass
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("QUERY_STRING"):  # GET methods (conversations.history) take their arguments here
            body = {**{k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}, **body}
        method = path[len("/api/"):] if path.startswith("/api/") else path.strip("/")
        with self.changed:
            fault = next((f for f in self.faults if f.times > 0 and
                          (f.method == method or (f.method == "respond" and method.startswith("respond/")))), None)
            if fault:
                fault.times -= 1
            refusal = None if fault and not fault.drop else self._refusal(method, body, headers)
            if refusal:
                self.calls.append(Call(method + "!refused", body, headers))
                status, payload = refusal
            elif fault and fault.drop:
                self.calls.append(Call(method + "!dropped", body, headers))
                status, payload = self._answer(method, body, headers)
            elif fault:
                self.calls.append(Call(method + "!failed", body, headers))
            else:
                self.calls.append(Call(method, body, headers))
                status, payload = self._answer(method, body, headers)
                self._warn(method, body, payload)
            self.changed.notify_all()
        if fault and fault.drop == "reset":
            return self._reset(start_response)
        if fault and fault.drop:
            return self._dropped(start_response, payload)
        if fault:
            payload = fault.body if fault.body is not None else {"ok": False, "error": "ratelimited" if fault.status == 429 else "fatal_error"}
            return self._send(start_response, fault.status, payload, fault.headers)
        return self._send(start_response, status, payload, {})

    def _upload(self, file_id: str, data: bytes, start_response):
        """Step 2 of files_upload_v2: the bytes go to the URL files.getUploadURLExternal gave."""
        with self.changed:
            upload = self.uploads.get(file_id)
            if upload is not None:
                upload["bytes"] = data
            self.calls.append(Call(f"upload/{file_id}", {"length": len(data)}, {}))
            self.changed.notify_all()
        if upload is None:
            return self._send(start_response, 404, "no such upload", {})
        return self._send(start_response, 200, f"OK - {len(data)}", {})

    @staticmethod
    def _reset(start_response):
        """Close the client's connection before the status line: the serving waitress task is found up the
        stack (the WSGI interface gives an app no socket)."""
        import socket
        import sys

        frame = sys._getframe(1)
        while frame is not None:
            task = frame.f_locals.get("self")
            channel = getattr(task, "channel", None)
            if channel is not None and hasattr(channel, "socket"):
                try:
                    channel.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                break
            frame = frame.f_back
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "0")])
        return [b""]

    @staticmethod
    def _dropped(start_response, payload):
        """Headers promise the whole answer; a few bytes come, then the server closes the connection."""
        data = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                                  ("Content-Length", str(len(data)))])
        return [data[:5]]

    @staticmethod
    def _send(start_response, status, payload, headers):
        data = json.dumps(payload).encode() if not isinstance(payload, (bytes, str)) else (
            payload.encode() if isinstance(payload, str) else payload)
        ctype = "application/json; charset=utf-8" if not isinstance(payload, (bytes, str)) else "text/plain"
        start_response(f"{status} X", [("Content-Type", ctype), ("Content-Length", str(len(data)))]
                       + list(headers.items()))
        return [data]

    MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage")
    VIEW_METHODS = ("views.publish", "views.open", "views.update", "views.push")

    def _refusal(self, method: str, body: dict, headers: dict) -> tuple[int, Any] | None:
        """Slack's answer to blocks or a view it refuses (tests/emulators/blockkit.py), else None."""
        found = None
        if method.startswith("respond/"):
            if not body.get("delete_original"):
                found = blockkit.message_refusal(body.get("text"), body.get("blocks"))
            if found:  # response_url answers in plain text, as incoming webhooks do
                self.refused.append((method, found[0], found[1]))
                return 400, found[0]
            return None
        if headers.get("authorization") != f"Bearer {self.token}":
            return None
        if method in self.MESSAGE_METHODS:
            found = blockkit.message_refusal(body.get("text"), body.get("blocks"))
        elif method in self.VIEW_METHODS:
            found = blockkit.view_refusal(body.get("view"))
        elif method == "chat.unfurl":
            unfurls = body.get("unfurls")
            unfurls = json.loads(unfurls) if isinstance(unfurls, str) else (unfurls or {})
            for url, unfurl in unfurls.items():
                found = blockkit.message_refusal("-", (unfurl or {}).get("blocks"))
                if found:
                    break
        if not found:
            return None
        self.refused.append((method, found[0], found[1]))
        answer = {"ok": False, "error": found[0]}
        if found[1]:
            answer["errors"] = [m.removeprefix("[ERROR] ") for m in found[1]]
            answer["response_metadata"] = {"messages": found[1]}
        return 200, answer

    def _warn(self, method: str, body: dict, payload: Any) -> None:
        """Slack posts blocks without a fallback `text`, with a warning; the emulator says so and remembers it."""
        if method in self.MESSAGE_METHODS or method.startswith("respond/"):
            if blockkit.missing_fallback(body.get("text"), body.get("blocks")):
                self.refused.append((method, "missing_text_or_fallback_or_attachments", []))
                if isinstance(payload, dict):
                    payload["warning"] = "missing_text_or_fallback_or_attachments"
                    payload["response_metadata"] = {"warnings": ["missing_text_or_fallback_or_attachments"]}

    def _answer(self, method: str, body: dict, headers: dict) -> tuple[int, Any]:
        if method.startswith("respond/"):
            return 200, "ok"
        if method == "apps.connections.open":  # with the app-level token (xapp-…), not the bot token
            url = getattr(self, "socket_url", None)
            return 200, {"ok": True, "url": url} if url else {"ok": False, "error": "not_allowed_token_type"}
        if headers.get("authorization") != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return 200, {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "spaceops",
                         "team_id": "T1", "user_id": "UBOT", "bot_id": "B1"}
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts) % 1_000_000:06d}"
            channel = body.get("channel", "")
            self.messages[(channel, ts)] = {"text": body.get("text"), "blocks": body.get("blocks"),
                                            "thread_ts": body.get("thread_ts"), "updates": 0,
                                            "metadata": body.get("metadata")}
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}}
        if method == "chat.update":
            key = (body.get("channel", ""), body.get("ts", ""))
            if key not in self.messages:
                return 200, {"ok": False, "error": "message_not_found"}
            self.messages[key].update(text=body.get("text"), blocks=body.get("blocks"),
                                      updates=self.messages[key]["updates"] + 1)
            return 200, {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "chat.getPermalink":
            return 200, {"ok": True, "permalink": f"https://acme.slack.com/archives/{body.get('channel')}/"
                                                  f"p{str(body.get('message_ts', '')).replace('.', '')}"}
        if method == "views.open":
            return 200, {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}}
        if method in ("conversations.history", "conversations.replies"):
            return 200, self._history(method, body)
        if method == "users.info":
            user = body.get("user", "")
            fields = {"id": user, "team_id": "T1", "is_restricted": False, "is_ultra_restricted": False,
                      **self.users.get(user, {})}
            return 200, {"ok": True, "user": fields}
        if method == "conversations.list":
            return 200, {"ok": True, "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
                         "response_metadata": {"next_cursor": ""}}
        if method == "views.publish":
            user = body.get("user_id", "")
            view = body.get("view") if isinstance(body.get("view"), dict) else json.loads(body.get("view") or "{}")
            current = self.views.get(user)
            if body.get("hash") and current and body["hash"] != current["hash"]:
                return 200, {"ok": False, "error": "hash_conflict"}
            new_hash = f"{time.time():.6f}.{next(self._ts)}"
            self.views[user] = {"view": view, "hash": new_hash}
            return 200, {"ok": True, "view": {"id": f"V{user}", **view, "hash": new_hash}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):08d}"
            self.uploads[file_id] = {"filename": body.get("filename"), "length": int(body.get("length") or 0),
                                     "bytes": None}
            return 200, {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = body.get("files")
            files = json.loads(files) if isinstance(files, str) else (files or [])
            done = []
            for item in files:
                upload = self.uploads.get(item.get("id"))
                if upload is None or upload["bytes"] is None:
                    return 200, {"ok": False, "error": "file_not_found"}
                self.files.append({"id": item["id"], "title": item.get("title"), "channel": body.get("channel_id"),
                                   "thread_ts": body.get("thread_ts"), "bytes": upload["bytes"],
                                   "filename": upload["filename"]})
                done.append({"id": item["id"], "title": item.get("title"), "name": upload["filename"]})
            return 200, {"ok": True, "files": done}
        if method == "chat.unfurl":
            # Slack refuses an unfurl for a message or URL no link_shared event named.
            place = (body.get("channel", ""), body.get("ts") or body.get("unfurl_id") or "")
            unfurls = body.get("unfurls")
            unfurls = json.loads(unfurls) if isinstance(unfurls, str) else (unfurls or {})
            if place not in self.shared:
                return 200, {"ok": False, "error": "cannot_find_message"}
            if not unfurls or not set(unfurls) <= self.shared[place]:
                return 200, {"ok": False, "error": "cannot_unfurl_url"}
            self.unfurled.setdefault(place, {}).update(unfurls)
            return 200, {"ok": True}
        if method in ("functions.completeSuccess", "functions.completeError"):
            execution = self.executions.get(body.get("function_execution_id", ""))
            if execution is None:
                return 200, {"ok": False, "error": "function_execution_not_found"}
            if execution["state"] != "running":
                return 200, {"ok": False, "error": "function_execution_already_completed"}  # [unverified] name
            outputs = body.get("outputs")
            outputs = json.loads(outputs) if isinstance(outputs, str) else outputs
            if method == "functions.completeSuccess":
                execution.update(state="completed", outputs=outputs or {})
            else:
                if not body.get("error"):
                    return 200, {"ok": False, "error": "invalid_arguments"}
                execution.update(state="failed", error=body["error"])
            return 200, {"ok": True}
        if method == "usergroups.users.list":
            group = body.get("usergroup", "")
            if group not in self.groups:
                return 200, {"ok": False, "error": "no_such_subteam"}
            return 200, {"ok": True, "users": self.groups[group]}
        return 200, {"ok": True}
