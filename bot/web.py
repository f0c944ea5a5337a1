"""HTTP mode: a small WSGI router (`POST /slack/events`, `POST /hub/webhook`, `GET /livez`, `/readyz`, `/healthz`,
`/metrics`) served by waitress."""

from __future__ import annotations

import io
import json
import logging
import time

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024  # Slack payloads are a few KB; anything far larger is not from Slack


def make_wsgi_app(app: App, ctx):
    from bot.health import Health

    slack = SlackRequestHandler(app, path="/slack/events")
    health = Health(ctx)

    def respond(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def posted_body(environ, start_response) -> tuple[bytes | None, list | None]:
        """(the body, None) of a POST of at most MAX_BODY bytes; else (None, the 405 or 413 answer)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None, respond(start_response, "405 Method Not Allowed", {"error": "POST only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return None, respond(start_response, "413 Payload Too Large", {"error": "body too large"})
        return (environ["wsgi.input"].read(length) if length else b""), None

    def hub_webhook(environ, start_response):
        """Hub push webhooks (bot/alerts/webhooks.py): checked, deduplicated, answered at once."""
        body, refused = posted_body(environ, start_response)
        if refused is not None:
            return refused
        status, answer = ctx.watcher.webhooks.receive(environ.get("HTTP_X_WEBHOOK_SECRET"), body, ctx.store.clock())
        return respond(start_response, _STATUS.get(status, f"{status} Error"), answer)

    def wsgi(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        arrived = environ.get(ARRIVED)
        if arrived is not None:
            start_response = timed(start_response, arrived)
        if path in health.PATHS and method in ("GET", "HEAD"):
            return health.wsgi(environ, start_response)
        if path == "/hub/webhook":
            return hub_webhook(environ, start_response)
        if path == "/slack/events":
            body, refused = posted_body(environ, start_response)
            if refused is not None:
                return refused
            stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "0").strip().lstrip("-")
            if not (stamp.isascii() and stamp.isdigit()):
                # Bolt's verifier does int() on it and answers 500; it is simply an unsigned request.
                return respond(start_response, "401 Unauthorized", {"error": "invalid request"})
            environ["wsgi.input"] = io.BytesIO(body)
            if not parses(body, environ.get("CONTENT_TYPE")):
                return respond(start_response, "400 Bad Request", {"error": "malformed body"})
            return slack(environ, start_response)
        return respond(start_response, "404 Not Found", {"error": "not found"})

    return wsgi


_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden",
           404: "404 Not Found", 413: "413 Payload Too Large", 503: "503 Service Unavailable"}

# Objects Bolt dereferences before any listener runs (to build its kwargs); Slack always sends them as objects.
_OBJECTS = ("user", "view", "event", "container", "channel", "message", "team", "enterprise", "state")


def parses(body: bytes, content_type: str | None) -> bool:
    """True if the body has the shape of something Slack sends.

    Bolt parses and dereferences the body before our code runs and answers 500 when it can't (bad JSON,
    `"actions": null`, a view without a type...); only a signed request gets that far, but it must still
    get a 400, not a 500 and a traceback.
    """
    # Bolt's own body parser, so this check sees exactly what Bolt will see. It lives in a private module
    # (`slack_bolt.request.internals`) and no public name serves; this is the one place it is read.
    from slack_bolt.request.internals import parse_body

    try:
        parsed = parse_body(body.decode("utf-8"), (content_type or "").split(";")[0] or None)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON (both ValueErrors); JSON nested too deep
        return False
    if not isinstance(parsed, dict):
        return False
    if any(parsed.get(name) is not None and not isinstance(parsed[name], dict) for name in _OBJECTS):
        return False
    kind = parsed.get("type")
    if kind is not None and not isinstance(kind, str):
        return False
    actions = parsed.get("actions")
    if (actions is not None or kind == "block_actions") and not (
            isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions)):
        return False
    if kind == "block_actions" and not all(isinstance(a.get("action_id"), str) for a in actions):
        return False  # Bolt's action matching reads action["action_id"] and answers 500 without it
    if "view" in parsed and not isinstance((parsed["view"] or {}).get("type"), str):
        return False
    return kind != "event_callback" or isinstance(parsed.get("event"), dict)


ARRIVED = "spaceops.arrived"  # environ key: perf_counter() when the request arrived (see _timed_channel)


def timed(start_response, arrived: float):
    """`start_response` adding `Server-Timing: app;dur=<ms>`: the time from the request's arrival to its
    answer, as the server saw it (bench/ack.py tells the bot's share of an ack from the machine's with it)."""

    def start(status, headers, exc_info=None):
        spent = (time.perf_counter() - arrived) * 1000
        return start_response(status, [*headers, ("Server-Timing", f"app;dur={spent:.2f}")], exc_info)

    return start


def create_server(wsgi, host: str, port: int, threads: int = 16):
    """A waitress server not yet running (tests and benchmarks run it in a thread). Each request's time, from
    its arrival (connection accepted, or first bytes read) to its answer written: `spaceops_http_request_seconds`."""
    from waitress.server import create_server as waitress_create

    server = waitress_create(wsgi, host=host, port=port, threads=threads, ident="space-ops",
                             max_request_body_size=MAX_BODY, channel_timeout=30)
    server.channel_class = _timed_channel()
    return server


def _timed_channel():
    """waitress's channel noting when a request arrived (its connection accepted, for the first request on
    it; its first bytes read, for the next ones) and a task putting that in the environ and observing the
    whole request once answered. waitress has no public hook for the time a request arrived; its channel,
    parser and task classes (waitress internals) are read here only."""
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.task import WSGITask

    from bot.core import metrics

    class Parser(HTTPRequestParser):
        def __init__(self, adj):
            super().__init__(adj)
            self.arrived = time.perf_counter()

    class Task(WSGITask):
        def arrived(self) -> float:
            accepted = self.channel.accepted
            return accepted if accepted is not None else self.request.arrived

        def get_environment(self):
            environ = super().get_environment()
            environ[ARRIVED] = self.arrived()
            return environ

        def service(self):
            arrived = self.arrived()
            self.channel.accepted = None  # a next request on this connection counts from its own first bytes
            try:
                super().service()
            finally:
                metrics.http_request(self.request.path, time.perf_counter() - arrived)

    class Channel(HTTPChannel):
        parser_class = Parser
        task_class = Task

        def __init__(self, *args, **kwargs):
            self.accepted = time.perf_counter()
            super().__init__(*args, **kwargs)

    return Channel


def run_in_thread(server):
    """Run a waitress server on a daemon thread; returns a `stop()` that shuts it down cleanly.

    waitress's public `server.run()` has no way to stop from another thread, so this loop drives its
    dispatcher map (`server._map`, waitress internals) itself; the one place they are read.
    """
    import threading

    from waitress import wasyncore

    stopping = threading.Event()

    def loop():
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.close()
        server.task_dispatcher.shutdown(timeout=1)

    thread = threading.Thread(target=loop, daemon=True, name=f"http-{server.effective_port}")
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(5)

    return stop
