"""Command line: `python -m bot serve|socket|console|worker|run`."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import signal
import sys
import threading

from bot.core.errors import ConfigError
from bot.core.settings import Settings

SOCKET_PING_SECONDS = 3
DEMO_HINT = "No Slack app yet? Try Space Ops first, without Slack or a Hub account: `make demo`."
DEMO_HINT_CONSOLE = ("The console acts on your Spaces on the Hub, with your HF_TOKEN. No Hub token at hand? "
                     "Try Space Ops with demo Spaces, without Slack or a Hub account: `make demo`.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Space Ops: run Hugging Face Spaces from Slack")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING; console: WARNING")
    sub = parser.add_subparsers(dest="mode", required=True)
    serve = sub.add_parser("serve", help="HTTP mode: POST /slack/events, GET /livez /readyz /healthz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--threads", type=int, default=32)
    serve.add_argument("--no-scheduler", action="store_true")
    socket_mode = sub.add_parser("socket", help="Socket Mode, for teams without a public URL")
    socket_mode.add_argument("--no-scheduler", action="store_true")
    socket_mode.add_argument("--health-port", type=int, default=None,
                             help="serve /livez, /readyz, /healthz and /metrics here (a Docker Space's app_port)")
    socket_mode.add_argument("--health-host", default="127.0.0.1", help="0.0.0.0 in a container")
    sub.add_parser("console", help="a local shell: type /space commands, read replies as text")
    worker = sub.add_parser("worker", help="only the alert poller")
    worker.add_argument("--health-port", type=int, default=None,
                        help="serve /livez, /readyz, /healthz and /metrics here")
    worker.add_argument("--health-host", default="127.0.0.1")
    run = sub.add_parser("run", help="what `make run` does: local Redis if needed, then socket or serve")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=3000)
    return parser


def _with_redis(settings: Settings) -> Settings:
    if settings.redis_url:
        return settings
    from bot.core.localredis import start_local_redis

    return dataclasses.replace(settings, redis_url=start_local_redis())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level or ("WARNING" if args.mode == "console" else "INFO")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level.upper() != "DEBUG":
        logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per Hub request is noise
    quiet_libraries()
    try:
        return _run(args, Settings.from_env())
    except ConfigError as err:
        print(f"space-ops: {err.sentence}", file=sys.stderr)
        if "missing configuration" in err.sentence and args.mode in ("run", "serve", "socket", "console"):
            print("\n" + (DEMO_HINT_CONSOLE if args.mode == "console" else DEMO_HINT), file=sys.stderr)
        return 2


def _run(args, settings: Settings) -> int:
    from bot.app import build_context

    if args.mode == "console":
        from bot import console
        from bot.core.slack import ConsolePoster

        # Checked before a local Redis is started: a console that can't reach a Hub leaves nothing behind.
        settings.require("HF_TOKEN")
        if not settings.redis_url:
            from bot.core.localredis import DATA_DIR

            print(f"(Redis: a local redis-server, its data in ./{DATA_DIR}; `make clean` removes it.)")
        settings = _with_redis(settings)
        ctx = build_context(settings, poster=ConsolePoster(sys.stdout))
        return console.main(ctx)
    if args.mode == "run":
        # Every missing setting at once: a newcomer fixes them in one go, not one per attempt.
        settings.require("SLACK_BOT_TOKEN", "HF_TOKEN", either=(("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"),))
        settings = _with_redis(settings)
        mode = "socket" if settings.slack_app_token else "serve"
        args = argparse.Namespace(mode=mode, host=args.host, port=args.port, threads=32, no_scheduler=False,
                                  health_port=None, health_host="127.0.0.1")
    if args.mode == "serve":
        settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL")
    elif args.mode == "socket":
        settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "REDIS_URL")
    elif args.mode == "worker":
        settings.require("SLACK_BOT_TOKEN", "REDIS_URL")

    ctx = build_context(settings)
    stopping = _stop_on_signal()
    if args.mode == "worker":
        health = _health_server(ctx, args)
        ctx.watcher.start()
        _wait(stopping)
        return _shutdown(ctx, health)
    from bot.app import build_app

    app = build_app(ctx)
    # What start-up built (modules, the app, the context) lives as long as the process: out of the
    # collector's reach, so a full collection during a burst scans only what requests made. With it in,
    # one full collection paused every in-flight ack by 150–300 ms on a busy machine (bench/ack.py's p99).
    gc.freeze()
    if not args.no_scheduler:
        ctx.watcher.start()
    if args.mode == "serve":
        from bot.web import create_server, make_wsgi_app, run_in_thread

        ctx.warm(args.threads)  # one Redis connection per HTTP thread
        server = create_server(make_wsgi_app(app, ctx), args.host, args.port, threads=args.threads)
        logging.getLogger(__name__).info("Space Ops listening on http://%s:%d/slack/events", args.host, args.port)
        stop_http = run_in_thread(server)
        _wait(stopping)
        return _shutdown(ctx, stop_http)
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.core.slack import socket_mode_logger

    # Its own logger, which scrubs envelopes: the client would log them raw through Bolt's at DEBUG. A ping
    # every SOCKET_PING_SECONDS: slack_sdk drops a session without a pong for 4 pings and reconnects, so a
    # socket that stopped answering is replaced within about 5 pings (Bolt's default of 10 s: ~50 s).
    handler = SocketModeHandler(app, app_token=settings.slack_app_token, logger=socket_mode_logger(),
                                ping_interval=SOCKET_PING_SECONDS)
    health = _health_server(ctx, args, socket=handler.client)
    ctx.warm(10)  # Bolt's Socket Mode client runs 10 listener threads by default
    handler.connect()
    _wait(stopping)
    return _shutdown(ctx, handler.close, health)


def quiet_libraries() -> None:
    """APScheduler logs every run of every job at INFO (four lines a second at a 1 s interval)."""
    for name in ("apscheduler", "apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _stop_on_signal() -> threading.Event:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    return stopping


def _wait(stopping: threading.Event) -> None:
    while not stopping.wait(0.5):
        pass


def _health_server(ctx, args, socket=None):
    """`--health-port`: /livez, /readyz, /healthz and /metrics on a small waitress server of their own; its
    `stop()`. `socket`: the Socket Mode client, whose session /readyz and /healthz report."""
    if not getattr(args, "health_port", None):
        return None
    from bot.health import Health
    from bot.web import create_server, run_in_thread

    health = Health(ctx, socket=socket, mode=args.mode)
    server = create_server(health.wsgi, args.health_host, args.health_port, threads=2)
    logging.getLogger(__name__).info("health on http://%s:%s/healthz", args.health_host, server.effective_port)
    return run_in_thread(server)


def _shutdown(ctx, *stop_taking) -> int:
    """SIGTERM: take no new requests, let commands in flight finish (SPACEOPS_SHUTDOWN_SECONDS), stop the
    scheduler, release the poll lease so another replica takes it at once, exit 0."""
    log = logging.getLogger(__name__)
    log.info("stopping: no new requests; %d commands in flight", ctx.pool.busy)
    for stop in stop_taking:
        if stop is not None:
            try:
                stop()
            except Exception:  # noqa: BLE001 — a listener that fails to close must not stop the rest
                log.exception("closing a listener failed")
    if not ctx.pool.wait_idle(ctx.settings.shutdown_seconds):
        log.warning("%d commands still running after %d s; exiting anyway", ctx.pool.busy,
                    ctx.settings.shutdown_seconds)
    ctx.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
