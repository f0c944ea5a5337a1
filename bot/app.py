"""Wiring: one `Context` holding the edges (Hub, Redis, Slack) and the Bolt app built on it."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient

from bot import approvals, hub, watching
from bot.errors import ConfigError
from bot.operations import Operations
from bot.permissions import Roles
from bot.settings import Settings
from bot.slack import Poster, SlackPoster, background_pool, make_web_client
from bot.store import Store, connect

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a handler or job needs; built once per process."""

    settings: Settings
    store: Store
    ops: Operations
    poster: Poster
    pool: ThreadPoolExecutor
    client: WebClient | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for closer in self.extras.get("closers", []):
            closer()


def build_context(settings: Settings, redis_client: redis.Redis | None = None, poster: Poster | None = None,
                  client: WebClient | None = None) -> Context:
    store = Store(redis_client or connect(settings.redis_url))
    if poster is None:
        client = client or make_web_client(settings)
        poster = SlackPoster(client)
    group_resolver = getattr(poster, "group_members", None)
    roles = Roles(settings, group_resolver)
    ops = Operations(settings, hub.make_api(settings), store, poster, roles)
    ctx = Context(settings, store, ops, poster, background_pool(settings.workers), client)
    approvals.register(ctx)
    watching.register(ctx)
    return ctx


def build_app(ctx: Context) -> App:
    """The Bolt app with every listener. The signing secret must be set (checked by the CLI)."""
    from handlers import register_all

    try:
        # Bolt checks the token with auth.test right here.
        app = App(
            client=ctx.client,
            signing_secret=ctx.settings.slack_signing_secret,
            # Listeners only parse, ack and hand the Hub work to ctx.pool, so they can run inline on the HTTP
            # thread: no hop through Bolt's executor and no 10 ms ack polling (bench/ack.py).
            process_before_response=True,
        )
    except BoltError as err:
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({err}). Copy the Bot User OAuth Token (xoxb-…) from "
                          f"the app's OAuth & Permissions page.") from err
    except OSError as err:
        raise ConfigError(f"Slack cannot be reached at {ctx.settings.slack_api_base} ({err}). Check the network "
                          f"or SLACK_API_URL.") from err
    register_all(app, ctx)
    return app
