"""Wiring: one typed `Context` holding the edges and every feature's service, and the Bolt app built on it."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient

from bot.alerts.watcher import Watcher
from bot.alerts.webhooks import WebhookCommands
from bot.approvals.flow import Approvals
from bot.commands.operations import Operations
from bot.core import hub
from bot.core.errors import ConfigError
from bot.core.flavors import CatalogueSource
from bot.core.hub import Spaces
from bot.core.permissions import Roles
from bot.core.settings import Settings
from bot.core.slack import Poster, SlackPoster, background_pool, make_web_client
from bot.core.store import Store, connect

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a handler or job needs; built once per process by `build_context`."""

    settings: Settings
    store: Store
    poster: Poster
    pool: ThreadPoolExecutor
    client: WebClient | None
    roles: Roles
    spaces: Spaces
    catalogues: CatalogueSource
    ops: Operations
    watcher: Watcher
    approvals: Approvals

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.watcher.stop(release=True)


def build_context(settings: Settings, redis_client: redis.Redis | None = None, poster: Poster | None = None,
                  client: WebClient | None = None) -> Context:
    """Build the edges, then the features in dependency order: alerts, approvals, commands."""
    store = Store(redis_client or connect(settings.redis_url))
    if poster is None:
        client = client or make_web_client(settings)
        poster = SlackPoster(client)
    roles = Roles(settings, getattr(poster, "group_members", None))
    api = hub.make_api(settings)
    spaces = Spaces(api, settings.hf_endpoint)
    catalogues = CatalogueSource(spaces.hardware)

    watcher = Watcher(settings, store, poster, api, spaces, catalogues)
    approvals = Approvals(settings, store, spaces, roles, poster, catalogues, later=watcher.outbox.enqueue_one)
    ops = Operations(settings, api, spaces, store, roles, catalogues, upgrades=approvals)
    # Changes made through the bot make the Space hot and are followed in their announcement; an approved
    # upgrade makes it hot too (its message is the approval's, edited by the approvals flow).
    ops.changes = watcher.follow
    approvals.applied = watcher.follow.heat_applied

    # Approval edits that Slack refused are retried by the outbox, whichever replica drains it.
    watcher.outbox.handlers.update(approvals.deliveries())
    # The leader's poll tick expires approvals, so expiry needs no click.
    watcher.periodic.append(approvals.sweep)
    webhook = WebhookCommands(settings, api, store, watcher.store, roles.is_admin)
    for name, handler in {**watcher.commands(), **approvals.commands(), **webhook.commands()}.items():
        ops.handle(name, handler)
    return Context(settings, store, poster, background_pool(settings.workers), client, roles, spaces, catalogues,
                   ops, watcher, approvals)


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
