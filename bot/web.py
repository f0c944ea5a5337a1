"""HTTP mode: a small WSGI router (`POST /slack/events`, `GET /healthz`) served by waitress."""

from __future__ import annotations

import json
import logging

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024  # Slack payloads are a few KB; anything far larger is not from Slack


def make_wsgi_app(app: App, ctx):
    slack = SlackRequestHandler(app, path="/slack/events")

    def respond(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def wsgi(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok = ctx.store.ping()
            return respond(start_response, "200 OK" if ok else "503 Service Unavailable",
                           {"ok": ok, "redis": "up" if ok else "unreachable"})
        if path == "/slack/events":
            if method != "POST":
                return respond(start_response, "405 Method Not Allowed", {"error": "POST only"})
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                return respond(start_response, "413 Payload Too Large", {"error": "body too large"})
            return slack(environ, start_response)
        return respond(start_response, "404 Not Found", {"error": "not found"})

    return wsgi


def serve(wsgi, host: str, port: int, threads: int = 16) -> None:
    from waitress import serve as waitress_serve

    log.info("Space Ops listening on http://%s:%d/slack/events", host, port)
    waitress_serve(wsgi, host=host, port=port, threads=threads, ident="space-ops",
                   max_request_body_size=MAX_BODY, channel_timeout=30)


def create_server(wsgi, host: str, port: int, threads: int = 16):
    """A waitress server not yet running (tests and benchmarks run it in a thread)."""
    from waitress.server import create_server as waitress_create

    return waitress_create(wsgi, host=host, port=port, threads=threads, ident="space-ops",
                           max_request_body_size=MAX_BODY, channel_timeout=30)


def run_in_thread(server):
    """Run a waitress server on a daemon thread; returns a `stop()` that shuts it down cleanly."""
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
