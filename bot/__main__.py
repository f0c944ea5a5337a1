"""Command line: `python -m bot serve|socket|console|worker|run`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading

from bot.core.errors import ConfigError
from bot.core.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Space Ops: run Hugging Face Spaces from Slack")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING; console: WARNING")
    sub = parser.add_subparsers(dest="mode", required=True)
    serve = sub.add_parser("serve", help="HTTP mode: POST /slack/events, GET /healthz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--threads", type=int, default=32)
    serve.add_argument("--no-scheduler", action="store_true")
    socket_mode = sub.add_parser("socket", help="Socket Mode, for teams without a public URL")
    socket_mode.add_argument("--no-scheduler", action="store_true")
    socket_mode.add_argument("--health-port", type=int, default=None,
                             help="also answer GET /healthz on 0.0.0.0:PORT (a Docker Space's app_port)")
    sub.add_parser("console", help="a local shell: type /space commands, read replies as text")
    sub.add_parser("worker", help="only the alert poller")
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
    try:
        return _run(args, Settings.from_env())
    except ConfigError as err:
        print(f"space-ops: {err.sentence}", file=sys.stderr)
        if args.mode in ("run", "serve", "socket") and "missing configuration" in err.sentence:
            print("\nNo Slack app yet? Try the bot locally first: `make console` "
                  "(set HF_ENDPOINT/HF_TOKEN for the Hub you want to talk to).", file=sys.stderr)
        return 2


def _run(args, settings: Settings) -> int:
    from bot.app import build_context

    if args.mode == "console":
        from bot import console
        from bot.core.slack import ConsolePoster

        settings = _with_redis(settings)
        ctx = build_context(settings, poster=ConsolePoster(sys.stdout))
        return console.main(ctx)
    if args.mode == "run":
        # Every missing setting at once: a newcomer fixes them in one go, not one per attempt.
        settings.require("SLACK_BOT_TOKEN", "HF_TOKEN", either=(("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"),))
        settings = _with_redis(settings)
        mode = "socket" if settings.slack_app_token else "serve"
        args = argparse.Namespace(mode=mode, host=args.host, port=args.port, threads=32, no_scheduler=False)
    if args.mode == "serve":
        settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "REDIS_URL")
    elif args.mode == "socket":
        settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "REDIS_URL")
    elif args.mode == "worker":
        settings.require("SLACK_BOT_TOKEN", "REDIS_URL")

    ctx = build_context(settings)
    if args.mode == "worker":
        ctx.watcher.start()
        _wait_for_signal()
        return 0
    from bot.app import build_app

    app = build_app(ctx)
    if not args.no_scheduler:
        ctx.watcher.start()
    if args.mode == "serve":
        from bot.web import make_wsgi_app, serve

        serve(make_wsgi_app(app, ctx), args.host, args.port, threads=args.threads)
        return 0
    health_port = getattr(args, "health_port", None)
    if health_port:
        from bot.web import create_server, health_wsgi, run_in_thread

        run_in_thread(create_server(health_wsgi(ctx), "0.0.0.0", health_port, threads=2))
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    SocketModeHandler(app, app_token=settings.slack_app_token).start()
    return 0


def _wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


if __name__ == "__main__":
    sys.exit(main())
